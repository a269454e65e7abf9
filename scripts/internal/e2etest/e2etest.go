// Package e2etest is what the slow end-to-end tests share: the switch that
// enables them (VM_E2E=1) and a configuration on one end-to-end build
// directory, so kernel packages, builder images and artifacts are fetched
// and built once for every test package.
package e2etest

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/setup"
)

// Skip skips t unless the slow end-to-end tests are enabled.
func Skip(t testing.TB) {
	t.Helper()
	if os.Getenv("VM_E2E") != "1" {
		t.Skip("slow end-to-end test: set VM_E2E=1")
	}
}

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// BuildDir is the shared end-to-end build directory: VM_E2E_BUILD, default
// <repo>/build/e2e. It is created and kept out of `go test ./...`.
func BuildDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VM_E2E_BUILD")
	if dir == "" {
		dir = filepath.Join(Root(), "build", "e2e")
		if err := setup.PrepareBuildDir(filepath.Dir(dir)); err != nil {
			t.Fatal(err)
		}
	}
	if err := setup.PrepareBuildDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// SideBuildDir is a build directory of its own for the end-to-end tests of
// another grid (name: e2e-arm64): VM_E2E_BUILD-name, default
// <repo>/build/name. It is created and kept out of `go test ./...`.
func SideBuildDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(Root(), "build", name)
	if d := os.Getenv("VM_E2E_BUILD"); d != "" {
		dir = d + "-" + name
	} else if err := setup.PrepareBuildDir(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	if err := setup.PrepareBuildDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Config skips t unless end-to-end tests are enabled, and returns the
// configuration they share: the shared build directory, the CI grid
// (testdata/grids/ci.txt: Debian 6.1 and 6.12), the stand-in driver tree
// and the host's VM_DEBIAN_MIRROR. env entries add to or override these.
func Config(t testing.TB, env map[string]string) *config.Config {
	t.Helper()
	Skip(t)
	root := Root()
	all := map[string]string{
		"VM_BUILD_DIR":     BuildDir(t),
		"VM_KERNELS":       filepath.Join(root, "testdata", "grids", "ci.txt"),
		"VM_LIBS_DIR":      filepath.Join(root, config.StandInDir), // the stand-in, through the same detection as libs
		"VM_DEBIAN_MIRROR": os.Getenv("VM_DEBIAN_MIRROR"),
	}
	for k, v := range env {
		all[k] = v
	}
	cfg, err := config.Parse(func(k string) string { return all[k] }, root)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Shapes of the CI grid's kernels (testdata/grids/ci.txt follows Debian's
// current bookworm and trixie cloud kernels, so their ABI numbers move).
var (
	Shape61  = regexp.MustCompile(`^6\.1\.0-[0-9]+-cloud-amd64$`)
	Shape612 = regexp.MustCompile(`^6\.12\.[0-9]+\+deb13-cloud-amd64$`)
)

// CIKernels reads the kernel stage's manifest in buildDir and returns the
// uname -r of the CI grid's 6.1 and 6.12 kernels, failing t when either is
// missing or broken. (It reads the JSON itself: the kernel package's own
// tests use this package.)
func CIKernels(t testing.TB, buildDir string) (k61, k612 string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(buildDir, "kernels.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Kernels []struct {
			UnameR string `json:"uname_r"`
			Error  string `json:"error"`
		} `json:"kernels"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", filepath.Join(buildDir, "kernels.json"), err)
	}
	var got []string
	for _, e := range m.Kernels {
		got = append(got, e.UnameR)
		switch {
		case e.Error != "":
		case Shape61.MatchString(e.UnameR):
			k61 = e.UnameR
		case Shape612.MatchString(e.UnameR):
			k612 = e.UnameR
		}
	}
	if k61 == "" || k612 == "" {
		t.Fatalf("the manifest in %s has no working 6.1.0-N-cloud-amd64 and 6.12.N+deb13-cloud-amd64 kernels: %v", buildDir, got)
	}
	return k61, k612
}

// LinkTree hard-links the regular files under src into dst, keeping what
// dst has: a build directory's package cache shared with another, whose
// files are only ever replaced, never written in place. Hidden files and
// partial downloads are left out.
func LinkTree(src, dst string) {
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") || strings.Contains(p, "/.partial/") {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if _, err := os.Lstat(to); err == nil {
			return nil
		}
		os.MkdirAll(filepath.Dir(to), 0o755)
		os.Link(p, to)
		return nil
	})
}
