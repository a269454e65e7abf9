package archive

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract: whatever the bytes, extraction returns (no panic) and
// writes nothing outside its destination.
func FuzzExtract(f *testing.F) {
	dir := f.TempDir()
	for _, entries := range [][]entry{
		goodEntries,
		{{Name: "./a", Link: "/"}, {Name: "./a/b", Body: "x"}},
		{{Name: "./h", Hard: true, Link: "../x"}},
	} {
		for _, comp := range []string{"", "gz"} {
			b, _ := os.ReadFile(writeDeb(f, dir, "seed.deb", comp, entries))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		pkg := filepath.Join(base, "p.deb")
		os.WriteFile(pkg, data, 0o644)
		dest := filepath.Join(base, "a", "b", "root")
		os.MkdirAll(dest, 0o755)
		Extract(context.Background(), pkg, dest)
		// base holds p.deb and a/; a holds only b; b holds only root.
		for d, want := range map[string]int{base: 2, filepath.Join(base, "a"): 1, filepath.Join(base, "a", "b"): 1} {
			if ents, _ := os.ReadDir(d); len(ents) != want {
				t.Fatalf("%s holds %d entries, want %d: written outside the destination", d, len(ents), want)
			}
		}
	})
}
