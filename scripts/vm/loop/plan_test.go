package loop

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

func testConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	build := t.TempDir()
	cfg, err := config.Parse(func(k string) string {
		if k == "VM_BUILD_DIR" {
			return build
		}
		return env[k]
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(p), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestPlanKernel(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_COMPILERS": "gcc-12,gcc-14,clang-19"})
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64"}
	touch(t, cfg.Path("scap-open"))
	touch(t, cfg.Path("driver", "gcc-12", k.UnameR+".ko"))
	touch(t, cfg.Path("driver", "gcc-14", k.UnameR+".ko"))
	touch(t, cfg.Path("driver", "clang-19", k.UnameR+".o"))
	touch(t, cfg.Path("driver", "clang-19", "modern_bpf", "scap-open"))
	touch(t, cfg.Path("driver", "clang-19", "modern_bpf", "scap-open.root", "lib", "libc.so.6"))
	rf := &results.File{}
	// gcc-14's module is stale: the compile stage recorded a failure.
	rf.SetCompile(k.UnameR, "gcc-14", "kmod", results.Compile{Status: results.CompileFail})
	rf.SetTest(k.UnameR, "clang-19", "bpf", results.Test{Status: results.TestPass})
	rf.SetTest(k.UnameR, "gcc-12", "kmod", results.Test{Status: results.TestError})

	ids := func(cs []Cell) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID())
		}
		return out
	}
	p := PlanKernel(cfg, k, rf)
	todo, kept, blocked := p.Todo, p.Kept, p.NoScapOpen
	if len(blocked) != 0 {
		t.Errorf("blocked %v with scap-open present", ids(blocked))
	}
	want := []string{"gcc-12/" + k.UnameR + "/kmod", "clang-19/" + k.UnameR + "/modern_bpf"}
	if !slices.Equal(ids(todo), want) || kept != 1 {
		t.Errorf("todo %v kept %d, want %v kept 1", ids(todo), kept, want)
	}
	for _, c := range todo {
		if c.Driver == "modern_bpf" && (c.ScapOpen != c.Artifact || c.Root != c.Artifact+".root") {
			t.Errorf("modern_bpf runs its own scap-open: %+v", c)
		}
		if c.Driver == "kmod" && c.ScapOpen != cfg.Path("scap-open") {
			t.Errorf("kmod scap-open %s", c.ScapOpen)
		}
	}
	cfg.RetestAll = true
	p = PlanKernel(cfg, k, rf)
	todo, kept = p.Todo, p.Kept
	if len(todo) != 3 || kept != 0 {
		t.Errorf("retest all: todo %v kept %d", ids(todo), kept)
	}

	// Without build/scap-open the kmod and bpf cells cannot run: they are
	// returned apart; modern_bpf runs its own scap-open and stays.
	if err := os.Remove(cfg.Path("scap-open")); err != nil {
		t.Fatal(err)
	}
	p = PlanKernel(cfg, k, rf)
	todo, blocked = p.Todo, p.NoScapOpen
	if got := ids(todo); !slices.Equal(got, []string{"clang-19/" + k.UnameR + "/modern_bpf"}) {
		t.Errorf("without scap-open: todo %v", got)
	}
	if len(blocked) != 2 {
		t.Errorf("without scap-open: blocked %v, want the kmod and bpf cells", ids(blocked))
	}
}

