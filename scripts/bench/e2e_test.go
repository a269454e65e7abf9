package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// TestE2EBench runs the whole bench on its grid (the CI grid and an arm64
// kernel, testdata/grids/bench.txt) with two compilers in a build dir of
// its own (<VM_E2E_BUILD>-e2e-bench, default <repo>/build/e2e-bench: another
// grid's manifest must not replace the shared one), whose package cache
// starts from the shared end-to-end build dir's, and checks that the
// report holds every figure, measured.
func TestE2EBench(t *testing.T) {
	shared := e2etest.BuildDir(t)
	cfg := e2etest.Config(t, map[string]string{"VM_PROVIDER": "qemu", "VM_COMPILERS": "gcc-12,clang-19",
		"VM_KERNELS":   filepath.Join(e2etest.Root(), DefaultGrid),
		"VM_BUILD_DIR": e2etest.SideBuildDir(t, "e2e-bench")})
	for _, sub := range []string{"headers", "kernels"} {
		e2etest.LinkTree(filepath.Join(shared, sub), cfg.Path(sub))
	}
	out := ui.New(os.Stderr)
	// What the bench target's dependencies provide: builder images and the
	// grid's packages in the main cache (both reused across runs).
	if err := container.Build(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Fetch(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	if err := Run(t.Context(), cfg, out); err != nil {
		t.Fatalf("bench: %v", err)
	}

	b, err := os.ReadFile(cfg.Path(ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", cfg.Path(ReportFile), err)
	}
	if err := r.Check(); err != nil {
		t.Error(err)
	}
	if r.CPUs != runtime.NumCPU() || (r.Accel != "kvm" && r.Accel != "tcg") {
		t.Errorf("machine: %d CPUs, accel %q", r.CPUs, r.Accel)
	}
	if len(r.Kernels) != 3 || !e2etest.Shape61.MatchString(r.Kernels[0]) || !e2etest.Shape612.MatchString(r.Kernels[1]) ||
		!regexp.MustCompile(`^6\.1\.0-[0-9]+-cloud-arm64$`).MatchString(r.Kernels[2]) {
		t.Fatalf("kernels %v, want the CI grid's 6.1 and 6.12 and bookworm's arm64 6.1", r.Kernels)
	}
	want := r.Kernels
	// The emulated arm64 kernel's floor and cell cost stand next to amd64's.
	for _, name := range []string{"compile cold, jobs=1", "warm / cold", "boot floor " + want[0], "boot floor " + want[1],
		"boot floor " + want[2], "cell cost / floor " + want[0], "cell cost / floor " + want[2],
		"loop, jobs=1", "per cell, jobs=1", "peak RSS, mage process", "peak RSS, one test VM (qemu)"} {
		if !slices.ContainsFunc(r.Figures, func(f Figure) bool { return f.Name == name }) {
			t.Errorf("no figure %q", name)
		}
	}
	for _, f := range r.Figures {
		if f.Error != "" || math.IsNaN(f.Value) || f.Value < 0 {
			t.Errorf("figure %q: value %v, error %q", f.Name, f.Value, f.Error)
		}
		if f.CPUs != r.CPUs || f.Accel != r.Accel {
			t.Errorf("figure %q: %d CPUs, accel %q", f.Name, f.CPUs, f.Accel)
		}
		if f.Goal != "" && f.Met == nil && f.Note == "" {
			t.Errorf("figure %q has a goal but no verdict", f.Name)
		}
	}
}
