package report

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm"
)

// TestE2EShards runs the CI grid three times, each in its own build
// directory: whole, as shard 1/2 and as shard 2/2 (compile and the qemu
// loop; kmod with one gcc, to keep it short). Each shard takes one of the
// two kernels, and the merge of the shards has the whole run's cells,
// statuses and grid.
func TestE2EShards(t *testing.T) {
	shared := e2etest.Config(t, map[string]string{"VM_PROVIDER": "qemu", "VM_COMPILERS": "gcc-12", "VM_DRIVERS": "kmod", "VM_SEED": "1"})
	ctx, out := t.Context(), ui.New(os.Stderr)
	// The shared build directory's package cache, filled once.
	if err := kernel.Fetch(ctx, shared, out); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(shared.BuildDir, "shards")
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	run := func(name string, shard config.Shard) *results.File {
		t.Helper()
		cfg := *shared
		cfg.BuildDir, cfg.Shard = filepath.Join(base, name), shard
		linkCache(t, shared.BuildDir, cfg.BuildDir, "kernels", "headers", "apt")
		// The accelerator the shared build dir decided (a failing KVM
		// probe costs its whole deadline); without one, emulation.
		if b, err := os.ReadFile(shared.Path("accel.json")); err == nil {
			if err := os.WriteFile(cfg.Path("accel.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			cfg.Accel = "tcg"
		}
		if err := kernel.Fetch(ctx, &cfg, out); err != nil {
			t.Fatalf("%s: kernel: %v", name, err)
		}
		if err := compile.Run(ctx, &cfg, out); err != nil {
			t.Fatalf("%s: compile: %v", name, err)
		}
		if err := vm.Loop(ctx, &cfg, out, ""); err != nil {
			t.Fatalf("%s: loop: %v", name, err)
		}
		f, err := results.Load(cfg.Path(layout.Results))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	timed := func(name string, shard config.Shard) (*results.File, time.Duration) {
		t0 := time.Now()
		f := run(name, shard)
		return f, time.Since(t0)
	}
	whole, tWhole := timed("whole", config.Shard{})
	one, tOne := timed("1", config.Shard{Index: 1, Count: 2})
	two, tTwo := timed("2", config.Shard{Index: 2, Count: 2})
	// The figures README's Scaling out quotes: one host for the grid, or
	// two shards on two hosts, whose wall time is the slower shard's.
	t.Logf("kernel+compile+loop: whole grid %s; shard 1/2 %s, shard 2/2 %s: on two hosts %s (%.2fx of one host)",
		tWhole.Round(100*time.Millisecond), tOne.Round(100*time.Millisecond), tTwo.Round(100*time.Millisecond),
		max(tOne, tTwo).Round(100*time.Millisecond), max(tOne, tTwo).Seconds()/tWhole.Seconds())

	k61, k612 := e2etest.CIKernels(t, filepath.Join(base, "whole"))
	kernelsOf := func(f *results.File) []string {
		var ks []string
		for _, c := range f.Cells {
			if !slices.Contains(ks, c.Kernel) {
				ks = append(ks, c.Kernel)
			}
		}
		return ks
	}
	a, b := kernelsOf(one), kernelsOf(two)
	if len(a) != 1 || len(b) != 1 || a[0] == b[0] || !slices.Contains([]string{k61, k612}, a[0]) || !slices.Contains([]string{k61, k612}, b[0]) {
		t.Fatalf("shards took kernels %v and %v, want one each of %s, %s", a, b, k61, k612)
	}
	if one.Run.Shard == nil || two.Run.Shard == nil || one.Run.Shard.Grid != two.Run.Shard.Grid || one.Run.Shard.Index != 1 || two.Run.Shard.Index != 2 {
		t.Fatalf("shard records: %+v, %+v", one.Run.Shard, two.Run.Shard)
	}

	merged := *shared
	merged.BuildDir = filepath.Join(base, "merged")
	merged.Results = []string{filepath.Join(base, "[12]", "results.json")}
	if err := Write(ctx, &merged, out); err != nil {
		t.Fatal(err)
	}
	m, err := results.Load(merged.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := outcomes(m), outcomes(whole); !slices.Equal(got, want) {
		t.Errorf("merged shards:\n%s\nwhole run:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if m.Run.Grid == "" || m.Run.Grid != whole.Run.Grid || m.Run.Shard != nil {
		t.Errorf("merged run: grid %q shard %+v, whole run's grid %q", m.Run.Grid, m.Run.Shard, whole.Run.Grid)
	}
	t.Logf("cells:\n%s", strings.Join(outcomes(m), "\n"))
}

// outcomes lists each cell with its compile and test statuses.
func outcomes(f *results.File) []string {
	var out []string
	for _, c := range f.Sorted() {
		s := c.ID()
		if c.Compile != nil {
			s += " compile " + c.Compile.Status
		}
		if c.Test != nil {
			s += " test " + c.Test.Status
		}
		out = append(out, s)
	}
	return out
}

// linkCache hard-links the package caches (subs) of the shared build
// directory into dst, so that no package is downloaded twice. Stages
// replace cached files by rename, never in place, so a shared link is
// never changed under the other directory.
func linkCache(t *testing.T, src, dst string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		err := filepath.WalkDir(filepath.Join(src, sub), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			to := filepath.Join(dst, rel)
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			if err := os.Link(p, to); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
