package compile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
)

// The glibc a sysroot needs is the newest of its executables' needs; a
// script or a non-executable ELF file does not count, and an ELF file that
// cannot be read is an error naming it.
func TestGlibcNeed(t *testing.T) {
	host, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("host binary: %v", err)
	}
	want, err := elfdeps.GlibcNeeds(strings.NewReader(string(host)))
	if err != nil || len(want) == 0 {
		t.Skipf("/bin/true needs no glibc version (%v)", err)
	}
	root := t.TempDir()
	tools := filepath.Join(root, "usr/lib/linux-kbuild-6.1/scripts")
	os.MkdirAll(filepath.Join(tools, "basic"), 0o755)
	os.WriteFile(filepath.Join(tools, "basic/fixdep"), host, 0o755)
	os.WriteFile(filepath.Join(tools, "checkpatch.pl"), []byte("#!/usr/bin/perl\n"+strings.Repeat("#\n", 64)), 0o755)
	os.WriteFile(filepath.Join(tools, "data.o"), []byte("\x7fELF garbage, but not executable"+strings.Repeat(".", 64)), 0o644)
	got, err := GlibcNeed(root)
	if err != nil || got != elfdeps.MaxVersion(want...) {
		t.Fatalf("GlibcNeed = %q, %v; want %q", got, err, elfdeps.MaxVersion(want...))
	}
	if got, err := GlibcNeed(t.TempDir()); err != nil || got != "" {
		t.Errorf("empty sysroot: %q, %v", got, err)
	}
	bad := filepath.Join(tools, "modpost")
	os.WriteFile(bad, host[:80], 0o755)
	if _, err := GlibcNeed(root); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("truncated ELF: want an error naming %s, got %v", bad, err)
	}
}
