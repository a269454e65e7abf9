package minilibs

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
)

// treeDir is the stand-in tree, relative to this package's directory.
var treeDir = filepath.Join("..", "..", config.StandInDir)

// need skips the test when a host tool it drives is not installed.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// copyTree copies the stand-in tree to a fresh writable directory: configure
// writes into the source tree, like libs.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "minilibs")
	err := filepath.WalkDir(treeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(treeDir, p)
		if err != nil {
			return err
		}
		if rel == "build" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", treeDir, err)
	}
	return dst
}

// run runs name args in dir and returns its combined output and error. The
// environment is the test's, without the variables that would change what
// make does (CC, KERNELDIR, an outer make's flags), plus env.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "CC", "CXX", "KERNELDIR", "FAULT", "OPEN_DELAY", "CLANG", "LLC", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// configure runs cmake for src in src/build with the host's cc.
func configure(t *testing.T, src string, args ...string) string {
	t.Helper()
	build := filepath.Join(src, "build")
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := run(build, []string{"CC=cc"}, "cmake", append(args, src)...)
	if err != nil {
		t.Fatalf("cmake %v: %v\n%s", args, err, out)
	}
	return build
}

func TestTreeIsDetectedAsLibs(t *testing.T) {
	top, err := os.ReadFile(filepath.Join(treeDir, "CMakeLists.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(top, []byte("BUILD_DRIVER")) {
		t.Errorf("top-level CMakeLists.txt does not mention BUILD_DRIVER")
	}
	for _, f := range []string{"driver/CMakeLists.txt", "driver/bpf/CMakeLists.txt", "README.md"} {
		if _, err := os.Stat(filepath.Join(treeDir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

func TestConfigureWritesIntoSourceAndPreparesKbuildDirs(t *testing.T) {
	need(t, "cmake", "make", "cc")
	src := copyTree(t)
	build := configure(t, src, "-DBUILD_BPF=ON", "-DUSE_BUNDLED_DEPS=ON", "-DCREATE_TEST_TARGETS=OFF")

	hdr, err := os.ReadFile(filepath.Join(src, "driver", "driver_config.h"))
	if err != nil {
		t.Fatalf("configure did not write driver_config.h into the source tree: %v", err)
	}
	if !bytes.Contains(hdr, []byte(`#define DRIVER_NAME "scap"`)) || !bytes.Contains(hdr, []byte("#define MINILIBS_VERSION \"")) {
		t.Errorf("driver_config.h lacks DRIVER_NAME/MINILIBS_VERSION:\n%s", hdr)
	}
	for _, f := range []string{
		"driver/src/Makefile", "driver/src/Kbuild", "driver/src/main.c", "driver/src/driver_config.h",
		"driver/bpf/src/Makefile", "driver/bpf/src/Kbuild", "driver/bpf/src/probe.c", "driver/bpf/src/scap_event.h",
	} {
		if _, err := os.Stat(filepath.Join(build, f)); err != nil {
			t.Errorf("configure did not prepare %s: %v", f, err)
		}
	}
}

func TestConfigureRejectsBadOptions(t *testing.T) {
	need(t, "cmake", "cc")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-DMINILIBS_FAULT=oops"}, "MINILIBS_FAULT=oops"},
		{[]string{"-DMINILIBS_FAULT=slowopen", "-DMINILIBS_OPEN_DELAY=soon"}, "MINILIBS_OPEN_DELAY=soon"},
		{[]string{"-DBUILD_LIBSCAP_MODERN_BPF=ON", "-DMODERN_CLANG_EXE=/nonexistent/clang-99"}, "MODERN_CLANG_EXE=/nonexistent/clang-99 does not exist"},
	}
	for _, tt := range tests {
		src := copyTree(t)
		build := filepath.Join(src, "build")
		if err := os.MkdirAll(build, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := run(build, []string{"CC=cc"}, "cmake", append(tt.args, src)...)
		if err == nil {
			t.Errorf("cmake %v succeeded, want an error:\n%s", tt.args, out)
			continue
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("cmake %v: output lacks %q:\n%s", tt.args, tt.want, out)
		}
	}
}

// fakeKernelDir is a directory that stands in for a kernel headers dir: its
// Makefile records the variables kbuild would receive and writes the
// artifact kbuild would build into M. (Real kernel headers are exercised by
// the end-to-end tests of the compile stage.)
func fakeKernelDir(t *testing.T) (dir, record string) {
	t.Helper()
	dir = t.TempDir()
	record = filepath.Join(dir, "record")
	mk := "modules:\n" +
		"\techo \"M=$(M) CC=$(CC) CLANG=$(CLANG) LLC=$(LLC) FAULT=$(MINILIBS_FAULT) DELAY=$(MINILIBS_OPEN_DELAY) GOAL=$(MAKECMDGOALS)\" >> " + record + "\n" +
		"\tif [ -f $(M)/main.c ]; then touch $(M)/scap.ko; fi\n" +
		"\tif [ -f $(M)/probe.c ]; then touch $(M)/probe.o; fi\n"
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, record
}

func readRecord(t *testing.T, record string) string {
	t.Helper()
	data, err := os.ReadFile(record)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(data)
}

// configuredCompiler returns CMAKE_C_COMPILER from build's cache.
func configuredCompiler(t *testing.T, build string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(build, "CMakeCache.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CMAKE_C_COMPILER:"); ok {
			return v[strings.Index(v, "=")+1:]
		}
	}
	t.Fatal("CMAKE_C_COMPILER not in CMakeCache.txt")
	return ""
}

func TestMakeTargetsPassVariablesToKbuild(t *testing.T) {
	need(t, "cmake", "make", "cc")
	src := copyTree(t)
	build := configure(t, src, "-DBUILD_BPF=ON")
	kdir, record := fakeKernelDir(t)
	driverSrc := filepath.Join(build, "driver", "src")
	cc := configuredCompiler(t, build)
	bpfSrc := filepath.Join(build, "driver", "bpf", "src")

	tests := []struct {
		name     string
		dir      string
		args     []string
		want     string // line the fake kbuild records
		artifact string
	}{
		{"make driver", build, []string{"driver", "KERNELDIR=" + kdir, "CC=gcc-77"},
			"M=" + driverSrc + " CC=gcc-77 CLANG= LLC= FAULT=none DELAY=10 GOAL=modules", "driver/scap.ko"},
		{"make driver without CC uses the configured compiler", build, []string{"driver", "KERNELDIR=" + kdir},
			"M=" + driverSrc + " CC=" + cc + " CLANG= LLC= FAULT=none DELAY=10 GOAL=modules", "driver/scap.ko"},
		{"make -C build/driver with FAULT", filepath.Join(build, "driver"), []string{"KERNELDIR=" + kdir, "CC=gcc-78", "FAULT=panic"},
			"M=" + driverSrc + " CC=gcc-78 CLANG= LLC= FAULT=panic DELAY=10 GOAL=modules", "driver/scap.ko"},
		{"make driver with a slow open", build, []string{"driver", "KERNELDIR=" + kdir, "CC=gcc-79", "FAULT=slowopen", "OPEN_DELAY=3"},
			"M=" + driverSrc + " CC=gcc-79 CLANG= LLC= FAULT=slowopen DELAY=3 GOAL=modules", "driver/scap.ko"},
		{"make driver with wrong events", build, []string{"driver", "KERNELDIR=" + kdir, "CC=gcc-80", "FAULT=behaviour"},
			"M=" + driverSrc + " CC=gcc-80 CLANG= LLC= FAULT=behaviour DELAY=10 GOAL=modules", "driver/scap.ko"},
		{"make bpf", build, []string{"bpf", "KERNELDIR=" + kdir, "CLANG=clang-77", "LLC=llc-77"},
			"M=" + bpfSrc + " CC=cc CLANG=clang-77 LLC=llc-77 FAULT=none DELAY= GOAL=modules", "driver/bpf/probe.o"},
		{"make -C build/driver/bpf with FAULT", filepath.Join(build, "driver", "bpf"), []string{"KERNELDIR=" + kdir, "CLANG=clang-78", "LLC=llc-78", "FAULT=verifier"},
			"M=" + bpfSrc + " CC=cc CLANG=clang-78 LLC=llc-78 FAULT=verifier DELAY= GOAL=modules", "driver/bpf/probe.o"},
		{"make bpf with wrong events", build, []string{"bpf", "KERNELDIR=" + kdir, "CLANG=clang-79", "LLC=llc-79", "FAULT=behaviour"},
			"M=" + bpfSrc + " CC=cc CLANG=clang-79 LLC=llc-79 FAULT=behaviour DELAY= GOAL=modules", "driver/bpf/probe.o"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(record)
			_ = os.Remove(filepath.Join(build, tt.artifact))
			out, err := run(tt.dir, nil, "make", tt.args...)
			if err != nil {
				t.Fatalf("make %v: %v\n%s", tt.args, err, out)
			}
			got := strings.TrimSpace(readRecord(t, record))
			if got != tt.want {
				t.Errorf("kbuild received\n  %s\nwant\n  %s", got, tt.want)
			}
			if _, err := os.Stat(filepath.Join(build, tt.artifact)); err != nil {
				t.Errorf("artifact not at the libs path: %v", err)
			}
		})
	}
}

func TestMakeDriverCOnlyBuildsTheModule(t *testing.T) {
	need(t, "cmake", "make", "cc")
	src := copyTree(t)
	build := configure(t, src, "-DBUILD_BPF=ON")
	kdir, record := fakeKernelDir(t)
	out, err := run(filepath.Join(build, "driver"), nil, "make", "KERNELDIR="+kdir, "CC=gcc-12")
	if err != nil {
		t.Fatalf("make -C build/driver: %v\n%s", err, out)
	}
	if got := readRecord(t, record); strings.Count(got, "\n") != 1 || strings.Contains(got, "/bpf/") {
		t.Errorf("make -C build/driver ran kbuild for more than the module:\n%s", got)
	}
}

func TestMakeRejectsBadArguments(t *testing.T) {
	need(t, "cmake", "make", "cc")
	src := copyTree(t)
	build := configure(t, src, "-DBUILD_BPF=ON")
	kdir, _ := fakeKernelDir(t)

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"driver"}, "KERNELDIR is not set"},
		{[]string{"driver", "KERNELDIR=" + filepath.Join(kdir, "nope")}, "is not a kernel headers dir"},
		{[]string{"driver", "KERNELDIR=" + kdir, "FAULT=sometimes"}, "FAULT=sometimes is not one of"},
		{[]string{"driver", "KERNELDIR=" + kdir, "FAULT=slowopen", "OPEN_DELAY=soon"}, "OPEN_DELAY=soon is not a whole number"},
		{[]string{"bpf"}, "KERNELDIR is not set"},
		{[]string{"bpf", "KERNELDIR=" + kdir, "FAULT=sometimes"}, "FAULT=sometimes is not one of"},
	}
	for _, tt := range tests {
		out, err := run(build, nil, "make", tt.args...)
		if err == nil {
			t.Errorf("make %v succeeded, want an error", tt.args)
			continue
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("make %v: output lacks %q:\n%s", tt.args, tt.want, out)
		}
	}
}

