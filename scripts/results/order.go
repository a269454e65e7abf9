package results

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// CompilerDrivers lists the drivers a compiler builds: gcc the kernel
// module, clang the two eBPF probes.
func CompilerDrivers(compiler string) []string {
	if strings.HasPrefix(compiler, "clang-") {
		return []string{layout.BPF, layout.ModernBPF}
	}
	return []string{layout.Kmod}
}

// CellsPerKernel is the number of cells each kernel of a grid has with
// these compilers and drivers.
func CellsPerKernel(compilers, drivers []string) int {
	n := 0
	for _, c := range compilers {
		for _, d := range CompilerDrivers(c) {
			if slices.Contains(drivers, d) {
				n++
			}
		}
	}
	return n
}

// CompareCells orders cells by kernel, compiler, then driver.
func CompareCells(a, b Cell) int {
	if c := CompareKernels(a.Kernel, b.Kernel); c != 0 {
		return c
	}
	if c := CompareCompilers(a.Compiler, b.Compiler); c != 0 {
		return c
	}
	return CompareDrivers(a.Driver, b.Driver)
}

// CompareKernels orders uname -r strings by version: runs of digits compare
// as numbers and everything else as text, so 5.10.0-32-cloud-amd64 <
// 6.1.0-50-cloud-amd64 < 6.12.117+deb13-cloud-amd64 < 7.3.4+deb13-cloud-amd64,
// 3.10.0-1160.el7.x86_64 < 5.10.16-1.el7.elrepo.x86_64 and
// 4.16.18-041618-generic < 5.15.0-91-generic. Equal versions with
// different flavours order by flavour, so the order is total.
func CompareKernels(a, b string) int {
	if c := compareNatural(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// compareNatural compares strings run by run: digit runs numerically
// (ignoring leading zeros), other runs as text.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		ra, rest1 := nextRun(a)
		rb, rest2 := nextRun(b)
		da, db := isDigit(ra[0]), isDigit(rb[0])
		var c int
		switch {
		case da && db:
			c = compareDigits(ra, rb)
		case da != db:
			// A number sorts before text at the same position, so that
			// 6.1.0-50 comes before 6.1.0-rc3 and x.y before x.y-foo.
			if da {
				c = -1
			} else {
				c = 1
			}
		default:
			c = strings.Compare(ra, rb)
		}
		if c != 0 {
			return c
		}
		a, b = rest1, rest2
	}
	return cmp.Compare(len(a), len(b))
}

func nextRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// CompareCompilers orders compilers by kind (gcc, then clang, then any
// other by name) and then by numeric version: gcc-9 < gcc-12 < clang-11.
func CompareCompilers(a, b string) int {
	ka, va := SplitCompiler(a)
	kb, vb := SplitCompiler(b)
	if c := cmp.Compare(kindRank(ka), kindRank(kb)); c != 0 {
		return c
	}
	if c := strings.Compare(ka, kb); c != 0 {
		return c
	}
	if c := cmp.Compare(va, vb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// SplitCompiler splits "gcc-12" into "gcc" and 12; a name without a
// numeric version has version -1.
func SplitCompiler(name string) (kind string, version int) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, -1
	}
	v, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return name, -1
	}
	return name[:i], v
}

func kindRank(kind string) int {
	switch kind {
	case "gcc":
		return 0
	case "clang":
		return 1
	}
	return 2
}

// CompareDrivers orders drivers kmod, bpf, modern_bpf, then others by name.
func CompareDrivers(a, b string) int {
	if c := cmp.Compare(driverRank(a), driverRank(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func driverRank(d string) int {
	switch d {
	case layout.Kmod:
		return 0
	case layout.BPF:
		return 1
	case layout.ModernBPF:
		return 2
	}
	return 3
}
