package fsx

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(dir, ".*"))
	return found
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f.json")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o644 {
		t.Errorf("got %q %v, want the second write with mode 0644", b, fi.Mode())
	}
	if l := leftovers(t, filepath.Dir(p)); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory cannot be renamed over by a file: the commit fails.
	os.Remove(p)
	os.MkdirAll(filepath.Join(p, "x"), 0o755)
	if err := WriteFile(p, []byte("new"), 0o644); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left after a failed write: %v", l)
	}
}

func TestCreateDiscard(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the final name exists before Commit: %v", err)
	}
	f.Discard()
	f.Discard() // twice is harmless
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("Discard left %v", l)
	}
	if err := f.Commit(); err == nil {
		t.Error("Commit after Discard succeeded")
	}
}

func TestReplaceDir(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "tree")
	for _, content := range []string{"v1", "v2"} {
		src, _ := os.MkdirTemp(dir, ".tmp-")
		os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644)
		if err := ReplaceDir(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dst, "f"))
	if string(b) != "v2" {
		t.Errorf("tree holds %q, want v2", b)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".tmp-1", ".old-2", ".results.json.tmp123"} {
		os.MkdirAll(filepath.Join(dir, n), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "keep"), nil, 0o644)
	RemoveStale(dir)
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("left %v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Error("RemoveStale removed a final file")
	}
}

func TestLockExcludes(t *testing.T) {
	name := filepath.Join(t.TempDir(), "locks", "l")
	var inside, most atomic.Int32
	var waited atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := Lock(name, func() { waited.Store(true) })
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			if n > most.Load() {
				most.Store(n)
			}
			time.Sleep(20 * time.Millisecond)
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d holders at once", most.Load())
	}
	if !waited.Load() {
		t.Error("no waiter was told it waits")
	}
}

func tree(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "b", "skipme"), 0o755)
	os.WriteFile(filepath.Join(dir, "b", "f"), []byte("bee"), 0o640)
	os.WriteFile(filepath.Join(dir, "b", "skipme", "x"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "a"), []byte("ay"), 0o755)
	os.Symlink("a", filepath.Join(dir, "link"))
	return dir
}

func TestWriteTar(t *testing.T) {
	dir := tree(t)
	opt := TarOptions{Prefix: "libs", RootOwned: true, Skip: func(n string) bool { return n == "b/skipme" }}
	var one, two bytes.Buffer
	if err := WriteTar(&one, dir, opt); err != nil {
		t.Fatal(err)
	}
	// Reading every file (atime) and waiting must not change the archive.
	time.Sleep(10 * time.Millisecond)
	if err := WriteTar(&two, dir, opt); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("the same tree gave two different archives")
	}
	var got []string
	tr := tar.NewReader(&one)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s not root-owned", h.Name)
		}
		entry := h.Name
		if h.Typeflag == tar.TypeSymlink {
			entry += "->" + h.Linkname
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			entry += "=" + string(b)
		}
		got = append(got, entry)
	}
	want := []string{"libs/", "libs/a=ay", "libs/b/", "libs/b/f=bee", "libs/link->a"}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %s, want %s", i, got[i], want[i])
		}
	}
}

func TestWriteTarFiles(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	os.WriteFile(img, []byte("disk"), 0o600)
	var one, two bytes.Buffer
	entries := []TarEntry{{Name: "meta", Data: []byte("{}")}, {Name: "box.img", Path: img}}
	if err := WriteTarFiles(&one, entries); err != nil {
		t.Fatal(err)
	}
	WriteTarFiles(&two, entries)
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("the same entries gave two different archives")
	}
	tr := tar.NewReader(&one)
	for _, want := range []string{"meta={}", "box.img=disk"} {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if got := h.Name + "=" + string(b); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if err := WriteTarFiles(io.Discard, []TarEntry{{Name: "x", Path: filepath.Join(dir, "missing")}}); err == nil {
		t.Error("a missing file gave no error")
	}
}
