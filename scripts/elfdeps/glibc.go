package elfdeps

import (
	"debug/elf"
	"fmt"
	"io"
	"strings"

	goversion "github.com/hashicorp/go-version"
)

// GlibcNeeds returns the GLIBC_x.y versions the ELF file r requires from
// libc and its siblings (the SHT_GNU_verneed entries of .gnu.version_r), in
// file order without duplicates. A static binary needs none.
func GlibcNeeds(r io.ReaderAt) ([]string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.SectionByType(elf.SHT_GNU_VERNEED) == nil {
		return nil, nil
	}
	needs, err := f.DynamicVersionNeeds()
	if err != nil {
		return nil, fmt.Errorf("read .gnu.version_r: %w", err)
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range needs {
		for _, d := range n.Needs {
			if v, ok := strings.CutPrefix(d.Dep, "GLIBC_"); ok && !seen[v] {
				if _, err := goversion.NewVersion(v); err == nil {
					seen[v] = true
					out = append(out, v)
				}
			}
		}
	}
	return out, nil
}

// MaxVersion returns the highest of glibc versions like "2.38" ("" for none).
func MaxVersion(versions ...string) string {
	best := ""
	for _, v := range versions {
		if best == "" || CompareVersions(v, best) > 0 {
			best = v
		}
	}
	return best
}

// CompareVersions compares two glibc versions ("2.36", "2.3.4")
// numerically: -1, 0 or +1. A version that does not parse sorts before
// every version that does.
func CompareVersions(a, b string) int {
	va, ea := goversion.NewVersion(a)
	vb, eb := goversion.NewVersion(b)
	switch {
	case ea != nil && eb != nil:
		return 0
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	return va.Compare(vb)
}
