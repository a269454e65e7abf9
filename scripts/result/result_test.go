package result

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
			copyFile(t, "testdata/previous.json", cfg.Path("results.json"))
			if err := Write(ctx, cfg, ui.Discard()); err != nil {
				t.Fatalf("first run: %v", err)
			}
			copyFile(t, "testdata/current.json", cfg.Path("results.json"))
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
			hist, _ := filepath.Glob(cfg.Path(HistoryDir, "*.json"))
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
	err := results.Update(cfg.Path("results.json"), func(f *results.File) error {
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
	f, _ := results.Load(cfg.Path("results.json"))
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
	if err == nil || !strings.Contains(err.Error(), cfg.Path("results.json")) {
		t.Errorf("missing results.json: got %v, want an error naming it", err)
	}
	os.WriteFile(cfg.Path("results.json"), []byte(`{"schema":1,"cells":[{"kernel":"k","compiler":"gcc-1","driver":"kmod","test":{"status":"passed"}}]}`), 0o644)
	if err := Write(context.Background(), cfg, ui.Discard()); err == nil || !strings.Contains(err.Error(), `"passed"`) {
		t.Errorf("unknown status: got %v", err)
	}

	copyFile(t, "testdata/every_status.json", cfg.Path("results.json"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, cfg, ui.Discard()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	if left, _ := filepath.Glob(cfg.Path(".*")); len(left) != 0 {
		t.Errorf("cancelled run left %v", left)
	}
}
