package report

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func loadTestdata(t *testing.T, name string) *results.File {
	t.Helper()
	f, err := results.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cells) == 0 {
		t.Fatalf("testdata/%s has no cells", name)
	}
	return f
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from the golden file at line %d:\n got: %s\nwant: %s\n(run go test -update if the change is intended)", path, i+1, g, w)
			}
		}
	}
}

func TestMarkdownGolden(t *testing.T) {
	f := loadTestdata(t, "every_status.json")
	md := Markdown(f, nil, true)
	golden(t, "every_status.md", []byte(md))
	golden(t, "every_status.txt", []byte(Markdown(f, nil, false)))

	// Every status shows up, and every failed cell links to its anchor.
	for _, s := range []State{StateCompiled, StatePass, StateFail, StateNotCompiled, StateError, StateSkip, StateNotRun} {
		if !strings.Contains(md, "| "+s.Emoji()) && !strings.Contains(md, "| ["+s.Emoji()) {
			t.Errorf("no table cell shows %s (%s)", s.Label(), s.Emoji())
		}
	}
	for _, c := range f.Cells {
		if !StateOf(Success, &c).bad() && !StateOf(Compiled, &c).bad() {
			continue
		}
		a := Anchor(c)
		if !strings.Contains(md, `<a id="`+a+`"></a>`) || !strings.Contains(md, "(#"+a+")") {
			t.Errorf("failed cell %s: no anchor %q with a link to it", c.ID(), a)
		}
	}
}

func TestJUnitGolden(t *testing.T) {
	f := loadTestdata(t, "every_status.json")
	out, err := JUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "every_status.junit.xml", out)

	var back junitSuites
	if err := xml.Unmarshal(out, &back); err != nil {
		t.Fatalf("JUnit output does not parse: %v", err)
	}
	// One case per cell and stage, and one per googletest suite of each
	// cell with behaviour tests (two cells, two suites each).
	if len(back.Suites) != 3 || back.Tests != 2*len(f.Cells)+4 {
		t.Fatalf("got %d suites and %d test cases, want 3 and %d", len(back.Suites), back.Tests, 2*len(f.Cells)+4)
	}
	// every_status.json: compile 1 fail + 3 skips (+1 not compiled yet),
	// 1 infra error; test: 4 failures (one of them wrong events), 1 infra error.
	c, tst := back.Suites[0], back.Suites[1]
	if c.Failures != 1 || c.Skipped != 4 || c.Errors != 1 {
		t.Errorf("compile suite: %d failures, %d skipped, %d errors; want 1, 4, 1", c.Failures, c.Skipped, c.Errors)
	}
	if tst.Failures != 4 || tst.Errors != 1 {
		t.Errorf("test suite: %d failures, %d errors; want 4, 1", tst.Failures, tst.Errors)
	}
	// behaviour: the failing cell's two suites each have a failing test.
	if b := back.Suites[2]; b.Name != "behaviour" || b.Failures != 2 || b.Errors != 0 {
		t.Errorf("behaviour suite %q: %d failures, %d errors; want 2, 0", b.Name, b.Failures, b.Errors)
	}
}

func TestCode(t *testing.T) {
	for in, want := range map[string]string{
		"<command-line>: error":  "`<command-line>: error`",
		"option `-ftrivial` bad": "``option `-ftrivial` bad``",
		"`x`":                    "`` `x` ``",
		"two\nlines":             "`two lines`",
	} {
		if got := code(in); got != want {
			t.Errorf("code(%q) = %s, want %s", in, got, want)
		}
	}
}
