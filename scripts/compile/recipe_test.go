package compile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/libstree"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Reduced libs trees: the declarations the recipes read, in the files
// where the real releases make them.
var (
	// mainLike is libs main (2026): no legacy probe, no MINIMAL_BUILD, no
	// gVisor option; libsinsp's examples and valijson still configure.
	mainLike = map[string]string{
		"CMakeLists.txt": "project(falcosecurity-libs)\n" +
			"option(USE_BUNDLED_DEPS \"Enable bundled dependencies instead of using the system ones\" ON)\n" +
			"add_subdirectory(driver ${PROJECT_BINARY_DIR}/driver)\n" +
			"option(CREATE_TEST_TARGETS \"Enable make-targets for unit testing\" ON)\n",
		"cmake/modules/valijson.cmake":      "option(USE_BUNDLED_VALIJSON \"Enable building of the bundled valijson\" ${USE_BUNDLED_DEPS})\n",
		"cmake/modules/re2.cmake":           "option(USE_BUNDLED_RE2 \"Enable building of the bundled RE2\" ${USE_BUNDLED_DEPS})\n",
		"cmake/modules/engine_config.cmake": "\toption(BUILD_LIBSCAP_MODERN_BPF \"Enable modern bpf probe\" OFF)\n",
		"driver/CMakeLists.txt": "option(BUILD_DRIVER \"Build the driver on Linux\" ON)\n" +
			"if(ENABLE_DKMS)\n\tadd_custom_target(\n\t\tdriver ALL\n\t\tCOMMAND ${MAKE_COMMAND}\n\t)\nendif()\n",
		"driver/modern_bpf/CMakeLists.txt": "if(NOT MODERN_CLANG_EXE)\nendif()\n" +
			"add_custom_target(ProbeSkeleton ALL DEPENDS ${BPF_SKEL_FILE})\n",
		"userspace/libsinsp/CMakeLists.txt":                 "option(BUILD_LIBSINSP_EXAMPLES \"Build libsinsp examples\" ON)\n",
		"userspace/libscap/examples/01-open/CMakeLists.txt": "add_executable(scap-open scap_open.c)\n",
	}
	// v020Like is libs 0.20.0 (January 2025): main's declarations plus the
	// legacy probe, MINIMAL_BUILD and the gVisor engine.
	v020Like = with(mainLike, map[string]string{
		"CMakeLists.txt": mainLike["CMakeLists.txt"] +
			"option(MINIMAL_BUILD \"Produce a minimal build with only the essential features (no kubernetes, no mesos, no marathon and no container metadata)\" OFF)\n",
		"cmake/modules/engine_config.cmake": mainLike["cmake/modules/engine_config.cmake"] +
			"if(NOT MINIMAL_BUILD)\n\toption(BUILD_LIBSCAP_GVISOR \"Build gVisor support\" ON)\nendif()\n",
		"driver/bpf/CMakeLists.txt": "option(BUILD_BPF \"Build the BPF driver on Linux\" OFF)\n" +
			"if(BUILD_BPF)\n\tadd_custom_target(\n\t\tbpf ALL\n\t)\nendif()\n",
	})
)

