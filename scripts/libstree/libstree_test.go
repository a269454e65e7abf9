package libstree

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// skeleton writes the files of a tree: path -> content ("" for a directory).
func skeleton(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if content == "" {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The layouts of real libs releases, reduced to what detection reads: where
// BUILD_DRIVER is declared (line 31 in 0.13.0, 47 in 0.20.0, 50 on main;
// never in the top CMakeLists.txt), which driver directories exist.
var layouts = map[string]map[string]string{
	"0.13.0 (2023)": {
		"CMakeLists.txt":                   "project(falcosecurity-libs)\nadd_subdirectory(driver ${PROJECT_BINARY_DIR}/driver)\n",
		"driver/CMakeLists.txt":            strings.Repeat("# license\n", 30) + "option(BUILD_DRIVER \"Build the driver on Linux\" ON)\n",
		"driver/bpf/CMakeLists.txt":        "option(BUILD_BPF \"Build the BPF driver on Linux\" OFF)\n",
		"driver/modern_bpf/CMakeLists.txt": "if(NOT MODERN_CLANG_EXE)\nendif()\n",
		"userspace/libscap":                "",
		"test/drivers":                     "",
	},
	"0.20.0 (2025, legacy probe)": {
		"CMakeLists.txt":                    "option(USE_BUNDLED_DEPS \"bundled\" ON)\noption(MINIMAL_BUILD \"minimal\" OFF)\nadd_subdirectory(driver ${PROJECT_BINARY_DIR}/driver)\n",
		"cmake/modules/engine_config.cmake": "option(CREATE_TEST_TARGETS \"tests\" ON)\n\toption(BUILD_LIBSCAP_MODERN_BPF \"modern\" OFF)\n",
		"driver/CMakeLists.txt":             "\toption(BUILD_DRIVER \"Build the driver on Linux\" ON)\n",
		"driver/bpf/CMakeLists.txt":         "option(BUILD_BPF \"Build the BPF driver on Linux\" OFF)\n",
		"driver/modern_bpf/CMakeLists.txt":  "if(NOT MODERN_CLANG_EXE)\n\tfind_program(MODERN_CLANG_EXE NAMES clang)\nendif()\n",
		"userspace/libscap":                 "",
		"test/drivers":                      "",
	},
	"main (2026, no legacy probe)": {
		"CMakeLists.txt":                   "add_subdirectory(driver ${PROJECT_BINARY_DIR}/driver)\n",
		"driver/CMakeLists.txt":            "option(BUILD_DRIVER \"Build the driver on Linux\" ON)\nset(DRIVER_NAME \"scap\" CACHE STRING \"name\")\n",
		"driver/modern_bpf/CMakeLists.txt": "if(NOT MODERN_CLANG_EXE)\nendif()\n",
		"userspace/libscap":                "",
		"test/drivers":                     "",
	},
}

func TestDetectRealLayouts(t *testing.T) {
	for name, files := range layouts {
		t.Run(name, func(t *testing.T) {
			dir := skeleton(t, files)
			if err := Detect(dir); err != nil {
				t.Fatalf("not detected: %v", err)
			}
			tr, err := Open(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			_, wantBPF := files["driver/bpf/CMakeLists.txt"]
			if tr.HasBPF != wantBPF || !tr.HasModernBPF || !tr.HasDriversTests {
				t.Errorf("features: bpf %v (want %v), modern %v, drivers tests %v", tr.HasBPF, wantBPF, tr.HasModernBPF, tr.HasDriversTests)
			}
			if !tr.Declares("BUILD_DRIVER") || tr.Declares("MODERN_CLANG_EXE") || !tr.Knows("MODERN_CLANG_EXE") {
				t.Errorf("declarations: BUILD_DRIVER %v, MODERN_CLANG_EXE declared %v known %v",
					tr.Declares("BUILD_DRIVER"), tr.Declares("MODERN_CLANG_EXE"), tr.Knows("MODERN_CLANG_EXE"))
			}
			if tr.Declares("BUILD_BPF") != wantBPF {
				t.Errorf("BUILD_BPF declared %v, want %v", tr.Declares("BUILD_BPF"), wantBPF)
			}
			if tr.Label() != "libs (no git metadata)" {
				t.Errorf("label %q", tr.Label())
			}
		})
	}
}

func TestDetectRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"empty", map[string]string{"README": "x"}, "no driver/CMakeLists.txt"},
		{"option only at the top", map[string]string{
			"CMakeLists.txt": "option(BUILD_DRIVER \"x\" ON)\n", "driver/CMakeLists.txt": "# no option\n", "userspace/libscap": "",
		}, "no option(BUILD_DRIVER ...) in driver/CMakeLists.txt"},
		{"commented out", map[string]string{
			"driver/CMakeLists.txt": "# option(BUILD_DRIVER \"x\" ON)\n", "userspace/libscap": "",
		}, "no option(BUILD_DRIVER"},
		{"no libscap", map[string]string{"driver/CMakeLists.txt": "option(BUILD_DRIVER \"x\" ON)\n"}, "no userspace/libscap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Detect(skeleton(t, tc.files))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStandInIsDetectedTheSameWay(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "minilibs")
	tr, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Label() != "stand-in tree" || !tr.HasBPF || !tr.HasModernBPF || !tr.Declares("BUILD_BPF") {
		t.Errorf("stand-in: %q bpf %v modern %v BUILD_BPF %v", tr.Label(), tr.HasBPF, tr.HasModernBPF, tr.Declares("BUILD_BPF"))
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestVersionFromGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	files := maps.Clone(layouts["main (2026, no legacy probe)"])
	files["test/vm/kernels.txt"] = "# the suite itself\n"
	files["driver/main.c"] = "int x;\n"
	dir := skeleton(t, files)
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "one")
	git(t, dir, "tag", "0.20.0")
	tr, err := Open(dir, false, "test/vm")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Label() != "libs 0.20.0" {
		t.Errorf("tagged commit: %q", tr.Label())
	}
	// The suite replacing libs' own test/vm does not make libs dirty...
	os.WriteFile(filepath.Join(dir, "test/vm/kernels.txt"), []byte("# ours\n"), 0o644)
	if tr, _ = Open(dir, false, "test/vm"); tr.Label() != "libs 0.20.0" {
		t.Errorf("suite edited: %q", tr.Label())
	}
	// ... a change to a driver does.
	os.WriteFile(filepath.Join(dir, "driver/main.c"), []byte("int y;\n"), 0o644)
	if tr, _ = Open(dir, false, "test/vm"); tr.Label() != "libs 0.20.0-dirty" {
		t.Errorf("driver edited: %q", tr.Label())
	}
	git(t, dir, "commit", "-q", "-am", "two")
	if tr, _ = Open(dir, false, "test/vm"); !strings.HasPrefix(tr.Label(), "libs 0.20.0-1-g") {
		t.Errorf("one commit after the tag: %q", tr.Label())
	}
}

// A tree's targets are read wherever CMake defines them (the name may sit
// on the next line), and every declaration knows where it is, for the
// build log; comments declare nothing.
func TestTargetsAndWhere(t *testing.T) {
	dir := skeleton(t, map[string]string{
		"CMakeLists.txt":                                    "project(x)\n# option(MINIMAL_BUILD \"commented out\" OFF)\noption(USE_BUNDLED_DEPS \"bundled\" ON)\n",
		"driver/CMakeLists.txt":                             "option(BUILD_DRIVER \"Build the driver on Linux\" ON)\nif(ENABLE_DKMS)\n\tadd_custom_target(\n\t\tdriver ALL\n\t)\nendif()\n",
		"driver/modern_bpf/CMakeLists.txt":                  "if(NOT MODERN_CLANG_EXE)\nendif()\nadd_custom_target(ProbeSkeleton ALL DEPENDS x)\n",
		"userspace/libscap/examples/01-open/CMakeLists.txt": "add_executable(scap-open scap_open.c)\n",
		"userspace/libscap/CMakeLists.txt":                  "add_library(scap STATIC scap.c)\n",
		"build/CMakeLists.txt":                              "add_custom_target(stale)\noption(STALE \"x\" ON)\n",
	})
	tr, err := Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, where := range map[string]string{
		"driver":        "driver/CMakeLists.txt:4",
		"ProbeSkeleton": "driver/modern_bpf/CMakeLists.txt:3",
		"scap-open":     "userspace/libscap/examples/01-open/CMakeLists.txt:1",
		"scap":          "userspace/libscap/CMakeLists.txt:1",
	} {
		if !tr.HasTarget(name) || tr.TargetWhere(name) != where {
			t.Errorf("target %s: %v at %q, want %q", name, tr.HasTarget(name), tr.TargetWhere(name), where)
		}
	}
	if tr.HasTarget("bpf") || tr.HasTarget("stale") || tr.Declares("STALE") {
		t.Errorf("targets or options that are not the tree's")
	}
	if tr.Declares("MINIMAL_BUILD") {
		t.Errorf("a commented-out option is declared")
	}
	if w := tr.Where("USE_BUNDLED_DEPS"); w != "CMakeLists.txt:3" {
		t.Errorf("USE_BUNDLED_DEPS at %q", w)
	}
	if w := tr.Where("MODERN_CLANG_EXE"); w != "driver/modern_bpf/CMakeLists.txt:1" || tr.Declares("MODERN_CLANG_EXE") {
		t.Errorf("MODERN_CLANG_EXE read at %q, declared %v", w, tr.Declares("MODERN_CLANG_EXE"))
	}
	if tr.Where("BUILD_BPF") != "" {
		t.Errorf("an unknown name has a place")
	}
}

// The CMake version a tree requires is read from its top CMakeLists.txt,
// the lower end of a range included.
func TestCMakeMinimum(t *testing.T) {
	for content, want := range map[string]string{
		"cmake_minimum_required(VERSION 3.24)\n":                             "3.24",
		"CMAKE_MINIMUM_REQUIRED(VERSION 3.12...3.28)\n":                      "3.12",
		"# cmake_minimum_required(VERSION 9.9)\nx()\n":                       "",
		"project(x)\n  cmake_minimum_required( VERSION 3.5.1 FATAL_ERROR)\n": "3.5.1",
	} {
		dir := skeleton(t, map[string]string{"CMakeLists.txt": content, "driver/CMakeLists.txt": "option(BUILD_DRIVER \"x\" ON)\n", "userspace/libscap": ""})
		tr, err := Open(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if tr.CMakeMinimum != want {
			t.Errorf("%q: minimum %q, want %q", content, tr.CMakeMinimum, want)
		}
	}
}
