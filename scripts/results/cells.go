package results

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// Find returns the cell of kernel x compiler x driver, or nil. The pointer
// is into f.Cells and stays valid until cells are added.
func (f *File) Find(kernel, compiler, driver string) *Cell {
	for i := range f.Cells {
		c := &f.Cells[i]
		if c.Kernel == kernel && c.Compiler == compiler && c.Driver == driver {
			return c
		}
	}
	return nil
}

// Upsert records c: a new cell is appended; for an existing cell, the
// stage records c carries (Compile, Test) replace the old ones and the
// records c leaves nil are kept, except that a compile record with another
// key drops the old test record: that test was of an artifact built from
// other inputs, and keeping it would let a stale pass stand for the new
// artifact. It returns the stored cell.
func (f *File) Upsert(c Cell) *Cell {
	old := f.Find(c.Kernel, c.Compiler, c.Driver)
	if old == nil {
		f.Cells = append(f.Cells, c)
		return &f.Cells[len(f.Cells)-1]
	}
	if c.Compile != nil {
		if old.Compile != nil && old.Compile.Key != c.Compile.Key {
			old.Test = nil
		}
		old.Compile = c.Compile
	}
	if c.Test != nil {
		old.Test = c.Test
	}
	return old
}

// SetCompile records what the compile stage found for a cell, keeping the
// cell's test record unless the compile key changed (see Upsert).
func (f *File) SetCompile(kernel, compiler, driver string, c Compile) *Cell {
	return f.Upsert(Cell{Kernel: kernel, Compiler: compiler, Driver: driver, Compile: &c})
}

// SetTest records what the test stage found for a cell, keeping the cell's
// compile record.
func (f *File) SetTest(kernel, compiler, driver string, t Test) *Cell {
	return f.Upsert(Cell{Kernel: kernel, Compiler: compiler, Driver: driver, Test: &t})
}

// Delete removes the cell of kernel x compiler x driver and reports whether
// there was one (a cell that left the grid).
func (f *File) Delete(kernel, compiler, driver string) bool {
	n := len(f.Cells)
	f.Cells = slices.DeleteFunc(f.Cells, func(c Cell) bool {
		return c.Kernel == kernel && c.Compiler == compiler && c.Driver == driver
	})
	return len(f.Cells) != n
}

// Sort puts the cells in display order: kernels by version, then compilers
// (gcc before clang, by version), then drivers; and the kernel records by
// version.
func (f *File) Sort() {
	slices.SortStableFunc(f.Cells, CompareCells)
	slices.SortStableFunc(f.Kernels, func(a, b Kernel) int { return CompareKernels(a.Kernel, b.Kernel) })
}

// Validate reports the first cell whose statuses are not among the known
// ones, naming the cell.
func (f *File) Validate() error {
	for _, c := range f.Cells {
		if c.Compile != nil && !slices.Contains(CompileStatuses, c.Compile.Status) {
			return fmt.Errorf("cell %s: compile status %q is not one of %v", c.ID(), c.Compile.Status, CompileStatuses)
		}
		if c.Test != nil && !slices.Contains(TestStatuses, c.Test.Status) {
			return fmt.Errorf("cell %s: test status %q is not one of %v", c.ID(), c.Test.Status, TestStatuses)
		}
	}
	return nil
}

// CompileStatuses lists every compile status, in legend order.
var CompileStatuses = []string{CompileOK, CompileFail, CompileSkip, CompileError}

// TestStatuses lists every test status, in legend order.
var TestStatuses = []string{TestPass, TestFail, TestSkip, TestError, TestNotRun}

// Sorted returns a copy of the cells in display order.
func (f *File) Sorted() []Cell {
	out := slices.Clone(f.Cells)
	slices.SortStableFunc(out, CompareCells)
	return out
}

// GridID identifies a grid by its axes: the kernels (as cells name them),
// the compilers and the drivers, in any order. Two runs with equal IDs
// planned the same cells.
func GridID(kernels, compilers, drivers []string) string {
	h := sha256.New()
	for _, axis := range [][]string{kernels, compilers, drivers} {
		s := slices.Clone(axis)
		slices.Sort(s)
		s = slices.Compact(s)
		fmt.Fprintf(h, "%q\n", s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// DriverOKPath is where build/driver_ok keeps the artifact of a cell whose
// latest test passed, relative to the build directory (layout.DriverOK);
// modern_bpf has none ("").
func DriverOKPath(c Cell) string { return layout.DriverOK(c.Compiler, c.Kernel, c.Driver) }

// NoScapOpen is the test record of a cell whose driver built but whose
// scap-open did not: an error, since nothing can say whether the driver
// works, naming the build log (relative to the build directory) and, when
// known, why the build failed.
func NoScapOpen(log, why string) Test {
	reason := "scap-open did not build (log " + log + ")"
	if why != "" {
		reason += ": " + why
	}
	return Test{Status: TestError, Reason: reason, Log: log}
}

// SetBuild records b, replacing the record of the same build.
func (f *File) SetBuild(b Build) {
	for i := range f.Builds {
		if f.Builds[i].Name == b.Name && f.Builds[i].Compiler == b.Compiler && layout.ArchOf(f.Builds[i].Arch) == layout.ArchOf(b.Arch) {
			f.Builds[i] = b
			return
		}
	}
	f.Builds = append(f.Builds, b)
	slices.SortFunc(f.Builds, func(a, b Build) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := CompareCompilers(a.Compiler, b.Compiler); c != 0 {
			return c
		}
		return strings.Compare(layout.ArchOf(a.Arch), layout.ArchOf(b.Arch))
	})
}

// FindBuild returns the record of a build for arch, or nil.
func (f *File) FindBuild(name, compiler, arch string) *Build {
	for i := range f.Builds {
		if f.Builds[i].Name == name && f.Builds[i].Compiler == compiler && layout.ArchOf(f.Builds[i].Arch) == layout.ArchOf(arch) {
			return &f.Builds[i]
		}
	}
	return nil
}
