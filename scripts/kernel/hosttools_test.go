package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An arm64 kernel's sysroot with the arm64 linux-kbuild as Debian ships it
// cannot build on this host: the kernel stage says which tools and what to
// add; with the amd64 kbuild extracted over it, the sysroot is fine.
func TestCheckHostTools(t *testing.T) {
	root := t.TempDir()
	fixdep := filepath.Join(root, "usr/lib/linux-kbuild-6.1/scripts/basic/fixdep")
	if err := os.MkdirAll(filepath.Dir(fixdep), 0o755); err != nil {
		t.Fatal(err)
	}
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	h[16], h[18] = 3, 183 // ET_DYN, EM_AARCH64
	if err := os.WriteFile(fixdep, h, 0o755); err != nil {
		t.Fatal(err)
	}
	// Not a program: an arm64 object that is not executable is no host tool.
	if err := os.WriteFile(filepath.Join(root, "usr/lib/linux-kbuild-6.1/scripts/module.o"), h, 0o644); err != nil {
		t.Fatal(err)
	}
	err := checkHostTools(root)
	if err == nil || !strings.Contains(err.Error(), "aarch64 programs (usr/lib/linux-kbuild-6.1/scripts/basic/fixdep)") ||
		!strings.Contains(err.Error(), "amd64 linux-kbuild") {
		t.Fatalf("checkHostTools = %v", err)
	}
	host, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(fixdep, host, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkHostTools(root); err != nil {
		t.Errorf("with x86-64 host tools: %v", err)
	}
}
