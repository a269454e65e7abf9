// Package libstree recognises a falcosecurity/libs source tree and reads
// what it declares: its version, which drivers and test suites it has, the
// CMake options and variables its build knows, and the build targets it
// defines. Build recipes are chosen
// from these declarations, never from version numbers, so one description
// of the libs build interface serves every release (libs 0.13 from 2023 to
// today's main) and the bundled stand-in tree alike.
package libstree

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Tree is a libs source tree as the compile stage sees it.
type Tree struct {
	Dir     string
	StandIn bool   // the bundled stand-in tree, not libs
	Version string // git describe of the tree ("" when it is not a git checkout)

	// CMakeMinimum is the CMake version the top CMakeLists.txt requires
	// (cmake_minimum_required), "" when it names none.
	CMakeMinimum string

	HasBPF          bool // driver/bpf: the legacy eBPF probe (dropped from the newest libs)
	HasModernBPF    bool // driver/modern_bpf: the CO-RE probe
	HasDriversTests bool // test/drivers: the drivers_test behaviour suite

	// declared are the options and cache variables the tree's CMake files
	// define (option(), cmake_dependent_option(), set(... CACHE ...)), each
	// with where it is first defined ("cmake/modules/engine_config.cmake:30").
	declared map[string]string
	// mentioned are the words of the tree's CMake files that look like
	// variables (upper case), for variables read without a declaration,
	// such as MODERN_CLANG_EXE, each with where it first appears.
	mentioned map[string]string
	// targets are the build targets the tree's CMake files define
	// (add_custom_target, add_executable, add_library), with where.
	targets map[string]string
}

// buildDriverRe finds the BUILD_DRIVER option. Every libs release since
// 0.13 declares it in driver/CMakeLists.txt; the top CMakeLists.txt only
// adds the driver directory and never names it.
var buildDriverRe = regexp.MustCompile(`(?m)^\s*option\s*\(\s*BUILD_DRIVER\b`)

// Detect reports whether dir is a libs source tree, by the structure every
// release shares: driver/CMakeLists.txt declaring the BUILD_DRIVER option,
// and userspace/libscap. The error says what is missing.
//
// The stand-in tree has the same structure, so it walks this same path.
func Detect(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "driver", "CMakeLists.txt"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no driver/CMakeLists.txt")
	case err != nil:
		return err
	case !buildDriverRe.Match(b):
		return errors.New("no option(BUILD_DRIVER ...) in driver/CMakeLists.txt")
	}
	if fi, err := os.Stat(filepath.Join(dir, "userspace", "libscap")); err != nil || !fi.IsDir() {
		return errors.New("no userspace/libscap directory")
	}
	return nil
}

// Open reads the tree at dir, which Detect accepted (or the stand-in tree
// when standIn is set). skip lists directories, relative to dir, whose
// CMake files are not the tree's own (its build directories, and this
// suite when it sits at test/vm).
func Open(dir string, standIn bool, skip ...string) (*Tree, error) {
	if err := Detect(dir); err != nil {
		return nil, fmt.Errorf("%s is not a libs source tree: %w", dir, err)
	}
	t := &Tree{Dir: dir, StandIn: standIn, declared: map[string]string{}, mentioned: map[string]string{}, targets: map[string]string{}}
	t.HasBPF = isDir(filepath.Join(dir, "driver", "bpf"))
	t.HasModernBPF = isDir(filepath.Join(dir, "driver", "modern_bpf"))
	t.HasDriversTests = isDir(filepath.Join(dir, "test", "drivers"))
	if b, err := os.ReadFile(filepath.Join(dir, "CMakeLists.txt")); err == nil {
		if m := minimumRe.FindSubmatch(b); m != nil {
			t.CMakeMinimum = string(m[1])
		}
	}
	if err := t.readCMake(skip); err != nil {
		return nil, fmt.Errorf("read CMake files of %s: %w", dir, err)
	}
	t.Version = gitDescribe(dir, skip)
	return t, nil
}

// Label names the tree in results, matrices and messages: "libs 0.20.0",
// "libs 0.25.0-rc1-115-g48dfd53cd-dirty", "libs (no git metadata)" or
// "stand-in tree".
func (t *Tree) Label() string {
	switch {
	case t.StandIn:
		return "stand-in tree"
	case t.Version == "":
		return "libs (no git metadata)"
	}
	return "libs " + t.Version
}

