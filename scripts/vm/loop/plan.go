// Package loop is the VM test loop, once for every provider: it decides
// which cells a loop runs (PlanKernel), in which order, has a Provider run
// them, retries infrastructure errors, writes the cells' logs, records
// what the loop found and prints its summary (Run). A cell is tested when
// the compile stage built its driver without failure, a scap-open exists to
// run it, and it has not passed before (unless VM_RETEST=all). A cell whose
// driver built but whose scap-open did not is an error, never a silent
// "not run": the loop records it and ends with an error.
package loop

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// NoScapOpen says why the cells of Plan.NoScapOpen were not tested.
const NoScapOpen = "scap-open did not build"

// Cell is one cell to test, with the host files it needs.
type Cell struct {
	results.Cell
	Artifact string // the driver on the host (.ko, .o); for modern_bpf its own scap-open
	ScapOpen string // the scap-open that runs it
	Root     string // scap-open's library closure (<scap-open>.root/), "" when there is none
	// ScapOpenLog is the build log of ScapOpen, relative to the build
	// directory: what a cell names when its scap-open is missing.
	ScapOpenLog string
	// Behaviour is the cell's drivers_test, nil when it has none.
	Behaviour *Behaviour
}

// Ext is the driver artifact's extension, as in build/driver/<compiler>/<uname-r>.<ext>.
func (c Cell) Ext() string { return layout.Ext(c.Driver) }

// Plan is what a loop does with one kernel's cells.
type Plan struct {
	Todo       []Cell // to test
	Kept       int    // passed before, kept
	NoScapOpen []Cell // built, but there is no scap-open to run them
}

// PlanKernel plans the cells of kernel k from the compile stage's records in rf
// and the artifacts on disk.
func PlanKernel(cfg *config.Config, k kernel.Entry, rf *results.File) Plan {
	var p Plan
	type entry struct{ compiler, driver string }
	var axis []entry
	for _, comp := range cfg.Compilers {
		for _, drv := range cfg.Drivers {
			axis = append(axis, entry{comp, drv})
		}
	}
	if cfg.KernelCompiler {
		// The kernel's own-compiler kmod: the compile stage chose its
		// compiler and recorded the choice on the cell.
		for _, rc := range rf.Cells {
			if rc.Kernel == k.UnameR && rc.Driver == layout.Kmod && rc.Compile != nil && rc.Compile.ForKernel != "" &&
				!slices.Contains(axis, entry{rc.Compiler, rc.Driver}) {
				axis = append(axis, entry{rc.Compiler, rc.Driver})
			}
		}
	}
	arch := layout.ArchOf(k.Arch)
	for _, e := range axis {
		comp, drv := e.compiler, e.driver
		c := Cell{Cell: results.Cell{Kernel: k.UnameR, Compiler: comp, Driver: drv, Arch: arch}}
		modern := drv == layout.ModernBPF
		c.Artifact = cfg.Path(layout.Artifact(comp, k.UnameR, drv, arch))
		if modern {
			c.ScapOpen = c.Artifact
			c.ScapOpenLog = layout.CompileLog(comp, k.UnameR, drv, arch)
		} else {
			c.ScapOpen = cfg.Path(layout.ScapOpenFor(arch))
			c.ScapOpenLog = layout.ScapOpenLogFor(arch)
		}
		compiled := false
		if rc := rf.Find(c.Kernel, c.Compiler, c.Driver); rc != nil {
			if rc.Compile != nil && rc.Compile.Status != results.CompileOK {
				continue
			}
			compiled = rc.Compile != nil
			if modern && rc.Compile != nil && rc.Compile.Log != "" {
				c.ScapOpenLog = rc.Compile.Log
			}
			if rc.Compile != nil && rc.Compile.Artifact != "" && drv != layout.ModernBPF {
				c.Artifact = cfg.Path(rc.Compile.Artifact)
			}
			c.Behaviour = behaviourFor(cfg, rf, c.Cell)
			if rc.Test != nil && rc.Test.Status == results.TestPass && keepPass(cfg, rc.Test, c.Behaviour) {
				p.Kept++
				continue
			}
		} else {
			c.Behaviour = behaviourFor(cfg, rf, c.Cell)
		}
		if isDir(c.ScapOpen + ".root") {
			c.Root = c.ScapOpen + ".root"
		}
		switch {
		case !modern && !isFile(c.Artifact):
			// Nothing built to test.
		case !isFile(c.ScapOpen):
			// A modern_bpf driver lives in its scap-open: without a
			// compile record saying it built, there is nothing to test.
			if !modern || compiled {
				p.NoScapOpen = append(p.NoScapOpen, c)
			}
		default:
			p.Todo = append(p.Todo, c)
		}
	}
	return p
}

// Record merges a cell's test outcome into results.json and keeps
// build/driver_ok/<compiler>/<uname-r>.<ext> in step: the artifact is
// copied there on a pass and removed otherwise (modern_bpf has none).
func Record(cfg *config.Config, c Cell, t results.Test) error {
	if p := results.DriverOKPath(c.Cell); p != "" {
		dst := cfg.Path(p)
		if t.Status == results.TestPass {
			if err := CopyFile(c.Artifact, dst); err != nil {
				return fmt.Errorf("%s: keep passing artifact: %w", c.ID(), err)
			}
		} else if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("%s: drop the artifact of an earlier pass: %w", c.ID(), err)
		}
	}
	err := results.Update(cfg.Path(layout.Results), func(f *results.File) error {
		f.SetTest(c.Kernel, c.Compiler, c.Driver, t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", c.ID(), err)
	}
	return nil
}

// RecordNoScapOpen records the cells of Plan.NoScapOpen as errors naming
// their scap-open's build log (and drops their driver_ok artifacts).
func RecordNoScapOpen(cfg *config.Config, cells []Cell, provider string) error {
	for _, c := range cells {
		t := results.NoScapOpen(c.ScapOpenLog, "")
		t.Provider = provider
		if err := Record(cfg, c, t); err != nil {
			return err
		}
	}
	return nil
}

// MissingScapOpen is the error a loop ends with when cells could not be
// tested because their scap-open did not build (nil for none): it names
// the build logs.
func MissingScapOpen(cells []Cell) error {
	if len(cells) == 0 {
		return nil
	}
	var logs []string
	for _, c := range cells {
		if !slices.Contains(logs, c.ScapOpenLog) {
			logs = append(logs, c.ScapOpenLog)
		}
	}
	what := fmt.Sprintf("%d cells", len(cells))
	if len(cells) == 1 {
		what = "1 cell"
	}
	return fmt.Errorf("%s could not be tested: %s (logs %s)", what, NoScapOpen, strings.Join(logs, ", "))
}

// CopyFile copies src to dst atomically, creating dst's directory.
func CopyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return fsx.WriteFile(dst, b, 0o644)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
