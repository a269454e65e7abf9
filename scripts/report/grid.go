package report

import (
	"slices"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Column is one compiler of the matrix with the drivers built by it, in
// driver order. A column with several drivers (clang: bpf and modern_bpf)
// is drawn as side-by-side sub-cells.
type Column struct {
	Compiler string
	Drivers  []string
}

// Grid is the shape of a matrix: kernels (rows, by version) and compilers
// (columns, gcc then clang, by version), with the cells of a results file.
type Grid struct {
	Kernels []string
	Columns []Column
	cells   map[cellKey]*results.Cell
	facts   map[string]*results.KernelFacts
	arches  map[string]string // kernel -> its architecture
}

type cellKey struct{ kernel, compiler, driver string }

func keyOf(c *results.Cell) cellKey { return cellKey{c.Kernel, c.Compiler, c.Driver} }

// NewGrid arranges the cells of f.
func NewGrid(f *results.File) *Grid {
	g := &Grid{cells: make(map[cellKey]*results.Cell, len(f.Cells)), facts: map[string]*results.KernelFacts{}, arches: map[string]string{}}
	for _, k := range f.Kernels {
		if k.Facts != nil {
			g.facts[k.Kernel] = k.Facts
		}
		g.arches[k.Kernel] = layout.ArchOf(k.Arch)
	}
	drivers := map[string][]string{}
	for i := range f.Cells {
		c := &f.Cells[i]
		g.cells[keyOf(c)] = c
		if c.Arch != "" {
			g.arches[c.Kernel] = c.Arch
		}
		if !slices.Contains(g.Kernels, c.Kernel) {
			g.Kernels = append(g.Kernels, c.Kernel)
		}
		if !slices.Contains(drivers[c.Compiler], c.Driver) {
			drivers[c.Compiler] = append(drivers[c.Compiler], c.Driver)
		}
	}
	// Rows by architecture (the host's first), then by version.
	slices.SortFunc(g.Kernels, func(a, b string) int {
		if c := slices.Index(layout.Arches, g.Arch(a)) - slices.Index(layout.Arches, g.Arch(b)); c != 0 {
			return c
		}
		return results.CompareKernels(a, b)
	})
	for comp, ds := range drivers {
		slices.SortFunc(ds, results.CompareDrivers)
		g.Columns = append(g.Columns, Column{Compiler: comp, Drivers: ds})
	}
	slices.SortFunc(g.Columns, func(a, b Column) int { return results.CompareCompilers(a.Compiler, b.Compiler) })
	return g
}

// Cell returns the cell at kernel x compiler x driver, or nil.
func (g *Grid) Cell(kernel, compiler, driver string) *results.Cell {
	return g.cells[cellKey{kernel, compiler, driver}]
}

// Index returns the row, the column and the driver's sub-cell of a cell.
func (g *Grid) Index(kernel, compiler, driver string) (row, col, sub int, ok bool) {
	row = slices.Index(g.Kernels, kernel)
	col = slices.IndexFunc(g.Columns, func(c Column) bool { return c.Compiler == compiler })
	if row < 0 || col < 0 {
		return 0, 0, 0, false
	}
	sub = slices.Index(g.Columns[col].Drivers, driver)
	return row, col, sub, sub >= 0
}

// Drivers lists every driver of the grid, in driver order.
func (g *Grid) Drivers() []string {
	var out []string
	for _, c := range g.Columns {
		for _, d := range c.Drivers {
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, results.CompareDrivers)
	return out
}

// SubColumns is the number of sub-cells across the grid.
func (g *Grid) SubColumns() int {
	n := 0
	for _, c := range g.Columns {
		n += len(c.Drivers)
	}
	return n
}

// HasTests reports whether any cell has a test record other than not-run.
func (g *Grid) HasTests() bool {
	for _, c := range g.cells {
		if c.Test != nil && c.Test.Status != results.TestNotRun {
			return true
		}
	}
	return false
}

// HasHoles reports whether some kernel lacks a cell that another kernel
// has, so the matrix has empty places.
func (g *Grid) HasHoles() bool {
	return len(g.cells) < len(g.Kernels)*g.SubColumns()
}

// FactsLabel is what a kernel's row shows beside its name: its own
// compiler and the facts that set it apart, "gcc-14 · BTF · RT"; "" when
// the results hold no facts for it. In a grid of several architectures
// (MultiArch), the kernel's comes first on every row: "arm64 · gcc-12 · BTF".
func (g *Grid) FactsLabel(kernel string) string {
	label := g.facts[kernel].Label()
	if !g.MultiArch() {
		return label
	}
	if label == "" {
		return g.Arch(kernel)
	}
	return g.Arch(kernel) + " · " + label
}

// HasFacts reports whether rows carry a label: some kernel has facts, or
// the grid has several architectures.
func (g *Grid) HasFacts() bool { return len(g.facts) > 0 || g.MultiArch() }

// FactsHeading is the heading of the rows' labels.
func (g *Grid) FactsHeading() string {
	if g.MultiArch() {
		return "arch · " + FactsHeading
	}
	return FactsHeading
}

// Arch is a kernel's architecture (amd64 for results that name none).
func (g *Grid) Arch(kernel string) string { return layout.ArchOf(g.arches[kernel]) }

// MultiArch reports whether the grid has a kernel of another architecture
// than amd64: then every row names its own.
func (g *Grid) MultiArch() bool {
	for _, k := range g.Kernels {
		if g.Arch(k) != layout.Amd64 {
			return true
		}
	}
	return false
}

// Mark is how a cell stands to its kernel's own compiler.
type Mark int

// Marks.
const (
	MarkNone    Mark = iota
	MarkOwn          // a kmod built with the kernel's own compiler
	MarkStandIn      // a kmod built with a newer compiler standing in for it (no builder has the kernel's own)
)

// MarkOf returns the mark of a cell: only kmod cells have one (the eBPF
// probes are not built by the kernel's toolchain).
func (g *Grid) MarkOf(c *results.Cell) Mark {
	if c == nil || c.Driver != layout.Kmod {
		return MarkNone
	}
	if f := g.facts[c.Kernel]; f != nil && f.Compiler != "" && f.Compiler == c.Compiler {
		return MarkOwn
	}
	if c.Compile != nil && c.Compile.ForKernel != "" && c.Compile.ForKernel != c.Compiler {
		return MarkStandIn
	}
	return MarkNone
}

// Marks lists the marks that some cell of the grid has, in legend order.
func (g *Grid) Marks() []Mark {
	seen := map[Mark]bool{}
	for _, c := range g.cells {
		seen[g.MarkOf(c)] = true
	}
	var out []Mark
	for _, m := range []Mark{MarkOwn, MarkStandIn} {
		if seen[m] {
			out = append(out, m)
		}
	}
	return out
}

// Symbol is how the Markdown tables mark a cell, after its status.
func (m Mark) Symbol() string {
	switch m {
	case MarkOwn:
		return "*"
	case MarkStandIn:
		return "+"
	}
	return ""
}

// Label is the legend text of a mark.
func (m Mark) Label() string {
	switch m {
	case MarkOwn:
		return "kernel's own compiler"
	case MarkStandIn:
		return "newer, standing in for the kernel's own"
	}
	return ""
}
