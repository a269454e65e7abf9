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
	if c.Jobs != runtime.NumCPU() || c.Provider != "auto" || c.MinEvents != 30 || c.TestTime != 20*time.Second || c.Retries != 2 ||
		c.LoadTime != DefaultLoadSeconds*time.Second {
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

// libsSkeleton makes the part of a libs tree that detection reads.
func libsSkeleton(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "driver"), 0o755)
	os.MkdirAll(filepath.Join(dir, "userspace", "libscap"), 0o755)
	// As in every release: the option in driver/, only add_subdirectory at the top.
	os.WriteFile(filepath.Join(dir, "driver", "CMakeLists.txt"), []byte("option(BUILD_DRIVER \"Build the driver on Linux\" ON)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "CMakeLists.txt"), []byte("add_subdirectory(driver ${PROJECT_BINARY_DIR}/driver)\n"), 0o644)
}

func TestLibsTreeDetected(t *testing.T) {
	libs := t.TempDir()
	libsSkeleton(t, libs)
	c, err := Parse(env(map[string]string{"VM_LIBS_DIR": libs}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.StandIn || c.LibsDir != libs {
		t.Errorf("libs tree not used: %v %s", c.StandIn, c.LibsDir)
	}
}

// This suite at libs' test/vm finds libs two levels up, without settings,
// and neither its own directory nor the build directory counts as libs.
func TestLibsTreeFoundFromTestVM(t *testing.T) {
	libs := t.TempDir()
	libsSkeleton(t, libs)
	root := filepath.Join(libs, "test", "vm")
	os.MkdirAll(root, 0o755)
	c, err := Parse(env(nil), root)
	if err != nil {
		t.Fatal(err)
	}
	if c.StandIn || c.LibsDir != libs || !strings.HasPrefix(c.SourceNote(), "libs tree: ") {
		t.Fatalf("from test/vm: stand-in %v, libs %s, note %q", c.StandIn, c.LibsDir, c.SourceNote())
	}
	if got := strings.Join(c.NotLibs(), ","); got != "test/vm,test/vm/build" {
		t.Errorf("NotLibs = %q", got)
	}
	tr, err := c.LibsTree()
	if err != nil || tr.StandIn || tr.Dir != libs {
		t.Errorf("LibsTree: %+v, %v", tr, err)
	}
}

// VM_LIBS_DIR may name the stand-in tree: it is detected like libs and
// reported as the stand-in.
func TestLibsDirStandIn(t *testing.T) {
	root := filepath.Join("..", "..")
	c, err := Parse(env(map[string]string{"VM_LIBS_DIR": StandInDir}), root)
	if err != nil {
		t.Fatal(err)
	}
	if !c.StandIn {
		t.Errorf("VM_LIBS_DIR=%s not taken as the stand-in", StandInDir)
	}
}

// An explicit VM_LIBS_DIR that is not libs is an error, never a silent
// fall back to the stand-in.
func TestLibsDirNotLibsIsAnError(t *testing.T) {
	notLibs := t.TempDir()
	os.WriteFile(filepath.Join(notLibs, "CMakeLists.txt"), []byte("option(BUILD_DRIVER \"\" ON)\n"), 0o644)
	_, err := Parse(env(map[string]string{"VM_LIBS_DIR": notLibs}), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "VM_LIBS_DIR=") || !strings.Contains(err.Error(), "no driver/CMakeLists.txt") {
		t.Fatalf("got %v", err)
	}
}

func TestOverrides(t *testing.T) {
	c, err := Parse(env(map[string]string{
		"VM_BUILD_DIR": "/tmp/x", "VM_JOBS": "3", "VM_COMPILERS": " gcc-12, clang-14 ,gcc-12",
		"VM_DRIVERS": "kmod", "VM_PROVIDER": "qemu", "VM_ACCEL": "tcg", "VM_RETEST": "all",
		"VM_QEMU_PRINT": "1", "VM_SEED": "42", "VM_DEBIAN_MIRROR": "http://example.invalid/debian/",
		"VM_LOAD_SECONDS": "240", "VM_TEST_SECONDS": "5",
	}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.BuildDir != "/tmp/x" || c.Jobs != 3 || strings.Join(c.Compilers, ",") != "gcc-12,clang-14" ||
		!c.Has("kmod") || c.Has("bpf") || c.Provider != "qemu" || c.Accel != "tcg" || !c.RetestAll ||
		!c.QemuPrint || c.Seed != 42 || c.Mirror != "http://example.invalid/debian" ||
		c.LoadTime != 240*time.Second || c.TestTime != 5*time.Second {
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
		{"VM_LOAD_SECONDS", "2m", "VM_LOAD_SECONDS=\"2m\": want a positive whole number"},
		{"VM_LOAD_SECONDS", "0", "VM_LOAD_SECONDS"},
		{"VM_RETRIES", "x", "VM_RETRIES"},
		{"VM_QEMU_PRINT", "maybe", "VM_QEMU_PRINT"},
		{"VM_RETEST", "some", "VM_RETEST"},
		{"VM_DEBIAN_MIRROR", "ftp://x", "VM_DEBIAN_MIRROR"},
		{"VM_SHARD", "3/2", "VM_SHARD=\"3/2\": want K/N with 1 <= K <= N"},
		{"VM_SHARD", "0/2", "VM_SHARD"},
		{"VM_SHARD", "1/0", "VM_SHARD"},
		{"VM_SHARD", "2", "VM_SHARD"},
		{"VM_SHARD", "a/b", "VM_SHARD"},
		{"VM_DOWNLOAD_RATE", "fast", "VM_DOWNLOAD_RATE=\"fast\": want bytes per second"},
		{"VM_BEHAVIOUR", "all", "VM_BEHAVIOUR=\"all\": want one of smoke, full, off"},
		{"VM_BEHAVIOUR_SECONDS", "0", "VM_BEHAVIOUR_SECONDS"},
		{"VM_DOWNLOAD_RATE", "-1M", "VM_DOWNLOAD_RATE"},
		{"VM_DOWNLOAD_RATE", "4T", "VM_DOWNLOAD_RATE"},
		{"VM_DOWNLOAD_RATE", "M", "VM_DOWNLOAD_RATE"},
		{"VM_RESULTS", "shards/[/results.json", "VM_RESULTS=\"shards/[/results.json\": want a comma-separated list of results files or glob patterns"},
	} {
		_, err := Parse(env(map[string]string{tc.name: tc.val}), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want an error containing %q", tc.name, tc.val, err, tc.want)
		}
	}
}

func TestDownloadRate(t *testing.T) {
	for v, want := range map[string]int64{"": 0, "0": 0, "1000": 1000, "512K": 512 << 10, "4m": 4 << 20, "1G": 1 << 30} {
		c, err := Parse(env(map[string]string{"VM_DOWNLOAD_RATE": v}), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if c.DownloadRate != want {
			t.Errorf("VM_DOWNLOAD_RATE=%q: got %d, want %d", v, c.DownloadRate, want)
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

func TestKernelCompiler(t *testing.T) {
	for _, tc := range []struct {
		val, compilers string
		kernel         bool
	}{
		{"kernel", "", true},
		{"kernel,clang-19", "clang-19", true},
		{"gcc-12, kernel ,kernel", "gcc-12", true},
		{"gcc-12", "gcc-12", false},
	} {
		c, err := Parse(env(map[string]string{"VM_COMPILERS": tc.val}), t.TempDir())
		if err != nil {
			t.Fatalf("VM_COMPILERS=%s: %v", tc.val, err)
		}
		if strings.Join(c.Compilers, ",") != tc.compilers || c.KernelCompiler != tc.kernel {
			t.Errorf("VM_COMPILERS=%s: compilers %v, kernel %v", tc.val, c.Compilers, c.KernelCompiler)
		}
		want := tc.compilers
		if tc.kernel {
			want = strings.TrimPrefix(want+",kernel", ",")
		}
		if got := strings.Join(c.CompilerAxis(), ","); got != want {
			t.Errorf("VM_COMPILERS=%s: axis %s, want %s", tc.val, got, want)
		}
	}
	_, err := Parse(env(map[string]string{"VM_COMPILERS": "kernels"}), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "or kernel (each kernel's own compiler)") {
		t.Errorf("VM_COMPILERS=kernels: %v", err)
	}
}

func TestShardAndResults(t *testing.T) {
	root := t.TempDir()
	c, err := Parse(env(nil), root)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Shard.Whole() || c.Shard.String() != "" || c.Results != nil {
		t.Errorf("defaults: shard %+v, results %v", c.Shard, c.Results)
	}
	c, err = Parse(env(map[string]string{"VM_SHARD": " 2/3 ", "VM_RESULTS": "shards/*/results.json, /tmp/a.json"}), root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shard != (Shard{Index: 2, Count: 3}) || c.Shard.Whole() || c.Shard.String() != "2/3" {
		t.Errorf("VM_SHARD=2/3: %+v %q", c.Shard, c.Shard)
	}
	want := []string{filepath.Join(root, "shards", "*", "results.json"), "/tmp/a.json"}
	if strings.Join(c.Results, ",") != strings.Join(want, ",") {
		t.Errorf("VM_RESULTS: %v, want %v", c.Results, want)
	}
}

// VM_BEHAVIOUR: smoke by default; each mode has its own default time limit.
func TestBehaviourSettings(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		mode string
		secs int
		on   bool
	}{
		{nil, "smoke", DefaultSmokeSeconds, true},
		{map[string]string{"VM_BEHAVIOUR": "full"}, "full", DefaultFullSeconds, true},
		{map[string]string{"VM_BEHAVIOUR": "full", "VM_BEHAVIOUR_SECONDS": "90"}, "full", 90, true},
		{map[string]string{"VM_BEHAVIOUR": "off"}, "off", DefaultSmokeSeconds, false},
	} {
		cfg, err := Parse(func(k string) string { return c.env[k] }, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Behaviour != c.mode || cfg.BehaviourTime.Seconds() != float64(c.secs) || cfg.BehaviourOn() != c.on {
			t.Errorf("%v: mode %s, %s, on %v", c.env, cfg.Behaviour, cfg.BehaviourTime, cfg.BehaviourOn())
		}
	}
}
