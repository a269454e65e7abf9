// Package archivetest writes small Debian packages for tests: real ar +
// data.tar files, built entry by entry, so that tests can craft both good
// kernel packages and hostile ones.
package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
	"time"

	"github.com/blakesmith/ar"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Entry is one member of a crafted package's data.tar.
type Entry struct {
	Name string // as stored, e.g. "./usr/src/x"
	Body string // regular file content
	Link string // symlink target, or hard link target when Hard
	Dir  bool
	Hard bool
}

// MTime is the modification time of every crafted entry.
var MTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// Tar returns a tar stream of entries.
func Tar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, ModTime: MTime, Typeflag: tar.TypeReg, Size: int64(len(e.Body))}
		switch {
		case e.Dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case e.Hard:
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, e.Link, 0
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Compress compresses data with kind: "" (none), "gz"/"gzip", "xz",
// "zst"/"zstd".
func Compress(t testing.TB, data []byte, kind string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "":
		return data
	case "gz", "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zst", "zstd":
		w, err = zstd.NewWriter(&buf)
	default:
		t.Fatalf("no compressor %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// WriteDeb writes a .deb at path whose data member is data.tar.<comp>
// ("" = uncompressed data.tar).
func WriteDeb(t testing.TB, path, comp string, entries []Entry) {
	t.Helper()
	member := "data.tar"
	if comp != "" {
		member += "." + comp
	}
	data := Compress(t, Tar(t, entries), comp)
	control := Compress(t, Tar(t, []Entry{{Name: "./control", Body: "Package: test\n"}}), "gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := ar.NewWriter(f)
	if err := w.WriteGlobalHeader(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name string
		body []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", control}, {member, data}} {
		if err := w.WriteHeader(&ar.Header{Name: m.name, Size: int64(len(m.body)), Mode: 0o644, ModTime: MTime}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.body); err != nil {
			t.Fatal(err)
		}
	}
}
