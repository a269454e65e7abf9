package testplan

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
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

func TestFor(t *testing.T) {
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
	p := For(cfg, k, rf)
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
	p = For(cfg, k, rf)
	todo, kept = p.Todo, p.Kept
	if len(todo) != 3 || kept != 0 {
		t.Errorf("retest all: todo %v kept %d", ids(todo), kept)
	}

	// Without build/scap-open the kmod and bpf cells cannot run: they are
	// returned apart; modern_bpf runs its own scap-open and stays.
	if err := os.Remove(cfg.Path("scap-open")); err != nil {
		t.Fatal(err)
	}
	p = For(cfg, k, rf)
	todo, blocked = p.Todo, p.NoScapOpen
	if got := ids(todo); !slices.Equal(got, []string{"clang-19/" + k.UnameR + "/modern_bpf"}) {
		t.Errorf("without scap-open: todo %v", got)
	}
	if len(blocked) != 2 {
		t.Errorf("without scap-open: blocked %v, want the kmod and bpf cells", ids(blocked))
	}
}
