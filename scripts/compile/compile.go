// Package compile is the compile stage: it builds every cell of the grid
// (kernel x compiler x driver) in a builder container and records the
// outcome of each in build/results.json.
//
// A kmod cell runs the libs' own build (cmake, then `make driver
// KERNELDIR=... CC=gcc-N`) against the kernel's headers, which the kernel
// stage extracted into a sysroot and which are bind-mounted read-only at the
// absolute paths the header packages expect. A bpf cell does the same with
// `make bpf CLANG=clang-N LLC=llc-N`. modern_bpf needs no headers: it is
// built once per clang (into scap-open) and its outcome recorded on every
// kernel's cell. scap-open, the test stage's userspace, is built once.
//
// Outputs, relative to the build directory:
//
//	driver/<gcc-N>/<uname-r>.ko            kernel module
//	driver/<clang-N>/<uname-r>.o           legacy eBPF probe
//	driver/<clang-N>/modern_bpf/scap-open  scap-open with the CO-RE probe built by clang-N
//	scap-open                              scap-open for --kmod and --bpf
//	<any scap-open>.root/                  its loader and shared libraries at
//	                                       their absolute paths (for the VM's initramfs)
//	logs/compile/<compiler>/<uname-r>.<driver>.log, logs/compile/<clang-N>/modern_bpf.log,
//	logs/compile/scap-open.log
//
// A cell whose inputs (source archive hash, kernel sysroot, image ID,
// compiler, driver, recipe) are unchanged keeps its recorded status and
// starts no container.
package compile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// CellTimeout is the deadline of one container.
const CellTimeout = 30 * time.Minute

// ResultsFile is the results file, relative to the build directory.
const ResultsFile = "results.json"

