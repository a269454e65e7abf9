package compile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/report"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm"
)

// copyStandIn copies the stand-in tree to dst with MINILIBS_FAULT=fault as
// its default: the compile stage passes no option to select a variant.
func copyStandIn(t *testing.T, root, dst, fault string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, config.StandInDir)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "CMakeLists.txt" {
			nb := bytes.Replace(b, []byte(`set(MINILIBS_FAULT "none" CACHE`), []byte(`set(MINILIBS_FAULT "`+fault+`" CACHE`), 1)
			if fault != "none" && bytes.Equal(nb, b) {
				t.Fatalf("%s: MINILIBS_FAULT default not found", p)
			}
			b = nb
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyIfExists(t *testing.T, from, to string) bool {
	t.Helper()
	b, err := os.ReadFile(from)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return true
}

// TestE2EScapOpenDoesNotBuild is the proof that a scap-open that does not
// build is never a silent green: a kmod cell passes in a real VM, then the
// same tree's scap-open stops compiling (MINILIBS_FAULT=scap-open). The
// compile stage and the loop both fail naming the log, the cell is an
// error (JUnit <error>), its driver_ok artifact is gone, and the result
// stage counts the regression and fails with VM_FAIL_ON_REGRESSION=1.
func TestE2EScapOpenDoesNotBuild(t *testing.T) {
	shared := e2eSetup(t, map[string]string{"VM_PROVIDER": "qemu", "VM_COMPILERS": "gcc-12", "VM_DRIVERS": "kmod"})
	k61, _ := e2etest.CIKernels(t, shared.BuildDir)
	ctx, out := t.Context(), ui.New(os.Stderr)
	base := filepath.Join(shared.BuildDir, "scap-open-fault")
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	cfg := *shared
	cfg.BuildDir, cfg.LibsDir, cfg.StandIn = filepath.Join(base, "build"), filepath.Join(base, "src"), false
	cfg.FailOnRegr, cfg.Seed = true, 1
	if err := os.MkdirAll(cfg.BuildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyIfExists(t, shared.Path(layout.Manifest), cfg.Path(layout.Manifest))
	// The accelerator the shared build dir decided (a failing KVM probe
	// costs its whole deadline); without one, emulation.
	if !copyIfExists(t, shared.Path("accel.json"), cfg.Path("accel.json")) {
		cfg.Accel = "tcg"
	}
	cell := func() *results.Cell {
		t.Helper()
		f, err := results.Load(cfg.Path(layout.Results))
		if err != nil {
			t.Fatal(err)
		}
		c := f.Find(k61, "gcc-12", "kmod")
		if c == nil {
			t.Fatalf("no cell gcc-12/%s/kmod", k61)
		}
		return c
	}
	driverOK := cfg.Path("driver_ok", "gcc-12", k61+".ko")

	// A passing run.
	copyStandIn(t, shared.Root, cfg.LibsDir, "none")
	start := time.Now()
	if err := Run(ctx, &cfg, out); err != nil {
		t.Fatal(err)
	}
	if err := vm.Loop(ctx, &cfg, out, ""); err != nil {
		t.Fatal(err)
	}
	if err := report.Write(ctx, &cfg, out); err != nil {
		t.Fatal(err)
	}
	if c := cell(); c.Test == nil || c.Test.Status != results.TestPass {
		t.Fatalf("first run: %+v %+v", c.Compile, c.Test)
	}
	if _, err := os.Stat(driverOK); err != nil {
		t.Fatalf("passing cell without driver_ok: %v", err)
	}
	t.Logf("passing run: %s", time.Since(start).Round(time.Second))

	// The same tree, whose scap-open does not compile.
	copyStandIn(t, shared.Root, cfg.LibsDir, "scap-open")
	start = time.Now()
	err := Run(ctx, &cfg, out)
	if !errors.Is(err, ErrScapOpen) || !strings.Contains(err.Error(), cfg.Path(layout.ScapOpenLog)) {
		t.Fatalf("compile: got %v, want a scap-open error naming its log", err)
	}
	t.Logf("compile: %v", err)
	c := cell()
	if c.Compile.Status != results.CompileOK || c.Test == nil || c.Test.Status != results.TestError ||
		!strings.HasPrefix(c.Test.Reason, "scap-open did not build (log logs/compile/scap-open.log): ") ||
		!strings.Contains(c.Test.Reason, "fault variant") {
		t.Fatalf("after compile: %+v %+v", c.Compile, c.Test)
	}
	if _, err := os.Stat(driverOK); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("driver_ok kept for a cell that cannot be tested: %v", err)
	}
	if _, err := os.Stat(cfg.Path("scap-open")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the earlier scap-open is still there: %v", err)
	}
	err = vm.Loop(ctx, &cfg, out, "")
	if err == nil || !strings.Contains(err.Error(), "scap-open did not build") {
		t.Fatalf("loop: got %v, want an error", err)
	}
	t.Logf("loop: %v", err)
	if c := cell(); c.Test == nil || c.Test.Status != results.TestError {
		t.Fatalf("after the loop: %+v", c.Test)
	}
	var printed bytes.Buffer
	err = report.Write(ctx, &cfg, ui.New(&printed))
	if err == nil || !strings.Contains(err.Error(), "1 regression") {
		t.Fatalf("result: got %v, want one regression\n%s", err, printed.String())
	}
	if want := "REGRESSION gcc-12/" + k61 + "/kmod: pass -> infra error: scap-open did not build (log logs/compile/scap-open.log)"; !strings.Contains(printed.String(), want) {
		t.Errorf("result output lacks %q:\n%s", want, printed.String())
	}
	junit, err := os.ReadFile(cfg.Path(report.JUnitXML))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(junit), `<error message="scap-open did not build (log logs/compile/scap-open.log)`) {
		t.Errorf("JUnit reports no error:\n%s", junit)
	}
	t.Logf("failing run: %s", time.Since(start).Round(time.Second))
}