// Declares reports whether the tree defines the CMake option or cache
// variable name.
func (t *Tree) Declares(name string) bool { return t.declared[name] != "" }

// Knows reports whether the tree's CMake files use name at all: declared,
// or read as a plain variable (if(NOT MODERN_CLANG_EXE)).
func (t *Tree) Knows(name string) bool { return t.Declares(name) || t.mentioned[name] != "" }

// Where says where the tree declares name, or else first reads it, as
// "path:line" relative to the tree ("" when the tree does not know it):
// the evidence a build log gives for passing a setting.
func (t *Tree) Where(name string) string {
	if w := t.declared[name]; w != "" {
		return w
	}
	return t.mentioned[name]
}

// HasTarget reports whether the tree's CMake files define the build target
// name (a make goal such as driver, bpf, ProbeSkeleton or scap-open).
// Targets defined only under a condition count: the recipe that needs one
// also passes the option that enables it.
func (t *Tree) HasTarget(name string) bool { return t.targets[name] != "" }

// TargetWhere says where the tree defines the target name ("" if nowhere).
func (t *Tree) TargetWhere(name string) string { return t.targets[name] }

var (
	optionRe  = regexp.MustCompile(`(?m)^[ \t]*(?:cmake_dependent_)?option\s*\(\s*([A-Za-z0-9_]+)`)
	cacheRe   = regexp.MustCompile(`(?m)^[ \t]*set\s*\(\s*([A-Za-z0-9_]+)\b[^)]*\bCACHE\b`)
	targetRe  = regexp.MustCompile(`(?m)^[ \t]*add_(?:custom_target|executable|library)\s*\(\s*([A-Za-z0-9_.+-]+)`)
	upperWord = regexp.MustCompile(`\b[A-Z][A-Z0-9_]{2,}\b`)
	// minimumRe reads cmake_minimum_required(VERSION 3.24) and the lower
	// end of a range (VERSION 3.12...3.28).
	minimumRe = regexp.MustCompile(`(?mi)^[ \t]*cmake_minimum_required\s*\(\s*VERSION\s+([0-9]+(?:\.[0-9]+)*)`)
)

// readCMake collects the declarations, variable names and targets of every
// CMakeLists.txt and *.cmake file of the tree, in a fixed (lexical) order
// so that "where" is the same on every run.
func (t *Tree) readCMake(skip []string) error {
	return filepath.WalkDir(t.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(t.Dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "build" || slices.Contains(skip, rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "CMakeLists.txt" && !strings.HasSuffix(d.Name(), ".cmake") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		note := func(m map[string]string, name string, offset int) {
			if m[name] == "" {
				m[name] = fmt.Sprintf("%s:%d", rel, 1+bytes.Count(b[:offset], []byte("\n")))
			}
		}
		for _, re := range []*regexp.Regexp{optionRe, cacheRe} {
			for _, m := range re.FindAllSubmatchIndex(b, -1) {
				note(t.declared, string(b[m[2]:m[3]]), m[2])
			}
		}
		for _, m := range targetRe.FindAllSubmatchIndex(b, -1) {
			note(t.targets, string(b[m[2]:m[3]]), m[2])
		}
		for _, m := range upperWord.FindAllIndex(b, -1) {
			note(t.mentioned, string(b[m[0]:m[1]]), m[0])
		}
		return nil
	})
}

// gitDescribe names the tree's commit ("0.20.0", "0.25.0-rc1-115-g48dfd53cd"),
// with "-dirty" when files outside skip differ from it, or "" when dir is
// not a git checkout or git is missing. The suite's own directory (skip)
// does not make libs dirty: placing it at test/vm is how it is used.
func gitDescribe(dir string, skip []string) string {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return ""
	}
	out, err := exec.Command("git", "-C", dir, "describe", "--tags", "--always").Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	args := []string{"-C", dir, "status", "--porcelain", "--untracked-files=no", "--", "."}
	for _, s := range skip {
		args = append(args, ":(exclude)"+s)
	}
	if st, err := exec.Command("git", args...).Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		v += "-dirty"
	}
	return v
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
