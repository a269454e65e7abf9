package qemuvm

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/report"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

var (
	shape61Arm64  = regexp.MustCompile(`^6\.1\.0-[0-9]+-cloud-arm64$`)
	shape612Arm64 = regexp.MustCompile(`^6\.12\.[0-9]+\+deb13-cloud-arm64$`)
)

// TestE2EArm64 runs the whole pipeline on Debian's arm64 cloud kernels
// (testdata/grids/ci-arm64.txt: bookworm 6.1, trixie 6.12) on this amd64
// host: the apt references resolve in the arm64 index and bring the amd64
// linux-kbuild for kbuild's host tools; the stand-in's kmod and modern
// probe are cross-built in the arm64 builder images; every kernel boots
// under qemu-system-aarch64 (TCG) with the arm64 agent, and drivers_test's
// smoke tests run against each driver.
func TestE2EArm64(t *testing.T) {
	cfg := e2etest.Config(t, map[string]string{
		"VM_PROVIDER":  "qemu",
		"VM_KERNELS":   filepath.Join(e2etest.Root(), "testdata", "grids", "ci-arm64.txt"),
		"VM_BUILD_DIR": e2etest.SideBuildDir(t, "e2e-arm64"),
		"VM_COMPILERS": "gcc-12,gcc-14,clang-19",
		"VM_DRIVERS":   "kmod,modern_bpf",
		"VM_RETEST":    "all",
	})
	out := ui.New(os.Stderr)
	if err := container.Build(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	if err := kernel.Fetch(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	var k61, k612 string
	for _, k := range m.Kernels {
		if k.Error != "" || k.Arch != layout.Arm64 {
			t.Fatalf("kernel %s: arch %q, error %q", k.Name, k.Arch, k.Error)
		}
		// kbuild's host tools come from the amd64 linux-kbuild of the
		// kernel's version, extracted over the arm64 one.
		if !slices.ContainsFunc(k.Headers, func(h string) bool {
			b := filepath.Base(h)
			return strings.HasPrefix(b, "linux-kbuild-") && strings.HasSuffix(b, "_amd64.deb")
		}) {
			t.Errorf("%s: no amd64 linux-kbuild among the header packages %v", k.UnameR, k.Headers)
		}
		switch {
		case shape61Arm64.MatchString(k.UnameR):
			k61 = k.UnameR
		case shape612Arm64.MatchString(k.UnameR):
			k612 = k.UnameR
		}
	}
	if k61 == "" || k612 == "" {
		t.Fatalf("no arm64 6.1 and 6.12 kernels in the manifest: %+v", m.Kernels)
	}
	if err := compile.Run(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	if err := loop.Run(t.Context(), cfg, out, Provider{}, ""); err != nil {
		t.Fatal(err)
	}
	if err := report.Write(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}

	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []results.Cell{
		{Kernel: k61, Compiler: "gcc-12", Driver: "kmod"},
		{Kernel: k61, Compiler: "gcc-14", Driver: "kmod"},
		{Kernel: k612, Compiler: "gcc-14", Driver: "kmod"},
		{Kernel: k61, Compiler: "clang-19", Driver: "modern_bpf"},
		{Kernel: k612, Compiler: "clang-19", Driver: "modern_bpf"},
	} {
		c := rf.Find(want.Kernel, want.Compiler, want.Driver)
		if c == nil || c.Test == nil || c.Compile == nil {
			t.Errorf("%s: not compiled and tested: %+v", want.ID(), c)
			continue
		}
		if c.Arch != layout.Arm64 || c.Test.Status != results.TestPass || c.Test.Events < cfg.MinEvents || c.Test.Provider != "qemu" {
			t.Errorf("%s: arch %q, test %+v", want.ID(), c.Arch, *c.Test)
		}
		// The stand-in's drivers_test, smoke filter: arm64 has no open(2),
		// so two tests (openat, and one more) rather than x86's three.
		if b := c.Test.Behaviour; b == nil || b.Mode != "smoke" || b.Passed != 2 || b.Failed != 0 || b.Error != "" {
			t.Errorf("%s: behaviour %+v, want smoke with 2 passed", want.ID(), b)
		} else {
			t.Logf("%s: %d events, open after %.1fs, cell %.1fs; behaviour %d passed in %.1fs",
				want.ID(), c.Test.Events, c.Test.Load, c.Test.Seconds, b.Passed, b.Seconds)
		}
		art := cfg.Path(c.Compile.Artifact)
		if want.Driver == "modern_bpf" {
			art = cfg.Path(layout.Artifact(want.Compiler, "", want.Driver, layout.Arm64))
		}
		checkAarch64(t, art, want.Kernel, want.Driver == "kmod")
	}
	checkAarch64(t, cfg.Path(layout.ScapOpenFor(layout.Arm64)), "", false)
	// gcc-12 cannot build for trixie's kernel, made by gcc-14: a compile
	// failure that says so, as on amd64.
	if c := rf.Find(k612, "gcc-12", "kmod"); c == nil || c.Compile == nil || c.Compile.Status != results.CompileFail ||
		!strings.Contains(c.Compile.Reason, "older than the kernel's own gcc-14") {
		t.Errorf("gcc-12 on %s: %+v", k612, c)
	}

	// Every row of the matrices says its architecture.
	md, err := os.ReadFile(cfg.Path(report.MarkdownMD))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{k61, k612} {
		if !regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(k) + ` +\| arm64 · gcc-1[24] · BTF`).Match(md) {
			t.Errorf("Markdown has no arm64 row for %s:\n%s", k, md)
		}
	}
	junit, err := os.ReadFile(cfg.Path(report.JUnitXML))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(junit, []byte(`classname="test.arm64.kmod"`)) || !bytes.Contains(junit, []byte(`classname="behaviour.arm64.modern_bpf"`)) {
		t.Errorf("JUnit class names do not say arm64")
	}
}

// checkAarch64 fails t unless path is an aarch64 ELF file; a kernel
// module must also carry the kernel's vermagic.
func checkAarch64(t *testing.T, path, kernel string, module bool) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("%s: machine %v, want aarch64", path, f.Machine)
	}
	if !module {
		return
	}
	s := f.Section(".modinfo")
	if s == nil {
		t.Errorf("%s: no .modinfo", path)
		return
	}
	b, _ := s.Data()
	if !bytes.Contains(b, []byte("vermagic="+kernel+" SMP")) || !bytes.Contains(b, []byte("aarch64")) {
		t.Errorf("%s: vermagic does not name %s on aarch64: %q", path, kernel, b)
	}
}