// A cell whose driver built but whose scap-open did not is an error naming
// the log of that scap-open, loses its driver_ok artifact, and makes the
// loop fail; a modern_bpf cell counts only when its build is recorded.
func TestNoScapOpenIsAnError(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_COMPILERS": "gcc-12,clang-19", "VM_DRIVERS": "kmod,modern_bpf"})
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64"}
	touch(t, cfg.Path("driver", "gcc-12", k.UnameR+".ko"))
	touch(t, cfg.Path("driver_ok", "gcc-12", k.UnameR+".ko"))
	rf := &results.File{}
	p := PlanKernel(cfg, k, rf)
	if len(p.NoScapOpen) != 1 || p.NoScapOpen[0].Driver != "kmod" || len(p.Todo) != 0 {
		t.Fatalf("without any record: blocked %+v todo %+v", p.NoScapOpen, p.Todo)
	}
	rf.SetCompile(k.UnameR, "clang-19", "modern_bpf", results.Compile{Status: results.CompileOK, Log: "logs/compile/clang-19/modern_bpf.log"})
	p = PlanKernel(cfg, k, rf)
	if len(p.NoScapOpen) != 2 {
		t.Fatalf("modern_bpf compiled without its scap-open is not blocked: %+v", p.NoScapOpen)
	}
	if err := RecordNoScapOpen(cfg, p.NoScapOpen, "qemu"); err != nil {
		t.Fatal(err)
	}
	f, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for drv, log := range map[string]string{"kmod": "logs/compile/scap-open.log", "modern_bpf": "logs/compile/clang-19/modern_bpf.log"} {
		comp := map[string]string{"kmod": "gcc-12", "modern_bpf": "clang-19"}[drv]
		c := f.Find(k.UnameR, comp, drv)
		if c == nil || c.Test == nil || c.Test.Status != results.TestError || c.Test.Reason != "scap-open did not build (log "+log+")" || c.Test.Log != log {
			t.Errorf("%s: %+v", drv, c)
		}
	}
	if _, err := os.Stat(cfg.Path("driver_ok", "gcc-12", k.UnameR+".ko")); !os.IsNotExist(err) {
		t.Errorf("driver_ok artifact kept: %v", err)
	}
	err = MissingScapOpen(p.NoScapOpen)
	if err == nil || err.Error() != "2 cells could not be tested: scap-open did not build (logs logs/compile/scap-open.log, logs/compile/clang-19/modern_bpf.log)" {
		t.Errorf("loop error: %v", err)
	}
	if MissingScapOpen(nil) != nil {
		t.Errorf("an error without blocked cells")
	}
}

// With VM_COMPILERS=kernel, a kernel's own-compiler kmod is tested with the
// compiler the compile stage chose for it, and only for that kernel.
func TestForKernelCompiler(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_COMPILERS": "kernel,clang-19", "VM_DRIVERS": "kmod,bpf"})
	k61 := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64"}
	k612 := kernel.Entry{UnameR: "6.12.117+deb13-cloud-amd64"}
	touch(t, cfg.Path("scap-open"))
	rf := &results.File{}
	for _, c := range []struct{ k, comp string }{{k61.UnameR, "gcc-12"}, {k612.UnameR, "gcc-14"}} {
		touch(t, cfg.Path("driver", c.comp, c.k+".ko"))
		touch(t, cfg.Path("driver", "clang-19", c.k+".o"))
		rf.SetCompile(c.k, c.comp, "kmod", results.Compile{Status: results.CompileOK, ForKernel: c.comp})
	}
	// A gcc-14 module for 6.1 from an earlier run that named gcc-14: not
	// this grid's.
	touch(t, cfg.Path("driver", "gcc-14", k61.UnameR+".ko"))
	rf.SetCompile(k61.UnameR, "gcc-14", "kmod", results.Compile{Status: results.CompileOK})
	for _, tc := range []struct {
		k    kernel.Entry
		want []string
	}{
		{k61, []string{"clang-19/6.1.0-50-cloud-amd64/bpf", "gcc-12/6.1.0-50-cloud-amd64/kmod"}},
		{k612, []string{"clang-19/6.12.117+deb13-cloud-amd64/bpf", "gcc-14/6.12.117+deb13-cloud-amd64/kmod"}},
	} {
		var got []string
		for _, c := range PlanKernel(cfg, tc.k, rf).Todo {
			got = append(got, c.ID())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: todo %v, want %v", tc.k.UnameR, got, tc.want)
		}
	}
}
