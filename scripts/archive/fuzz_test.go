package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cavaliergopher/cpio"
)

// seeds are entry lists the fuzzers start from: a good header tree, a
// symlink escape and a hard link escape.
var seeds = [][]entry{
	goodEntries,
	{{Name: "./a", Link: "/"}, {Name: "./a/b", Body: "x"}},
	{{Name: "./h", Hard: true, Link: "../x"}},
}

// fuzzExtract writes data as a package file, extracts it, and fails when
// anything was written outside the destination. Errors are expected;
// panics and escapes are not.
func fuzzExtract(t *testing.T, name string, data []byte, extract func(pkg, dest string)) {
	base := t.TempDir()
	pkg := filepath.Join(base, name)
	os.WriteFile(pkg, data, 0o644)
	dest := filepath.Join(base, "a", "b", "root")
	os.MkdirAll(dest, 0o755)
	extract(pkg, dest)
	// base holds the package and a/; a holds only b; b holds only root.
	for d, want := range map[string]int{base: 2, filepath.Join(base, "a"): 1, filepath.Join(base, "a", "b"): 1} {
		if ents, _ := os.ReadDir(d); len(ents) != want {
			t.Fatalf("%s holds %d entries, want %d: written outside the destination", d, len(ents), want)
		}
	}
}

func extractFile(pkg, dest string) { Extract(context.Background(), pkg, dest) }

// FuzzExtract: whatever the bytes of a .deb, extraction returns (no panic)
// and writes nothing outside its destination.
func FuzzExtract(f *testing.F) {
	dir := f.TempDir()
	for _, entries := range seeds {
		for _, comp := range []string{"", "gz"} {
			b, _ := os.ReadFile(writeDeb(f, dir, "seed.deb", comp, entries))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, "p.deb", data, extractFile) })
}

// FuzzExtractRPM does the same for .rpm files: lead, signature and header
// indexes, the payload compressor named in the header, the cpio payload.
func FuzzExtractRPM(f *testing.F) {
	dir := f.TempDir()
	for _, entries := range seeds {
		for _, comp := range []string{"gzip", "xz"} {
			b, _ := os.ReadFile(writeRPM(f, dir, "seed.rpm", comp, entries))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzExtract(t, "p.rpm", data, extractFile) })
}

// FuzzCpio feeds raw newc cpio streams (an rpm's payload) to the cpio
// reader, hard links and all.
func FuzzCpio(f *testing.F) {
	for _, entries := range seeds {
		var b bytes.Buffer
		w := cpio.NewWriter(&b)
		for i, e := range entries {
			h := &cpio.Header{Name: e.Name, Mode: cpio.TypeReg | 0o644, Size: int64(len(e.Body)), Inode: int64(i%2 + 1), Links: 2}
			body := e.Body
			if e.Link != "" {
				h.Mode, h.Size, body = cpio.TypeSymlink|0o777, int64(len(e.Link)), e.Link
			}
			w.WriteHeader(h)
			w.Write([]byte(body))
		}
		w.Close()
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzExtract(t, "payload.cpio", data, func(pkg, dest string) {
			b, _ := os.ReadFile(pkg)
			tr := newTree(context.Background(), dest, pkg)
			if extractCpio(bytes.NewReader(b), tr) == nil {
				tr.finish()
			}
		})
	})
}
