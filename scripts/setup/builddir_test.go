package setup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepareBuildDirKeepsGoOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "build")
	if err := PrepareBuildDir(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module ") {
		t.Fatalf("marker: %q, %v", b, err)
	}
	if err := PrepareBuildDir(dir); err != nil { // idempotent
		t.Fatal(err)
	}
}