// Run builds every cell of the grid that is not up to date, VM_JOBS
// containers at a time, and records all cells in build/results.json. A
// compile failure is an answer, not an error: Run returns an error only
// when the stage could not do its work (Docker, missing kernel stage,
// cancelled).
func Run(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	start := time.Now()
	out.Linef("compile: %s", cfg.SourceNote())
	manifest, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return err
	}
	engine, err := container.Connect(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	images, err := engine.Ensure(ctx, cfg, out)
	if err != nil {
		return err
	}
	src, err := sourceArchive(cfg.LibsDir, cfg.BuildDir)
	if err != nil {
		return fmt.Errorf("source archive: %w", err)
	}
	need := map[string]string{}
	for i := range manifest.Kernels {
		k := &manifest.Kernels[i]
		if k.Error != "" || k.Sysroot == "" {
			continue
		}
		// An unreadable sysroot is that kernel's problem: its cells are
		// skipped with the reason, the other kernels build.
		if need[k.UnameR], err = GlibcNeed(k.Sysroot); err != nil {
			k.Error = err.Error()
			out.Linef("compile: kernel %s: %v", k.UnameR, err)
		}
	}
	_, statErr := os.Stat(filepath.Join(cfg.LibsDir, "driver", "bpf"))
	jobs, skips := Plan(Inputs{
		Kernels:    manifest.Kernels,
		GlibcNeed:  need,
		Images:     images,
		Compilers:  cfg.Compilers,
		Drivers:    cfg.Drivers,
		HasBPF:     statErr == nil,
		SourceHash: src.SHA256,
		ScapOpen:   true,
	})

	resultsPath := cfg.Path(ResultsFile)
	prev, err := results.Load(resultsPath)
	if err != nil {
		return err
	}
	var todo, kept []Job
	var keptRecs []results.Compile
	for _, j := range jobs {
		if rec, ok := upToDate(prev, cfg.BuildDir, j); ok {
			if rec != nil {
				kept, keptRecs = append(kept, j), append(keptRecs, *rec)
			}
			continue
		}
		todo = append(todo, j)
	}
	err = results.Update(resultsPath, func(f *results.File) error {
		f.Run.SourceHash, f.Run.Source, f.Run.Time = src.SHA256, cfg.LibsDir, time.Now().UTC()
		for i, j := range kept {
			for _, id := range j.Cells {
				if c := f.Find(id.Kernel, id.Compiler, id.Driver); c == nil || c.Compile == nil || c.Compile.Key != j.Key {
					f.SetCompile(id.Kernel, id.Compiler, id.Driver, keptRecs[i])
				}
			}
		}
		for _, s := range skips {
			f.SetCompile(s.Cell.Kernel, s.Cell.Compiler, s.Cell.Driver, results.Compile{Status: results.CompileSkip, Reason: s.Reason})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n := cellCount(kept); n > 0 {
		out.Linef("compile: %d cells unchanged since the last run, kept their results", n)
	}
	for _, s := range skips {
		// The summary lists every skip; a line is for news only.
		if c := prev.Find(s.Cell.Kernel, s.Cell.Compiler, s.Cell.Driver); c == nil || c.Compile == nil ||
			c.Compile.Status != results.CompileSkip || c.Compile.Reason != s.Reason {
			out.Linef("compile: skip %s: %s", s.Cell, s.Reason)
		}
	}

	if err := os.MkdirAll(cfg.Path(".tmp"), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(cfg.Path(".tmp"), "compile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &runner{engine: engine, buildDir: cfg.BuildDir, tmpDir: tmp, source: src.Path, timeout: CellTimeout}
	infra := runPool(ctx, cfg.Jobs, todo, r, resultsPath, out)

	if ctx.Err() != nil {
		out.Linef("compile: interrupted; containers removed, cells not finished keep their previous records")
	}
	if err := printSummary(out, cfg.BuildDir, resultsPath, jobs, skips); err != nil {
		return err
	}
	out.Linef("compile: done in %s", time.Since(start).Round(100*time.Millisecond))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(infra) > 0 {
		return fmt.Errorf("compile: %d jobs could not run: %w", len(infra), errors.Join(infra...))
	}
	return nil
}

// upToDate reports whether j need not run: an earlier run recorded its
// outcome under j's key and, when it built, its artifact is still there.
// It returns that record (nil for scap-open, which keeps its key beside its
// artifact) for the cells of j that lack it: a modern_bpf build is shared
// by every kernel's cell, so a kernel new to the grid takes the record of
// the build instead of causing it again.
func upToDate(prev *results.File, buildDir string, j Job) (*results.Compile, bool) {
	if j.Driver == DriverScapOpen {
		b, err := os.ReadFile(filepath.Join(buildDir, j.Artifact+".key"))
		_, serr := os.Stat(filepath.Join(buildDir, j.Artifact))
		return nil, err == nil && serr == nil && strings.TrimSpace(string(b)) == j.Key
	}
	for _, id := range j.Cells {
		c := prev.Find(id.Kernel, id.Compiler, id.Driver)
		if c == nil || c.Compile == nil || c.Compile.Key != j.Key {
			continue
		}
		switch c.Compile.Status {
		case results.CompileOK:
			if _, err := os.Stat(filepath.Join(buildDir, j.Artifact)); err != nil {
				return nil, false
			}
			return c.Compile, true
		case results.CompileFail:
			return c.Compile, true
		}
	}
	return nil, false
}

func cellCount(jobs []Job) int {
	n := 0
	for _, j := range jobs {
		n += len(j.Cells)
	}
	return n
}

// runPool runs jobs, at most n at a time, recording each outcome as soon
// as it is known. It returns the jobs that could not run.
func runPool(ctx context.Context, n int, jobs []Job, r *runner, resultsPath string, out *ui.Printer) []error {
	if len(jobs) == 0 {
		return nil
	}
	cells := 0
	for _, j := range jobs {
		cells += max(len(j.Cells), 1)
	}
	bar := out.Progress("compile", "cells", int64(cells))
	defer bar.Done()
	var (
		mu    sync.Mutex
		infra []error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, max(n, 1))
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := r.run(ctx, j)
			if o.infra != nil {
				if ctx.Err() == nil {
					out.Linef("compile: ERROR %s: %v (log %s)", j.Name(), o.infra, filepath.Join(r.buildDir, j.Log))
					mu.Lock()
					infra = append(infra, fmt.Errorf("%s: %w", j.Name(), o.infra))
					mu.Unlock()
				}
				return
			}
			if o.compile.Status != results.CompileOK {
				// An artifact of an earlier source must not pass for this one's.
				os.Remove(filepath.Join(r.buildDir, j.Artifact))
				os.RemoveAll(filepath.Join(r.buildDir, j.Artifact+".root"))
			}
			if err := record(resultsPath, r.buildDir, j, o.compile); err != nil {
				mu.Lock()
				infra = append(infra, err)
				mu.Unlock()
			}
			bar.Add(int64(max(len(j.Cells), 1)))
			line := fmt.Sprintf("compile: %-4s %s (%.0fs)", o.compile.Status, j.Name(), o.compile.Seconds)
			if o.compile.Status != results.CompileOK {
				line += ": " + o.compile.Reason + " (log " + filepath.Join(r.buildDir, j.Log) + ")"
			}
			out.Linef("%s", line)
		}()
	}
	wg.Wait()
	return infra
}

// record writes a job's outcome on each of its cells (scap-open: beside
// its artifact).
func record(resultsPath, buildDir string, j Job, c results.Compile) error {
	if j.Driver == DriverScapOpen {
		if c.Status != results.CompileOK {
			return nil
		}
		return results.WriteFileAtomic(filepath.Join(buildDir, j.Artifact+".key"), []byte(j.Key+"\n"))
	}
	return results.Update(resultsPath, func(f *results.File) error {
		for _, id := range j.Cells {
			f.SetCompile(id.Kernel, id.Compiler, id.Driver, c)
		}
		return nil
	})
}

// printSummary prints the cells of this grid as a table, then the failed
// ones with their logs.
func printSummary(out *ui.Printer, buildDir, resultsPath string, jobs []Job, skips []Skip) error {
	f, err := results.Load(resultsPath)
	if err != nil {
		return err
	}
	var ids []CellID
	for _, j := range jobs {
		ids = append(ids, j.Cells...)
	}
	for _, s := range skips {
		ids = append(ids, s.Cell)
	}
	var cells []results.Cell
	for _, id := range ids {
		if c := f.Find(id.Kernel, id.Compiler, id.Driver); c != nil && c.Compile != nil {
			cells = append(cells, *c)
		}
	}
	slices.SortStableFunc(cells, results.CompareCells)
	count := map[string]int{}
	var failed []results.Cell
	wk, wc := len("KERNEL"), len("COMPILER")
	for _, c := range cells {
		wk, wc = max(wk, len(c.Kernel)), max(wc, len(c.Compiler))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %-*s  %-10s  %-6s  %s\n", wk, "KERNEL", wc, "COMPILER", "DRIVER", "STATUS", "REASON")
	for _, c := range cells {
		count[c.Compile.Status]++
		fmt.Fprintf(&b, "%-*s  %-*s  %-10s  %-6s  %s\n", wk, c.Kernel, wc, c.Compiler, c.Driver, c.Compile.Status, c.Compile.Reason)
		if c.Compile.Status == results.CompileFail {
			failed = append(failed, c)
		}
	}
	out.Linef("compile: %d cells: %d ok, %d fail, %d skip", len(cells), count[results.CompileOK], count[results.CompileFail], count[results.CompileSkip])
	out.Linef("%s", strings.TrimRight(b.String(), "\n"))
	if len(failed) > 0 {
		out.Linef("compile: failed cells:")
		for _, c := range failed {
			out.Linef("  %s: %s", c.ID(), filepath.Join(buildDir, c.Compile.Log))
		}
	}
	return nil
}
