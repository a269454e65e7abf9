package loop

import (
	"bytes"
	"os"
	"os/exec"
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

// Debian's kernel packages ship no modules.dep (depmod writes it at
// install): the modules a module needs are then read from the .modinfo of
// each, compressed or not, found by name anywhere in the tree.
func TestResolveDepsWithoutModulesDep(t *testing.T) {
	dir := t.TempDir()
	module := func(rel, depends string, compress bool) {
		t.Helper()
		src := filepath.Join(t.TempDir(), "m.c")
		code := "__attribute__((section(\".modinfo\"), used)) static const char d[] = \"license=GPL\\0depends=" + depends + "\";\n"
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		obj := filepath.Join(t.TempDir(), "m.o")
		if out, err := exec.Command("gcc", "-c", "-o", obj, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc (the test setup installs it): %v: %s", err, out)
		}
		b, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		if compress {
			var buf bytes.Buffer
			w, err := xz.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(b)
			w.Close()
			b = buf.Bytes()
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	module("kernel/fs/overlayfs/overlay.ko.xz", "ovl-helper,crc", true)
	module("kernel/lib/ovl-helper.ko", "crc", false)
	module("kernel/lib/crc.ko.xz", "", true)
	module("kernel/net/other.ko", "", false)
	got, err := resolveDeps("drivers_test", []string{"overlay"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, p := range got {
		r, _ := filepath.Rel(dir, p)
		rel = append(rel, r)
	}
	want := []string{"kernel/lib/crc.ko.xz", "kernel/lib/ovl-helper.ko", "kernel/fs/overlayfs/overlay.ko.xz"}
	if !slices.Equal(rel, want) {
		t.Errorf("load order %v, want %v", rel, want)
	}
	if mods, err := optionalModules([]string{"overlay", "builtin_one"}, dir); err != nil || len(mods) != 3 {
		t.Errorf("optionalModules = %v, %v; want overlay's three", mods, err)
	}
	if _, err := resolveDeps("scap.ko", []string{"missing"}, dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("unknown dependency: %v", err)
	}
}
