package srctar

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func members(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func TestMake(t *testing.T) {
	src := t.TempDir()
	for name, text := range map[string]string{
		"CMakeLists.txt":       "project(x)\n",
		"driver/main.c":        "int x;\n",
		"build/driver/scap.ko": "old output",
		"test/vm/build/x.json": "{}",
		"test/vm/magefile.go":  "package main\n",
		".git/HEAD":            "ref\n",
	} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("main.c", filepath.Join(src, "driver/link.c"))
	dst := filepath.Join(t.TempDir(), "libs-src.tar.gz")

	a, err := Make(src, dst, DefaultExcludes)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reused || len(a.SHA256) != 64 {
		t.Fatalf("first Make: %+v", a)
	}
	got := members(t, dst)
	for _, w := range []string{"libs/", "libs/CMakeLists.txt", "libs/driver/main.c", "libs/driver/link.c", "libs/test/vm/magefile.go"} {
		if !slices.Contains(got, w) {
			t.Errorf("archive lacks %s: %v", w, got)
		}
	}
	for _, bad := range []string{"libs/build/driver/scap.ko", "libs/test/vm/build/x.json", "libs/.git/HEAD"} {
		if slices.Contains(got, bad) {
			t.Errorf("archive has excluded %s", bad)
		}
	}

	b, err := Make(src, dst, DefaultExcludes)
	if err != nil || !b.Reused || b.SHA256 != a.SHA256 {
		t.Fatalf("unchanged tree: %+v, %v", b, err)
	}

	// Touching a file (time only) makes a new archive with a new hash.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(src, "driver/main.c"), later, later)
	c, err := Make(src, dst, DefaultExcludes)
	if err != nil || c.Reused || c.SHA256 == a.SHA256 {
		t.Fatalf("touched tree: %+v, %v (first %s)", c, err, a.SHA256)
	}
	// Packing is deterministic: the same tree packs to the same hash.
	os.Remove(dst + ".stamp")
	d, err := Make(src, dst, DefaultExcludes)
	if err != nil || d.SHA256 != c.SHA256 {
		t.Fatalf("repacked: %s, want %s (%v)", d.SHA256, c.SHA256, err)
	}
	// No temporary file is left beside the archive.
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".*tmp"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