func TestBin2CRoundTrip(t *testing.T) {
	need(t, "cmake", "cc")
	dir := t.TempDir()
	want := make([]byte, 1000)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "blob.o")
	if err := os.WriteFile(in, want, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join(treeDir, "cmake", "bin2c.cmake"))
	if err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(dir, "blob.c")
	if out, err := run(dir, nil, "cmake", "-DINPUT="+in, "-DOUTPUT="+gen, "-DSYMBOL=blob", "-P", script); err != nil {
		t.Fatalf("bin2c: %v\n%s", err, out)
	}
	if _, err := os.Stat(gen + ".tmp"); err == nil {
		t.Errorf("bin2c left %s.tmp behind", gen)
	}
	main := filepath.Join(dir, "main.c")
	src := "#include <stdio.h>\nextern const unsigned char blob[];\nextern const unsigned long blob_len;\n" +
		"int main(void) { fwrite(blob, 1, blob_len, stdout); return 0; }\n"
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dump")
	if out, err := run(dir, nil, "cc", "-o", bin, main, gen); err != nil {
		t.Fatalf("compile generated array: %v\n%s", err, out)
	}
	got, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("embedded bytes differ from the input (%d vs %d bytes)", len(got), len(want))
	}
}

// configureModern configures a copy of the tree with the modern probe on
// the host, plus args; it needs the same Debian packages as a builder
// image, and skips t without them.
func configureModern(t *testing.T, args ...string) string {
	t.Helper()
	need(t, "cmake", "make", "cc")
	for _, h := range []string{"/usr/include/bpf/libbpf.h", "/usr/include/bpf/bpf_helpers.h", "/usr/include/libelf.h", "/usr/include/zlib.h"} {
		if _, err := os.Stat(h); err != nil {
			t.Skipf("%s missing (Debian: libbpf-dev libelf-dev zlib1g-dev)", h)
		}
	}
	var clang string
	for _, c := range []string{"clang", "clang-19", "clang-16", "clang-15", "clang-14", "clang-13"} {
		if p, err := exec.LookPath(c); err == nil {
			clang = p
			break
		}
	}
	if clang == "" {
		t.Skip("no clang installed")
	}
	src := copyTree(t)
	return configure(t, src, append([]string{"-DUSE_BUNDLED_DEPS=OFF", "-DBUILD_LIBSCAP_MODERN_BPF=ON", "-DMODERN_CLANG_EXE=" + clang}, args...)...)
}