func with(base, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// openTree writes files into a fresh libs-like tree and reads it.
func openTree(t *testing.T, files map[string]string) *libstree.Tree {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "userspace", "libscap"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := libstree.Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func standInTree(t *testing.T) *libstree.Tree {
	t.Helper()
	tr, err := libstree.Open(filepath.Join("..", "..", "testdata", "minilibs"), true)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// commands are the lines of a recipe's script that build: cmake and make.
func commands(r Recipe) []string {
	var out []string
	for _, l := range strings.Split(r.Script, "\n") {
		if strings.HasPrefix(l, "CC=") || strings.HasPrefix(l, "PKG_CONFIG_LIBDIR=") || strings.HasPrefix(l, "make ") {
			out = append(out, l)
		}
	}
	return out
}

const k61Dir = "/usr/src/linux-headers-6.1.0-50-cloud-amd64"

// arm64 is p built for arm64.
func arm64(p recipeParams) recipeParams {
	p.arch = layout.Arm64
	return p
}

// The one description yields, for each tree, exactly these command lines:
// each setting only where the tree declares it, each goal only where the
// tree defines it.
func TestRecipeCommandLines(t *testing.T) {
	kmod := recipeParams{driver: layout.Kmod, compiler: "gcc-12", hostGCC: "gcc-12", kernelDir: k61Dir}
	bpf := recipeParams{driver: layout.BPF, compiler: "clang-14", hostGCC: "gcc-12", kernelDir: k61Dir}
	modern := recipeParams{driver: layout.ModernBPF, compiler: "clang-19", hostGCC: "gcc-14"}
	scap := recipeParams{driver: layout.ScapOpen, compiler: "gcc-14", hostGCC: "gcc-14"}
	const (
		mainCommon = "-DUSE_BUNDLED_DEPS=OFF -DUSE_BUNDLED_VALIJSON=ON -DCREATE_TEST_TARGETS=OFF -DBUILD_LIBSINSP_EXAMPLES=OFF"
		v020Common = "-DUSE_BUNDLED_DEPS=OFF -DUSE_BUNDLED_VALIJSON=ON -DMINIMAL_BUILD=ON -DBUILD_LIBSCAP_GVISOR=OFF -DCREATE_TEST_TARGETS=OFF -DBUILD_LIBSINSP_EXAMPLES=OFF"
		standIn    = "-DUSE_BUNDLED_DEPS=OFF -DBUILD_LIBSCAP_GVISOR=OFF -DCREATE_TEST_TARGETS=OFF -DBUILD_LIBSINSP_EXAMPLES=OFF"
		modernOpts = "-DBUILD_LIBSCAP_MODERN_BPF=ON -DMODERN_CLANG_EXE=/usr/bin/clang-19"
	)
	for _, tc := range []struct {
		name string
		tree *libstree.Tree
		p    recipeParams
		want []string
	}{
		{"main kmod", openTree(t, mainLike), kmod, []string{
			"CC=gcc-12 CXX=g++-12 cmake " + mainCommon + " /libs",
			"make driver KERNELDIR=" + k61Dir + " CC=gcc-12",
		}},
		{"main modern_bpf", openTree(t, mainLike), modern, []string{
			"CC=gcc-14 CXX=g++-14 cmake " + mainCommon + " " + modernOpts + " /libs",
			"make ProbeSkeleton",
			"make scap-open",
		}},
		{"main scap-open", openTree(t, mainLike), scap, []string{
			"CC=gcc-14 CXX=g++-14 cmake " + mainCommon + " /libs",
			"make scap-open",
		}},
		{"0.20.0 kmod", openTree(t, v020Like), kmod, []string{
			"CC=gcc-12 CXX=g++-12 cmake " + v020Common + " /libs",
			"make driver KERNELDIR=" + k61Dir + " CC=gcc-12",
		}},
		{"0.20.0 bpf", openTree(t, v020Like), bpf, []string{
			"CC=gcc-12 CXX=g++-12 cmake " + v020Common + " -DBUILD_BPF=ON /libs",
			"make bpf KERNELDIR=" + k61Dir + " CLANG=clang-14 LLC=llc-14",
		}},
		{"0.20.0 modern_bpf", openTree(t, v020Like), modern, []string{
			"CC=gcc-14 CXX=g++-14 cmake " + v020Common + " " + modernOpts + " /libs",
			"make ProbeSkeleton",
			"make scap-open",
		}},
		{"0.20.0 scap-open", openTree(t, v020Like), scap, []string{
			"CC=gcc-14 CXX=g++-14 cmake " + v020Common + " /libs",
			"make scap-open",
		}},
		{"stand-in kmod", standInTree(t), kmod, []string{
			"CC=gcc-12 CXX=g++-12 cmake " + standIn + " /libs",
			"make driver KERNELDIR=" + k61Dir + " CC=gcc-12",
		}},
		{"stand-in bpf", standInTree(t), bpf, []string{
			"CC=gcc-12 CXX=g++-12 cmake " + standIn + " -DBUILD_BPF=ON /libs",
			"make bpf KERNELDIR=" + k61Dir + " CLANG=clang-14 LLC=llc-14",
		}},
		{"stand-in modern_bpf", standInTree(t), modern, []string{
			"CC=gcc-14 CXX=g++-14 cmake " + standIn + " " + modernOpts + " /libs",
			"make ProbeSkeleton",
			"make scap-open",
		}},
		{"stand-in scap-open", standInTree(t), scap, []string{
			"CC=gcc-14 CXX=g++-14 cmake " + standIn + " /libs",
			"make scap-open",
		}},
		// arm64: kbuild takes the target through its make variables, the
		// cross gcc as CC; the legacy probe's clang is told the target;
		// the userspace builds are CMake cross builds whose own host
		// tools take the host's compilers.
		{"main kmod arm64", openTree(t, mainLike), arm64(kmod), []string{
			"CC=gcc-12 CXX=g++-12 cmake " + mainCommon + " /libs",
			"make driver KERNELDIR=" + k61Dir + " CC=aarch64-linux-gnu-gcc-12 ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-",
		}},
		{"0.20.0 bpf arm64", openTree(t, v020Like), arm64(bpf), []string{
			"CC=gcc-12 CXX=g++-12 cmake " + v020Common + " -DBUILD_BPF=ON /libs",
			`make bpf KERNELDIR=` + k61Dir + ` CLANG="clang-14 --target=aarch64-linux-gnu" LLC=llc-14 ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-`,
		}},
		{"main modern_bpf arm64", openTree(t, mainLike), arm64(modern), []string{
			"PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig CC=aarch64-linux-gnu-gcc-14 CXX=aarch64-linux-gnu-g++-14 cmake " +
				"-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 " + mainCommon + " " + modernOpts + " /libs",
			"CC=gcc-14 CXX=g++-14 make ProbeSkeleton",
			"CC=gcc-14 CXX=g++-14 make scap-open",
		}},
		{"stand-in scap-open arm64", standInTree(t), arm64(scap), []string{
			"PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig CC=aarch64-linux-gnu-gcc-14 CXX=aarch64-linux-gnu-g++-14 cmake " +
				"-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 " + standIn + " /libs",
			"CC=gcc-14 CXX=g++-14 make scap-open",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := makeRecipe(tc.tree, tc.p)
			if got := commands(r); !slices.Equal(got, tc.want) {
				t.Errorf("commands:\n  %s\nwant:\n  %s\nscript:\n%s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "), r.Script)
			}
		})
	}
}

// The script says why each setting is valid for this tree (where the tree
// declares it) and names those it leaves out; its steps mark which goals
// build scap-open.
func TestRecipeExplainsItself(t *testing.T) {
	r := makeRecipe(openTree(t, mainLike), recipeParams{driver: layout.ModernBPF, compiler: "clang-19", hostGCC: "gcc-14"})
	for _, want := range []string{
		"#   -DUSE_BUNDLED_DEPS=OFF (declared at CMakeLists.txt:2): ",
		"#   -DUSE_BUNDLED_VALIJSON=ON (declared at cmake/modules/valijson.cmake:1): ",
		"#   -DMODERN_CLANG_EXE=/usr/bin/clang-19 (read at driver/modern_bpf/CMakeLists.txt:1): ",
		"# not passed, this tree does not know them: -DMINIMAL_BUILD=ON -DBUILD_LIBSCAP_GVISOR=OFF\n",
		"# make goals: ProbeSkeleton (driver/modern_bpf/CMakeLists.txt:3), scap-open (userspace/libscap/examples/01-open/CMakeLists.txt:1)\n",
		"cp \"$1\" /out/scap-open\nstep done\n",
		"trap 'step exit' EXIT\n",
	} {
		if !strings.Contains(r.Script, want) {
			t.Errorf("script lacks %q:\n%s", want, r.Script)
		}
	}
	want := []Step{{Name: "configure"}, {Name: "ProbeSkeleton"}, {Name: "scap-open", Userspace: true}}
	if !slices.Equal(r.Steps, want) {
		t.Errorf("steps %+v, want %+v", r.Steps, want)
	}
	kmod := makeRecipe(openTree(t, mainLike), recipeParams{driver: layout.Kmod, compiler: "gcc-14", kernelDir: k61Dir})
	if !strings.Contains(kmod.Script, "set -- driver/*.ko\ntest $# -eq 1 -a -f \"$1\"\ncp \"$1\" /out/driver.ko\n") {
		t.Errorf("kmod artifact:\n%s", kmod.Script)
	}
}

// What a tree does not have is "not in this libs version", decided by its
// declarations: main has no bpf goal, a tree without ProbeSkeleton still
// builds modern scap-open in one goal.
func TestAvailable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tree   *libstree.Tree
		driver string
		ok     bool
		why    string
	}{
		{"main bpf", openTree(t, mainLike), layout.BPF, false, "the tree does not declare BUILD_BPF"},
		{"main kmod", openTree(t, mainLike), layout.Kmod, true, ""},
		{"0.20.0 bpf", openTree(t, v020Like), layout.BPF, true, ""},
		{"bpf option without target", openTree(t, with(mainLike, map[string]string{"driver/bpf/CMakeLists.txt": "option(BUILD_BPF \"x\" OFF)\n"})), layout.BPF, false, "the tree defines no bpf target"},
		{"modern without ProbeSkeleton", openTree(t, with(mainLike, map[string]string{"driver/modern_bpf/CMakeLists.txt": "if(NOT MODERN_CLANG_EXE)\nendif()\n"})), layout.ModernBPF, true, ""},
		{"stand-in bpf", standInTree(t), layout.BPF, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := Available(tc.tree, tc.driver)
			if ok != tc.ok || why != tc.why {
				t.Errorf("got %v %q, want %v %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

// Plan writes every job's recipe from the tree, and the script is part of
// the key: a tree that declares other options builds again.
func TestPlanRecipesFollowTheTree(t *testing.T) {
	in := testInputs(t)
	in.Tree = openTree(t, v020Like)
	a, _ := Plan(in)
	in.Tree = openTree(t, with(v020Like, map[string]string{"CMakeLists.txt": mainLike["CMakeLists.txt"]}))
	b, _ := Plan(in)
	if len(a) != len(b) {
		t.Fatalf("%d jobs, then %d", len(a), len(b))
	}
	for i := range a {
		if !strings.Contains(a[i].Recipe.Script, "-DMINIMAL_BUILD=ON") || strings.Contains(b[i].Recipe.Script, "-DMINIMAL_BUILD=ON ") {
			t.Errorf("%s: MINIMAL_BUILD not following the tree", a[i].Name())
		}
		if a[i].Key == b[i].Key {
			t.Errorf("%s: same key for different recipes", a[i].Name())
		}
	}
}

func TestReadSteps(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte("# script:\n#   echo \"### step $1\"\n+ step configure\n### step configure 100.0\n-- Configuring done\n"+
		"+ step ProbeSkeleton\n### step ProbeSkeleton 112.25\n+ step scap-open\n### step scap-open 130.5\nerror: x\n+ step exit\n### step exit 140.0\n"), 0o644)
	steps, last := readSteps(p)
	want := []results.Step{{Name: "configure", Seconds: 12.3}, {Name: "ProbeSkeleton", Seconds: 18.3}, {Name: "scap-open", Seconds: 9.5}}
	if !slices.Equal(steps, want) || last != "scap-open" {
		t.Errorf("steps %+v last %q", steps, last)
	}
	r := makeRecipe(standInTree(t), recipeParams{driver: layout.ModernBPF, compiler: "clang-19", hostGCC: "gcc-14"})
	if !r.userspace(last) || !driverBuilt(r, steps) {
		t.Errorf("a scap-open failure after the probe built is not told apart")
	}
	if driverBuilt(r, steps[:2]) {
		t.Errorf("a failure in the probe's own step counts as the driver built")
	}
	os.WriteFile(p, []byte("### step configure 1\n### step driver 2\n### step done 4.5\n### step exit 4.6\n"), 0o644)
	if steps, last := readSteps(p); len(steps) != 2 || steps[1].Seconds != 2.5 || last != "done" {
		t.Errorf("finished script: %+v %q", steps, last)
	}
	// Killed without its exit marker: the last step has no time.
	os.WriteFile(p, []byte("### step configure 1\n### step driver 2\n"), 0o644)
	if steps, last := readSteps(p); len(steps) != 2 || steps[1].Seconds != 0 || last != "driver" {
		t.Errorf("killed script: %+v %q", steps, last)
	}
}

func TestFailureReasonDownload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte(`[  5%] Performing download step (download, verify and extract) for 'libelf'
-- Downloading...
curl: (6) Could not resolve host: sourceware.org
CMake Error at libelf-stamp/download-libelf.cmake:170 (message):
make[2]: *** [CMakeFiles/libelf.dir/build.make:99: libelf-prefix/src/libelf-stamp/libelf-download] Error 1
`), 0o644)
	want := "tried to download (offline build): [  5%] Performing download step (download, verify and extract) for 'libelf'"
	if got := failureReason(p, 2); got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}

// libs' feature probes fail on purpose and print whole make runs on one
// line: the reason is the compiler's own error after them.
func TestFailureReasonSkipsFeatureProbes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte(`[configure-kmod] make: Entering directory '/libs/build/driver/src/configure/ACCESS_OK_2' ... gcc-12: error: unrecognized command-line option '-fmin-function-alignment=16' make: *** [Makefile:15: all] Error 2
expr: syntax error: unexpected argument '1'
/usr/src/linux-headers-7.3.4+deb13-common/include/linux/fs.h:2465:15: error: static assertion failed
make[8]: *** [Makefile:74: probe.o] Error 1
`), 0o644)
	if got := failureReason(p, 2); got != "/usr/src/linux-headers-7.3.4+deb13-common/include/linux/fs.h:2465:15: error: static assertion failed" {
		t.Errorf("reason %q", got)
	}
}

