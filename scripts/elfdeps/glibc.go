package elfdeps

import (
	"debug/elf"
	"fmt"
	"io"
	"strconv"
	"strings"
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
				if _, ok := parseVersion(v); ok {
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
// numerically: -1, 0 or +1. Unparsable parts compare as 0.
func CompareVersions(a, b string) int {
	pa, _ := parseVersion(a)
	pb, _ := parseVersion(b)
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

func parseVersion(v string) ([]int, bool) {
	var out []int
	for _, p := range strings.Split(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, false
		}
		out = append(out, n)
	}
	return out, len(out) > 0
}