// buildScapOpen builds scap-open with the modern probe on the host.
func buildScapOpen(t *testing.T) string {
	t.Helper()
	build := configureModern(t)
	if out, err := run(build, nil, "make", "scap-open"); err != nil {
		t.Fatalf("make scap-open: %v\n%s", err, out)
	}
	return filepath.Join(build, "libscap", "examples", "01-open", "scap-open")
}

// `make ProbeSkeleton` (libs' name for the modern probe's own target)
// builds the probe alone; the scap-open fault variant leaves it building
// and makes scap-open fail to compile, naming the variant.
func TestProbeSkeletonAndScapOpenFault(t *testing.T) {
	build := configureModern(t, "-DMINILIBS_FAULT=scap-open")
	if out, err := run(build, nil, "make", "ProbeSkeleton"); err != nil {
		t.Fatalf("make ProbeSkeleton: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(build, "driver", "modern_bpf", "probe.bpf.o")); err != nil {
		t.Errorf("make ProbeSkeleton built no probe: %v", err)
	}
	out, err := run(build, nil, "make", "scap-open")
	if err == nil {
		t.Fatalf("make scap-open succeeded with MINILIBS_FAULT=scap-open:\n%s", out)
	}
	if !strings.Contains(out, "fault variant 'scap-open'") {
		t.Errorf("make scap-open fails without naming the variant:\n%s", out)
	}
}

func TestScapOpen(t *testing.T) {
	bin := buildScapOpen(t)

	t.Run("links libbpf, libelf and zlib dynamically", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(libs, " ")
		for _, want := range []string{"libbpf.so", "libelf.so", "libz.so"} {
			if !strings.Contains(joined, want) {
				t.Errorf("scap-open does not need %s: %v", want, libs)
			}
		}
	})

	notBPF := filepath.Join(t.TempDir(), "not-bpf.o")
	if err := os.WriteFile(notBPF, []byte("plain text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"no source", nil, 2, []string{"choose exactly one of --kmod"}},
		{"two sources", []string{"--kmod", "--modern_bpf"}, 2, []string{"choose exactly one"}},
		{"zero events", []string{"--kmod", "--num_events", "0"}, 2, []string{"--num_events 0"}},
		{"bad timeout", []string{"--kmod", "--timeout", "soon"}, 2, []string{"--timeout soon"}},
		{"help", []string{"--help"}, 0, []string{"--num_events N", "95 driver not supported"}},
		{"bpf file is not ELF", []string{"--bpf", notBPF}, 1, []string{"* BPF probe: '" + notBPF + "'", "is not an ELF object"}},
		{"bpf file is not BPF", []string{"--bpf", bin}, 1, []string{"not BPF"}},
		{"bpf file missing", []string{"--bpf", notBPF + ".gone"}, 1, []string{"cannot open BPF probe"}},
	}
	if _, err := os.Stat("/dev/scap0"); errors.Is(err, fs.ErrNotExist) {
		tests = append(tests, struct {
			name     string
			args     []string
			wantCode int
			want     []string
		}{"kmod not loaded", []string{"--kmod"}, 1, []string{"* kernel module (/dev/scap0)", "insmod scap.ko"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run("", nil, bin, tt.args...)
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// The four tests of the stand-in drivers_test, and those of them the
// suite's smoke filter selects.
var (
	driversTests = []string{"SyscallEnter.openE", "SyscallEnter.openatE", "SyscallEnter.connectE_INET_failure", "SyscallEnter.dupE"}
	smokeFilter  = "SyscallEnter.openE:SyscallEnter.openatE:SyscallEnter.connectE_INET_failure"
)

// needGTest skips t without a C++ compiler and googletest (Debian: g++
// libgtest-dev), which drivers_test needs.
func needGTest(t *testing.T) {
	t.Helper()
	need(t, "c++")
	if _, err := os.Stat("/usr/include/gtest/gtest.h"); err != nil {
		t.Skip("/usr/include/gtest/gtest.h missing (Debian: libgtest-dev)")
	}
}

// buildDriversTest configures a copy of the tree with the drivers tests on
// (and the modern probe when modern is set), builds drivers_test and
// returns its path.
func buildDriversTest(t *testing.T, modern bool) string {
	t.Helper()
	needGTest(t)
	args := []string{"-DCREATE_TEST_TARGETS=ON", "-DENABLE_DRIVERS_TESTS=ON"}
	var build string
	if modern {
		build = configureModern(t, args...)
	} else {
		need(t, "cmake", "make", "cc")
		if _, err := os.Stat("/usr/include/bpf/libbpf.h"); err != nil {
			t.Skip("/usr/include/bpf/libbpf.h missing (Debian: libbpf-dev)")
		}
		build = configure(t, copyTree(t), append(args, "-DBUILD_LIBSCAP_MODERN_BPF=OFF")...)
	}
	if out, err := run(build, nil, "make", "drivers_test"); err != nil {
		t.Fatalf("make drivers_test: %v\n%s", err, out)
	}
	bin := filepath.Join(build, "test", "drivers", "drivers_test")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("make drivers_test built nothing at libs' path: %v", err)
	}
	return bin
}

// exitCode is the exit status err (from run) reports.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// listedTests parses --gtest_list_tests output into Suite.Name lines.
func listedTests(out string) []string {
	var tests []string
	suite := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case !strings.HasPrefix(line, " "):
			suite = strings.TrimSpace(line)
		default:
			tests = append(tests, suite+strings.Fields(line)[0])
		}
	}
	return tests
}

// drivers_test lists its tests and checks its command line on the host; it
// never loads a driver here (running the tests needs a VM: the end-to-end
// tests do that).
func TestDriversTest(t *testing.T) {
	bin := buildDriversTest(t, true)

	// (zlib too, through libbpf and libelf: the tests use none of it.)
	t.Run("links libbpf, libelf and libstdc++ dynamically", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(libs, " ")
		for _, want := range []string{"libbpf.so", "libelf.so", "libstdc++.so"} {
			if !strings.Contains(joined, want) {
				t.Errorf("drivers_test does not need %s: %v", want, libs)
			}
		}
	})

	t.Run("lists its tests without a driver", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want []string
		}{
			{[]string{"--gtest_list_tests"}, driversTests},
			{[]string{"--gtest_list_tests", "--gtest_filter=" + smokeFilter}, driversTests[:3]},
		} {
			out, err := run(t.TempDir(), nil, bin, tt.args...)
			if err != nil {
				t.Fatalf("drivers_test %v: %v\n%s", tt.args, err, out)
			}
			if got := listedTests(out); !slices.Equal(got, tt.want) {
				t.Errorf("drivers_test %v lists %v, want %v", tt.args, got, tt.want)
			}
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, tt := range []struct {
			args     []string
			wantCode int
			want     string
		}{
			{nil, 1, "choose exactly one engine"},
			{[]string{"-k", "-m"}, 1, "choose exactly one engine"},
			{[]string{"--kmod=/a", "--modern-bpf"}, 1, "choose exactly one engine"},
			{[]string{"--bpf"}, 1, "usage: drivers_test [-k [PATH] | --kmod [PATH]] [-m | --modern-bpf]"},
			{[]string{"-k", "a.ko", "b.ko"}, 1, "unexpected argument 'b.ko'"},
			{[]string{"--help"}, 0, "default ./driver/scap.ko"},
		} {
			out, err := run(t.TempDir(), nil, bin, tt.args...)
			if code := exitCode(t, err); code != tt.wantCode || !strings.Contains(out, tt.want) {
				t.Errorf("drivers_test %v: exit %d, want %d with %q:\n%s", tt.args, code, tt.wantCode, tt.want, out)
			}
			if strings.Contains(out, "[ RUN") || strings.Contains(out, "setup (open") {
				t.Errorf("drivers_test %v went past its command line:\n%s", tt.args, out)
			}
		}
	})

	// Setup fails before any test: without root, or as root (the delete of
	// a module named scap is then real) with a module path that does not
	// exist, so nothing is inserted.
	t.Run("setup fails before any test", func(t *testing.T) {
		dir := t.TempDir()
		args := []string{"-k", filepath.Join(dir, "missing", "scap.ko")}
		want := "drivers_test must run as root"
		if os.Geteuid() == 0 {
			if _, err := os.Stat("/sys/module/scap"); err == nil {
				t.Skip("the host has a scap module loaded; drivers_test would remove it")
			}
			want = "cannot open kernel module " + args[1] + ": no such file or directory"
		}
		out, err := run(dir, nil, bin, args...)
		checkSetupFailure(t, args, out, err, want)
		// The default module path is relative to the working directory.
		out, err = run(dir, nil, bin, "-k")
		if os.Geteuid() == 0 {
			want = "cannot open kernel module ./driver/scap.ko: no such file or directory"
		}
		checkSetupFailure(t, []string{"-k"}, out, err, want)
	})

	t.Run("setup fails without root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("not root: the previous subtest covers it")
		}
		// A directory nobody can reach (t.TempDir's are root's alone).
		dir, err := os.MkdirTemp("", "drivers_test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		nobodyBin := filepath.Join(dir, "drivers_test")
		if err := os.WriteFile(nobodyBin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(nobodyBin, "-m")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Skipf("cannot run as nobody: %v", err)
		}
		checkSetupFailure(t, []string{"-m"}, string(out), err, "drivers_test must run as root")
	})

	t.Run("no drivers_test target unless both options are on", func(t *testing.T) {
		need(t, "cmake", "make", "cc")
		for _, args := range [][]string{
			{"-DCREATE_TEST_TARGETS=ON", "-DENABLE_DRIVERS_TESTS=OFF"},
			{"-DCREATE_TEST_TARGETS=OFF", "-DENABLE_DRIVERS_TESTS=ON"},
			{},
		} {
			build := configure(t, copyTree(t), args...)
			out, err := run(build, nil, "make", "drivers_test")
			if err == nil || !strings.Contains(out, "No rule to make target") {
				t.Errorf("cmake %v: make drivers_test: %v, want no such target:\n%s", args, err, out)
			}
			if _, err := os.Stat(filepath.Join(build, "test", "drivers")); err == nil {
				t.Errorf("cmake %v added test/drivers", args)
			}
		}
	})
}