// The tree's cmake_minimum_required is checked in the container: an image
// whose cmake is older makes the cell a skip naming both versions.
func TestRecipeChecksTheTreesCMake(t *testing.T) {
	tr := openTree(t, with(mainLike, map[string]string{"CMakeLists.txt": "cmake_minimum_required(VERSION 3.24)\n" + mainLike["CMakeLists.txt"]}))
	if tr.CMakeMinimum != "3.24" {
		t.Fatalf("minimum %q", tr.CMakeMinimum)
	}
	r := makeRecipe(tr, recipeParams{driver: layout.Kmod, compiler: "gcc-10", hostGCC: "gcc-10", kernelDir: k61Dir})
	want := "step configure\nhave=$(cmake --version | sed -n '1s/^cmake version //p')\n" +
		"if [ \"$(printf '%s\\n' 3.24 \"$have\" | sort -V | head -n 1)\" != 3.24 ]; then echo \"### skip builder cmake $have < needed 3.24\"; exit 97; fi\nCC=gcc-10 "
	if !strings.Contains(r.Script, want) {
		t.Errorf("script lacks the check:\n%s", r.Script)
	}
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte("+ echo '### skip builder cmake 3.18.4 < needed 3.24'\n### skip builder cmake 3.18.4 < needed 3.24\n"), 0o644)
	if got := readSkip(p); got != "builder cmake 3.18.4 < needed 3.24" {
		t.Errorf("skip %q", got)
	}
}

