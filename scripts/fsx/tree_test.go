package fsx

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWriteTarOwnersLinksSkips(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib", "x86_64-linux-gnu"), 0o755)
	os.MkdirAll(filepath.Join(dir, "proc", "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", "x86_64-linux-gnu", "libz.so.1.2"), []byte("zlib"), 0o644)
	os.WriteFile(filepath.Join(dir, "proc", "1", "status"), []byte("no"), 0o644)
	os.Symlink("libz.so.1.2", filepath.Join(dir, "lib", "x86_64-linux-gnu", "libz.so.1"))
	os.Symlink("/etc/passwd", filepath.Join(dir, "abs"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Owned by someone else, so that RootOwned has something to change.
	if err := os.Lchown(filepath.Join(dir, "lib", "x86_64-linux-gnu", "libz.so.1.2"), 1234, 1234); err != nil {
		t.Skipf("chown needs root: %v", err)
	}
	var plain bytes.Buffer
	if err := WriteTar(&plain, dir, TarOptions{}); err != nil {
		t.Fatal(err)
	}
	for tr := tar.NewReader(&plain); ; {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no libz.so.1.2 in the plain tree: %v", err)
		}
		if h.Name == "lib/x86_64-linux-gnu/libz.so.1.2" {
			if h.Uid != 1234 {
				t.Errorf("owner not kept without RootOwned: %d", h.Uid)
			}
			break
		}
	}

	var buf bytes.Buffer
	err := WriteTar(&buf, dir, TarOptions{RootOwned: true, Skip: func(name string) bool { return strings.HasPrefix(name, "proc") }})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		names = append(names, h.Name)
		if h.Name == "lib/x86_64-linux-gnu/libz.so.1.2" {
			if b, _ := io.ReadAll(tr); string(b) != "zlib" {
				t.Errorf("content %q", b)
			}
		}
	}
	slices.Sort(names)
	want := []string{"abs", "lib/", "lib/x86_64-linux-gnu/", "lib/x86_64-linux-gnu/libz.so.1", "lib/x86_64-linux-gnu/libz.so.1.2"}
	if !slices.Equal(names, want) {
		t.Fatalf("entries %v, want %v (proc skipped, fifo left out)", names, want)
	}
	if h := got["lib/x86_64-linux-gnu/libz.so.1"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "libz.so.1.2" {
		t.Errorf("relative symlink: %+v", h)
	}
	if h := got["abs"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" {
		t.Errorf("absolute symlink must stay a link, not be followed: %+v", h)
	}
	for _, h := range got {
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: not root-owned: %d/%d %q", h.Name, h.Uid, h.Gid, h.Uname)
		}
	}
}