// checkSetupFailure checks that drivers_test args failed in its setup with
// want (case-insensitive) as its last line, before running any test.
func checkSetupFailure(t *testing.T, args []string, out string, err error, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if code := exitCode(t, err); code != 1 {
		t.Errorf("drivers_test %v: exit %d, want 1:\n%s", args, code, out)
	}
	if !strings.Contains(out, "drivers_test: setup") || strings.Contains(out, "[ RUN") || strings.Contains(out, "drivers_test: testing") {
		t.Errorf("drivers_test %v: want a setup banner and no test:\n%s", args, out)
	}
	if !strings.HasPrefix(last, "drivers_test: setup failed, no test ran: ") || !strings.Contains(strings.ToLower(last), strings.ToLower(want)) {
		t.Errorf("drivers_test %v: last line %q, want the setup failure with %q", args, last, want)
	}
}

// Without the modern probe, -m is refused the way libs refuses it, before
// any setup.
func TestDriversTestWithoutModernProbe(t *testing.T) {
	bin := buildDriversTest(t, false)
	out, err := run(t.TempDir(), nil, bin, "-m")
	if code := exitCode(t, err); code != 1 || !strings.Contains(out, "Modern BPF engine is not supported in this build") {
		t.Errorf("drivers_test -m: exit %d, want 1 and the message:\n%s", code, out)
	}
	if strings.Contains(out, "drivers_test: setup") {
		t.Errorf("drivers_test -m started its setup:\n%s", out)
	}
	out, err = run(t.TempDir(), nil, bin, "--gtest_list_tests")
	if err != nil || !slices.Equal(listedTests(out), driversTests) {
		t.Errorf("drivers_test --gtest_list_tests: %v\n%s", err, out)
	}
}