// libs 0.20's kmod feature probes run with an empty environment: in a
// cross build they link with the host's ld, and the build after them is
// no answer about the driver.
func TestLostCross(t *testing.T) {
	dir := t.TempDir()
	lost := filepath.Join(dir, "lost.log")
	os.WriteFile(lost, []byte("[configure-kmod] Build output for HAS_ACCESS_OK_2:\n"+
		"[configure-kmod] make: Entering directory '/libs/build/driver/src/configure/ACCESS_OK_2' ... LD [M]  testmod.o ld: unrecognised emulation mode: aarch64linux Supported emulations: elf_x86_64\n"+
		"/libs/build/driver/src/ppm_events.c:91:33: error: 'VERIFY_READ' undeclared (first use in this function)\n"), 0o644)
	probes := filepath.Join(dir, "probes.log")
	os.WriteFile(probes, []byte("[configure-kmod] Build output for HAS_CLASS_CREATE_1:\n"+
		"[configure-kmod] test.c:23:56: error: macro \"class_create\" requires 2 arguments, but only 1 given\n"), 0o644)
	if !lostCross(lost) || lostCross(probes) || lostCross(filepath.Join(dir, "missing.log")) {
		t.Errorf("lostCross: %v %v", lostCross(lost), lostCross(probes))
	}
}
