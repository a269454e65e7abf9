// Package testplan decides, the same way for every VM provider, which cells
// a test loop runs, and records what the loop found. A cell is tested when
// the compile stage built its driver without failure, a scap-open exists to
// run it, and it has not passed before (unless VM_RETEST=all).
package testplan

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// NoScapOpen is the reason recorded for cells whose driver was built but
// whose scap-open was not.
const NoScapOpen = "scap-open was not built (see logs/compile/scap-open.log)"

// Cell is one cell to test, with the host files it needs.
type Cell struct {
	results.Cell
	Artifact string // the driver on the host (.ko, .o); for modern_bpf its own scap-open
	ScapOpen string // the scap-open that runs it
	Root     string // scap-open's library closure (<scap-open>.root/), "" when there is none
}

// Ext is the driver artifact's extension, as in build/driver/<compiler>/<uname-r>.<ext>.
func (c Cell) Ext() string {
	if c.Driver == results.DriverKmod {
		return ".ko"
	}
	return ".o"
}

// Plan is what a loop does with one kernel's cells.
type Plan struct {
	Todo       []Cell // to test
	Kept       int    // passed before, kept
	NoScapOpen []Cell // built, but there is no scap-open to run them
}

// For plans the cells of kernel k from the compile stage's records in rf
// and the artifacts on disk.
func For(cfg *config.Config, k kernel.Entry, rf *results.File) Plan {
	var p Plan
	for _, comp := range cfg.Compilers {
		for _, drv := range cfg.Drivers {
			c := Cell{Cell: results.Cell{Kernel: k.UnameR, Compiler: comp, Driver: drv}}
			if drv == results.DriverModernBPF {
				c.Artifact = cfg.Path("driver", comp, "modern_bpf", "scap-open")
				c.ScapOpen = c.Artifact
			} else {
				c.Artifact = cfg.Path("driver", comp, k.UnameR+c.Ext())
				c.ScapOpen = cfg.Path("scap-open")
			}
			if rc := rf.Find(c.Kernel, c.Compiler, c.Driver); rc != nil {
				if rc.Compile != nil && rc.Compile.Status != results.CompileOK {
					continue
				}
				if rc.Compile != nil && rc.Compile.Artifact != "" && drv != results.DriverModernBPF {
					c.Artifact = cfg.Path(rc.Compile.Artifact)
				}
				if rc.Test != nil && rc.Test.Status == results.TestPass && !cfg.RetestAll {
					p.Kept++
					continue
				}
			}
			if isDir(c.ScapOpen + ".root") {
				c.Root = c.ScapOpen + ".root"
			}
			switch {
			case !isFile(c.Artifact):
			case !isFile(c.ScapOpen):
				p.NoScapOpen = append(p.NoScapOpen, c)
			default:
				p.Todo = append(p.Todo, c)
			}
		}
	}
	return p
}

// Record merges a cell's test outcome into results.json and keeps
// build/driver_ok/<compiler>/<uname-r>.<ext> in step: the artifact is
// copied there on a pass and removed otherwise (modern_bpf has none).
func Record(cfg *config.Config, c Cell, t results.Test) error {
	if c.Driver != results.DriverModernBPF {
		dst := cfg.Path("driver_ok", c.Compiler, c.Kernel+c.Ext())
		if t.Status == results.TestPass {
			if err := CopyFile(c.Artifact, dst); err != nil {
				return fmt.Errorf("%s: keep passing artifact: %w", c.ID(), err)
			}
		} else if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("%s: drop the artifact of an earlier pass: %w", c.ID(), err)
		}
	}
	err := results.Update(cfg.Path("results.json"), func(f *results.File) error {
		f.SetTest(c.Kernel, c.Compiler, c.Driver, t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", c.ID(), err)
	}
	return nil
}

// RecordNotRun records cells that could not run, with the reason.
func RecordNotRun(cfg *config.Config, cells []Cell, reason, provider string) error {
	if len(cells) == 0 {
		return nil
	}
	return results.Update(cfg.Path("results.json"), func(f *results.File) error {
		for _, c := range cells {
			f.SetTest(c.Kernel, c.Compiler, c.Driver, results.Test{Status: results.TestNotRun, Reason: reason, Provider: provider})
		}
		return nil
	})
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
	return results.WriteFileAtomic(dst, b)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
