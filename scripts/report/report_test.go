package report

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

func TestCompare(t *testing.T) {
	d := Compare(loadTestdata(t, "previous.json"), loadTestdata(t, "current.json"))
	ids := func(list []Change) []string {
		var out []string
		for _, c := range list {
			out = append(out, c.Cell.ID())
		}
		return out
	}
	check := func(what string, got []Change, want ...string) {
		t.Helper()
		if g := ids(got); strings.Join(g, " ") != strings.Join(want, " ") {
			t.Errorf("%s: got %q, want %q", what, g, want)
		}
	}
	check("regressions", d.Regressions, "gcc-12/6.1.0-50-cloud-amd64/kmod")
	check("fixes", d.Fixes, "clang-14/6.1.0-50-cloud-amd64/bpf")
	check("new", d.New, "clang-19/6.1.0-50-cloud-amd64/modern_bpf")
	check("vanished", d.Vanished, "clang-14/5.10.0-32-cloud-amd64/bpf")
	check("other changes", d.Changed)
	if r := d.Regressions[0]; r.Was != StatePass || r.Now != StateFail {
		t.Errorf("regression %s -> %s, want pass -> fail", r.Was.Label(), r.Now.Label())
	}
}

func TestCompareCompileOnly(t *testing.T) {
	prev, cur := &results.File{}, &results.File{}
	prev.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", results.Compile{Status: results.CompileOK})
	prev.SetCompile("6.1.0-50-cloud-amd64", "gcc-11", "kmod", results.Compile{Status: results.CompileFail})
	cur.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", results.Compile{Status: results.CompileFail})
	cur.SetCompile("6.1.0-50-cloud-amd64", "gcc-11", "kmod", results.Compile{Status: results.CompileOK})
	d := Compare(prev, cur)
	if len(d.Regressions) != 1 || d.Regressions[0].Cell.Compiler != "gcc-12" || len(d.Fixes) != 1 || d.Fixes[0].Cell.Compiler != "gcc-11" {
		t.Fatalf("compile-only diff: %s", strings.Join(d.Lines(), "\n"))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRegressionExitStatus(t *testing.T) {
	for _, failOnRegr := range []bool{false, true} {
		t.Run(map[bool]string{false: "report", true: "fail"}[failOnRegr], func(t *testing.T) {
			cfg := &config.Config{BuildDir: filepath.Join(t.TempDir(), "build"), FailOnRegr: failOnRegr}
			ctx := context.Background()
			copyFile(t, "testdata/previous.json", cfg.Path(layout.Results))
			if err := Write(ctx, cfg, ui.Discard()); err != nil {
				t.Fatalf("first run: %v", err)
			}
			copyFile(t, "testdata/current.json", cfg.Path(layout.Results))
			// Twice: rendering the same results again compares with the
			// same earlier run.
			for range 2 {
				var out bytes.Buffer
				err := Write(ctx, cfg, ui.New(&out))
				if failOnRegr != (err != nil) {
					t.Fatalf("FailOnRegr=%v: Write returned %v", failOnRegr, err)
				}
				if err != nil && !strings.Contains(err.Error(), "1 regression") {
					t.Errorf("error does not count the regression: %v", err)
				}
				text := out.String()
				reg := strings.Index(text, "REGRESSION gcc-12/6.1.0-50-cloud-amd64/kmod: pass -> fail: captured 3 events")
				fix := strings.Index(text, "fixed      clang-14/6.1.0-50-cloud-amd64/bpf: fail -> pass")
				table := strings.Index(text, "# Driver compatibility matrix")
				if reg < 0 || fix < 0 || table < 0 || reg > table || fix > table {
					t.Fatalf("the regression and the fix are not both listed before the tables:\n%s", text)
				}
				md, err := os.ReadFile(cfg.Path(MarkdownMD))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(md), "**Regressions**\n\n- `gcc-12/6.1.0-50-cloud-amd64/kmod`: pass -> fail") {
					t.Errorf("the Markdown report does not list the regression")
				}
			}
			hist, _ := filepath.Glob(cfg.Path(layout.History, "*.json"))
			if len(hist) != 2 {
				t.Errorf("history holds %d files, want 2 (one per distinct results.json)", len(hist))
			}
			for _, name := range []string{CompiledPNG, SuccessPNG, MarkdownMD, JUnitXML} {
				if fi, err := os.Stat(cfg.Path(name)); err != nil || fi.Size() == 0 {
					t.Errorf("%s: %v", name, err)
				}
			}
			if tmp, _ := filepath.Glob(cfg.Path(".*tmp*")); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func TestWriteCompileOnly(t *testing.T) {
	cfg := &config.Config{BuildDir: t.TempDir()}
	err := results.Update(cfg.Path(layout.Results), func(f *results.File) error {
		f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", results.Compile{Status: results.CompileOK})
		f.SetCompile("6.1.0-50-cloud-amd64", "gcc-11", "kmod", results.Compile{Status: results.CompileFail, Reason: "unrecognized option"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(context.Background(), cfg, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no test results yet") {
		t.Errorf("output does not say that there are no test results:\n%s", out.String())
	}
	data, err := os.ReadFile(cfg.Path(CompiledPNG))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := results.Load(cfg.Path(layout.Results))
	g := NewGrid(f)
	l := NewLayout(g, Compiled, f.Run)
	row, col, sub, _ := g.Index("6.1.0-50-cloud-amd64", "gcc-12", "kmod")
	if p := l.CellCenter(row, col, sub); !near(img.At(p.X, p.Y), StateCompiled.Color()) {
		t.Errorf("compiled cell at %v is %v, want the compiled colour", p, img.At(p.X, p.Y))
	}
}

func TestWriteErrors(t *testing.T) {
	cfg := &config.Config{BuildDir: t.TempDir()}
	err := Write(context.Background(), cfg, ui.Discard())
	if err == nil || !strings.Contains(err.Error(), cfg.Path(layout.Results)) {
		t.Errorf("missing results.json: got %v, want an error naming it", err)
	}
	os.WriteFile(cfg.Path(layout.Results), []byte(`{"schema":1,"cells":[{"kernel":"k","compiler":"gcc-1","driver":"kmod","test":{"status":"passed"}}]}`), 0o644)
	if err := Write(context.Background(), cfg, ui.Discard()); err == nil || !strings.Contains(err.Error(), `"passed"`) {
		t.Errorf("unknown status: got %v", err)
	}

	copyFile(t, "testdata/every_status.json", cfg.Path(layout.Results))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, cfg, ui.Discard()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	if left, _ := filepath.Glob(cfg.Path(".*")); len(left) != 0 {
		t.Errorf("cancelled run left %v", left)
	}
}

// Every way a cell can stop working is a regression; a cell awaiting the
// test of a new build is not, nor is a cell that left a grid that changed.
func TestCompareRegressionCases(t *testing.T) {
	const k = "6.1.0-50-cloud-amd64"
	ok := &results.Compile{Status: results.CompileOK, Key: "a"}
	pass := results.Cell{Kernel: k, Compiler: "gcc-12", Driver: "kmod", Compile: ok, Test: &results.Test{Status: results.TestPass, Events: 100}}
	compiled := results.Cell{Kernel: k, Compiler: "gcc-12", Driver: "kmod", Compile: ok}
	with := func(c results.Cell, cp *results.Compile, t *results.Test) *results.Cell {
		c.Compile, c.Test = cp, t
		return &c
	}
	fail := &results.Compile{Status: results.CompileFail, Reason: "error: x"}
	skip := &results.Compile{Status: results.CompileSkip, Reason: "builder glibc 2.36 < needed 2.38"}
	for _, tc := range []struct {
		name     string
		was      results.Cell
		now      *results.Cell // nil: missing
		sameGrid bool
		want     string // regression, fix, changed, vanished, none
	}{
		{"pass -> test fail", pass, with(pass, ok, &results.Test{Status: results.TestFail, Kind: results.KindEvents}), true, "regression"},
		{"pass -> infra error", pass, with(pass, ok, &results.Test{Status: results.TestError, Reason: "scap-open did not build (log logs/compile/scap-open.log)"}), true, "regression"},
		{"pass -> test skip", pass, with(pass, ok, &results.Test{Status: results.TestSkip}), true, "regression"},
		{"pass -> not run", pass, with(pass, ok, &results.Test{Status: results.TestNotRun}), true, "regression"},
		{"pass -> not compiled", pass, with(pass, fail, nil), true, "regression"},
		{"pass -> compile skip", pass, with(pass, skip, nil), true, "regression"},
		{"pass -> missing, same grid", pass, nil, true, "regression"},
		{"pass -> missing, grid changed", pass, nil, false, "vanished"},
		{"pass -> rebuilt, awaiting its test", pass, with(pass, &results.Compile{Status: results.CompileOK, Key: "b"}, nil), true, "changed"},
		{"pass -> pass", pass, &pass, true, "none"},
		{"compiled -> not compiled", compiled, with(compiled, fail, nil), true, "regression"},
		{"compiled -> compile skip", compiled, with(compiled, skip, nil), true, "regression"},
		{"compiled -> infra error", compiled, with(compiled, ok, &results.Test{Status: results.TestError}), true, "regression"},
		{"compiled -> missing, same grid", compiled, nil, true, "regression"},
		{"compiled -> first test fails", compiled, with(compiled, ok, &results.Test{Status: results.TestFail}), true, "changed"},
		{"compiled -> pass", compiled, &pass, true, "changed"},
		{"error -> pass", *with(pass, ok, &results.Test{Status: results.TestError}), &pass, true, "fix"},
		{"pass -> wrong events", pass, with(pass, ok, &results.Test{Status: results.TestFail, Kind: results.KindBehaviour}), true, "regression"},
		{"wrong events -> pass", *with(pass, ok, &results.Test{Status: results.TestFail, Kind: results.KindBehaviour}), &pass, true, "fix"},
		{"not compiled -> compiled", *with(compiled, fail, nil), &compiled, true, "fix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev, cur := &results.File{}, &results.File{}
			prev.Run.Grid, cur.Run.Grid = "g1", "g1"
			if !tc.sameGrid {
				cur.Run.Grid = "g2"
			}
			prev.Upsert(tc.was)
			// A neighbour keeps cur non-empty and unchanged.
			other := results.Cell{Kernel: k, Compiler: "gcc-14", Driver: "kmod", Compile: ok}
			prev.Upsert(other)
			cur.Upsert(other)
			if tc.now != nil {
				cur.Cells = append(cur.Cells, *tc.now)
			}
			d := Compare(prev, cur)
			got := "none"
			for name, list := range map[string][]Change{"regression": d.Regressions, "fix": d.Fixes, "changed": d.Changed, "vanished": d.Vanished, "new": d.New} {
				if len(list) > 1 || (len(list) == 1 && got != "none") {
					t.Fatalf("more than one change: %s", strings.Join(d.Lines(), "\n"))
				}
				if len(list) == 1 {
					got = name
				}
			}
			if got != tc.want {
				t.Errorf("got %s, want %s:\n%s", got, tc.want, strings.Join(d.Lines(), "\n"))
			}
		})
	}
}

// Results without a grid identity (older files) cannot tell a lost cell
// from one that left the grid: it is listed as vanished.
func TestCompareUnknownGrid(t *testing.T) {
	prev, cur := &results.File{}, &results.File{}
	prev.SetTest("6.1", "gcc-12", "kmod", results.Test{Status: results.TestPass})
	cur.SetTest("6.1", "gcc-14", "kmod", results.Test{Status: results.TestPass})
	d := Compare(prev, cur)
	if len(d.Regressions) != 0 || len(d.Vanished) != 1 {
		t.Errorf("%s", strings.Join(d.Lines(), "\n"))
	}
	prev.Run.Grid, cur.Run.Grid = "same", "same"
	d = Compare(prev, cur)
	if len(d.Regressions) != 1 || !strings.Contains(d.Lines()[1], "REGRESSION gcc-12/6.1/kmod: was pass, missing from a run of the same grid") {
		t.Errorf("%s", strings.Join(d.Lines(), "\n"))
	}
}

// A scap-open that did not build turns passing cells into errors: counted,
// listed with the reason, and fatal with VM_FAIL_ON_REGRESSION=1.
func TestWriteScapOpenRegression(t *testing.T) {
	cfg := &config.Config{BuildDir: t.TempDir(), FailOnRegr: true}
	ctx := context.Background()
	cell := func(test results.Test) error {
		return results.Update(cfg.Path(layout.Results), func(f *results.File) error {
			f.Run.Grid = "g"
			f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", results.Compile{Status: results.CompileOK, Key: "k"})
			f.SetTest("6.1.0-50-cloud-amd64", "gcc-12", "kmod", test)
			return nil
		})
	}
	if err := cell(results.Test{Status: results.TestPass, Events: 40}); err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, cfg, ui.Discard()); err != nil {
		t.Fatal(err)
	}
	if err := cell(results.NoScapOpen(layout.ScapOpenLog, "error: x")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Write(ctx, cfg, ui.New(&out))
	if err == nil || !strings.Contains(err.Error(), "1 regression") {
		t.Errorf("Write: %v", err)
	}
	want := "REGRESSION gcc-12/6.1.0-50-cloud-amd64/kmod: pass -> infra error: scap-open did not build (log logs/compile/scap-open.log): error: x"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	junit, _ := os.ReadFile(cfg.Path(JUnitXML))
	if !strings.Contains(string(junit), `<error message="scap-open did not build (log logs/compile/scap-open.log): error: x" type="infra">`) {
		t.Errorf("JUnit does not report an error:\n%s", junit)
	}
}
