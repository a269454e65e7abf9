package results

import (
	"fmt"
	"slices"
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
// (gcc before clang, by version), then drivers.
func (f *File) Sort() {
	slices.SortStableFunc(f.Cells, CompareCells)
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
var CompileStatuses = []string{CompileOK, CompileFail, CompileSkip}

// TestStatuses lists every test status, in legend order.
var TestStatuses = []string{TestPass, TestFail, TestSkip, TestError, TestNotRun}

// Sorted returns a copy of the cells in display order.
func (f *File) Sorted() []Cell {
	out := slices.Clone(f.Cells)
	slices.SortStableFunc(out, CompareCells)
	return out
}
