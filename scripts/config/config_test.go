package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	root := t.TempDir()
	c, err := Parse(env(nil), root)
	if err != nil {
		t.Fatal(err)
	}
	if c.BuildDir != filepath.Join(root, "build") || c.KernelsFile != filepath.Join(root, "kernels.txt") {
		t.Errorf("paths: build %s, kernels %s", c.BuildDir, c.KernelsFile)
	}
	if c.Jobs != runtime.NumCPU() || c.Provider != "auto" || c.MinEvents != 30 || c.TestTime != 20*time.Second || c.Retries != 2 {
		t.Errorf("defaults: %+v", c)
	}
	if strings.Join(c.Drivers, ",") != "kmod,bpf,modern_bpf" || strings.Join(c.Compilers, ",") != DefaultCompilers {
		t.Errorf("drivers %v compilers %v", c.Drivers, c.Compilers)
	}
	// No libs tree two levels up from a temp dir: the stand-in is used.
	if !c.StandIn || c.LibsDir != filepath.Join(root, StandInDir) {
		t.Errorf("stand-in: %v %s", c.StandIn, c.LibsDir)
	}
	if !strings.Contains(c.SourceNote(), "stand-in") {
		t.Errorf("note: %s", c.SourceNote())
	}
}

func TestLibsTreeDetected(t *testing.T) {
	libs := t.TempDir()
	os.MkdirAll(filepath.Join(libs, "driver"), 0o755)
	os.WriteFile(filepath.Join(libs, "driver", "CMakeLists.txt"), []byte("# driver\n"), 0o644)
	os.WriteFile(filepath.Join(libs, "CMakeLists.txt"), []byte("option(BUILD_DRIVER \"\" ON)\n"), 0o644)
	c, err := Parse(env(map[string]string{"VM_LIBS_DIR": libs}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.StandIn || c.LibsDir != libs {
		t.Errorf("libs tree not used: %v %s", c.StandIn, c.LibsDir)
	}
}

func TestOverrides(t *testing.T) {
	c, err := Parse(env(map[string]string{
		"VM_BUILD_DIR": "/tmp/x", "VM_JOBS": "3", "VM_COMPILERS": " gcc-12, clang-14 ,gcc-12",
		"VM_DRIVERS": "kmod", "VM_PROVIDER": "qemu", "VM_ACCEL": "tcg", "VM_RETEST": "all",
		"VM_QEMU_PRINT": "1", "VM_SEED": "42", "VM_DEBIAN_MIRROR": "http://example.invalid/debian/",
	}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.BuildDir != "/tmp/x" || c.Jobs != 3 || strings.Join(c.Compilers, ",") != "gcc-12,clang-14" ||
		!c.Has("kmod") || c.Has("bpf") || c.Provider != "qemu" || c.Accel != "tcg" || !c.RetestAll ||
		!c.QemuPrint || c.Seed != 42 || c.Mirror != "http://example.invalid/debian" {
		t.Errorf("overrides: %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ name, val, want string }{
		{"VM_JOBS", "zero", "VM_JOBS=\"zero\": want a positive whole number"},
		{"VM_JOBS", "0", "VM_JOBS"},
		{"VM_COMPILERS", "gcc-12,banana", "VM_COMPILERS=\"banana\""},
		{"VM_DRIVERS", "kmod,ebpf", "VM_DRIVERS=\"ebpf\": want a comma-separated list of kmod, bpf, modern_bpf"},
		{"VM_PROVIDER", "vmware", "one of auto, qemu, virtualbox, libvirt"},
		{"VM_ACCEL", "hvf", "VM_ACCEL"},
		{"VM_MIN_EVENTS", "-1", "VM_MIN_EVENTS"},
		{"VM_RETRIES", "x", "VM_RETRIES"},
		{"VM_QEMU_PRINT", "maybe", "VM_QEMU_PRINT"},
		{"VM_RETEST", "some", "VM_RETEST"},
		{"VM_DEBIAN_MIRROR", "ftp://x", "VM_DEBIAN_MIRROR"},
	} {
		_, err := Parse(env(map[string]string{tc.name: tc.val}), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want an error containing %q", tc.name, tc.val, err, tc.want)
		}
	}
}

func TestKernelsSet(t *testing.T) {
	c, err := Parse(env(nil), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.KernelsSet {
		t.Error("KernelsSet without VM_KERNELS")
	}
	c, err = Parse(env(map[string]string{"VM_KERNELS": "grid.txt"}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !c.KernelsSet || filepath.Base(c.KernelsFile) != "grid.txt" {
		t.Errorf("VM_KERNELS=grid.txt: set %v, file %s", c.KernelsSet, c.KernelsFile)
	}
}
