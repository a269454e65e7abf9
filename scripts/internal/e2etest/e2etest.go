// Package e2etest is what the slow end-to-end tests share: the switch that
// enables them (VM_E2E=1) and a configuration on one end-to-end build
// directory, so kernel packages, builder images and artifacts are fetched
// and built once for every test package.
package e2etest

import (
	"os"
	"path/filepath"
	"runtime"
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
		"VM_LIBS_DIR":      filepath.Join(root, "testdata", "no-libs-tree"), // forces the stand-in tree
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
