package loop

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

func TestResolveDeps(t *testing.T) {
	dir := t.TempDir()
	dep := "kernel/net/a.ko.xz: kernel/lib/b-core.ko.xz kernel/lib/c.ko.xz\n" +
		"kernel/lib/b-core.ko.xz: kernel/lib/c.ko.xz\n" +
		"kernel/lib/c.ko.xz:\n" +
		"kernel/fs/d.ko.xz:\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := resolveDeps("scap.ko", []string{"a", "d"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, p := range got {
		r, _ := filepath.Rel(dir, p)
		rel = append(rel, r)
	}
	want := []string{"kernel/lib/c.ko.xz", "kernel/lib/b-core.ko.xz", "kernel/net/a.ko.xz", "kernel/fs/d.ko.xz"}
	if !slices.Equal(rel, want) {
		t.Errorf("load order %v, want %v", rel, want)
	}
	if _, err := resolveDeps("scap.ko", []string{"missing"}, dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("unknown dependency: %v", err)
	}
	if _, err := resolveDeps("scap.ko", []string{"a"}, ""); err == nil {
		t.Error("no modules tree: no error")
	}
}

func TestReadModuleDecompresses(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("\x7fELF module"))
	w.Close()
	p := filepath.Join(dir, "m.ko.xz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := readModule(p)
	if err != nil || string(b) != "\x7fELF module" {
		t.Errorf("readModule = %q, %v", b, err)
	}
	if modName("/x/kernel/lib/b-core.ko.zst") != "b_core" {
		t.Errorf("modName = %s", modName("/x/kernel/lib/b-core.ko.zst"))
	}
}

// A module file that is not ELF needs no modules: its load in the guest
// fails with the kernel's words.
func TestModuleDepsNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "scap.ko")
	if err := os.WriteFile(p, []byte("not a module"), 0o644); err != nil {
		t.Fatal(err)
	}
	if deps, err := moduleDeps(p, ""); err != nil || len(deps) != 0 {
		t.Errorf("moduleDeps of a non-ELF file: %v, %v", deps, err)
	}
	if _, err := moduleDeps(filepath.Join(t.TempDir(), "missing.ko"), ""); err == nil {
		t.Error("moduleDeps of a missing file: no error")
	}
}
