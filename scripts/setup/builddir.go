package setup

import (
	"fmt"
	"os"
	"path/filepath"
)

// buildDirMarker keeps the build directory out of `go test ./...` and
// `go vet ./...`: the go command does not descend into a directory that
// holds its own go.mod, and build/ holds root filesystems and kernel trees.
const buildDirMarker = "module testvm.invalid/build\n\n// test/vm build outputs; this file keeps them out of ./... patterns.\n"

// PrepareBuildDir creates dir and marks it as outside the Go module.
func PrepareBuildDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build dir: %w", err)
	}
	marker := filepath.Join(dir, "go.mod")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if err := os.WriteFile(marker, []byte(buildDirMarker), 0o644); err != nil {
		return fmt.Errorf("build dir: %w", err)
	}
	return nil
}
