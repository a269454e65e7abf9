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
// With behaviour tests on (VM_BEHAVIOUR), libs' drivers_test is built once
// per clang of a modern_bpf build; its outcome is a build record of
// results.json, not a cell's.
//
// Outputs, relative to the build directory:
//
//	driver/<gcc-N>/<uname-r>.ko            kernel module
//	driver/<clang-N>/<uname-r>.o           legacy eBPF probe
//	driver/<clang-N>/modern_bpf/scap-open  scap-open with the CO-RE probe built by clang-N
//	scap-open                              scap-open for --kmod and --bpf
//	<any scap-open>.root/                  its loader and shared libraries at
//	                                       their absolute paths (for the VM's initramfs)
//	driver/<clang-N>/drivers_test/drivers_test  libs' behaviour suite (with .root/)
//	logs/compile/<compiler>/<uname-r>.<driver>.log, logs/compile/<clang-N>/modern_bpf.log,
//	logs/compile/<clang-N>/drivers_test.log, logs/compile/scap-open.log
//
// A cell whose inputs (source archive hash, kernel sysroot, image ID,
// compiler, driver, recipe) are unchanged keeps its recorded status and
// starts no container.
//
// The recipes come from one description of the libs build interface
// (recipe.go): per build, the CMake settings it wants and its make goals,
// each passed only where the tree declares it, so one description builds
// libs 0.20.0 and today's main offline.
//
// A scap-open that does not build is never silent: the cells it was to run
// get a test error naming its log, and Run returns an error (ErrScapOpen).
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
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"golang.org/x/sync/errgroup"
)

// CellTimeout is the deadline of one container.
const CellTimeout = 30 * time.Minute

// ErrScapOpen is the error Run returns when a scap-open did not build: the
// drivers are compiled and recorded, but the cells it was to run cannot be
// tested. Alone, it lets the later stages run (they test what they can).
var ErrScapOpen = errors.New("scap-open did not build")

// ErrDriversTest is the error Run returns when a drivers_test did not
// build: the cells whose behaviour it was to test get an error from the
// test stage. Like ErrScapOpen, it lets the later stages run.
var ErrDriversTest = errors.New("drivers_test did not build")

// Run builds every cell of the grid that is not up to date, VM_JOBS
// containers at a time, and records all cells in build/results.json. A
// compile failure is an answer, not an error: Run returns an error when
// the stage could not do its work (Docker, missing kernel stage,
// cancelled), and one wrapping ErrScapOpen (only) when a scap-open did not
// build.
func Run(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	out.Linef("compile: %s", cfg.SourceNote())
	tree, err := cfg.LibsTree()
	if err != nil {
		return err
	}
	out.Linef("compile: building %s", tree.Label())
	manifest, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return err
	}
	engine, err := container.Connect(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	if engine.Remote() {
		out.Linef("compile: the engine at %s is not on this host: kernel sysroots are copied into each container, not bind-mounted", engine.Host())
	}
	if n, err := engine.RemoveLeftovers(ctx, container.LabelBuild+"="+cfg.BuildDir); err != nil {
		return err
	} else if n > 0 {
		out.Linef("compile: removed %d containers an earlier run left (stopped when its engine went away, or never started)", n)
	}
	choices, err := kernelChoices(cfg, manifest.Kernels, out)
	if err != nil {
		return err
	}
	compilers := slices.Clone(cfg.Compilers)
	for _, c := range KernelCompilers(choices) {
		if !slices.Contains(compilers, c) {
			compilers = append(compilers, c)
		}
	}
	images, err := engine.EnsureFor(ctx, cfg, compilers, kernelArches(manifest.Kernels), out)
	if err != nil {
		return err
	}
	src, err := sourceArchive(cfg)
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
	jobs, skips := Plan(Inputs{
		Kernels:    manifest.Kernels,
		GlibcNeed:  need,
		Images:     images,
		Compilers:  cfg.Compilers,
		Drivers:    cfg.Drivers,
		Tree:       tree,
		SourceHash: src.SHA256,
		ScapOpen:   true,
		Behaviour:  cfg.BehaviourOn(),

		KernelChoices: choices,
	})

	resultsPath := cfg.Path(layout.Results)
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
		f.Run.SourceHash, f.Run.Source, f.Run.Tree, f.Run.Time = src.SHA256, cfg.LibsDir, tree.Label(), time.Now().UTC()
		f.Run.Grid = gridID(manifest.Kernels, cfg.CompilerAxis(), cfg.Drivers)
		f.Run.Compilers, f.Run.Drivers = cfg.CompilerAxis(), cfg.Drivers
		f.Run.Shard = nil
		if s := manifest.Shard; s != nil {
			f.Run.Shard = &results.Shard{Index: s.Index, Count: s.Count, Grid: results.GridID([]string{manifest.Grid}, cfg.CompilerAxis(), cfg.Drivers)}
			if n := dropOtherKernels(f, manifest.Kernels); n > 0 {
				out.Linef("compile: shard %s: dropped %d cells of kernels outside it from %s", f.Run.Shard, n, layout.Results)
			}
		}
		for _, k := range manifest.Kernels {
			f.SetKernel(results.Kernel{Kernel: CellKernel(k), Name: k.Name, Arch: layout.ArchOf(k.Arch), Facts: k.Facts})
		}
		// A tree without drivers_test is a fact the test stage reads: its
		// cells have no behaviour tests, rather than missing ones.
		f.Builds = slices.DeleteFunc(f.Builds, func(b results.Build) bool { return b.Name == layout.DriversTest && b.Compiler == "" })
		if ok, why := Available(tree, layout.DriversTest); cfg.BehaviourOn() && !ok {
			f.SetBuild(results.Build{Name: layout.DriversTest, Status: results.CompileSkip, Reason: ReasonNotInLibs + ": " + why})
		}
		for i, j := range kept {
			for _, id := range j.Cells {
				if c := f.Find(id.Kernel, id.Compiler, id.Driver); c == nil || c.Compile == nil || c.Compile.Key != j.Key {
					f.SetCompile(id.Kernel, id.Compiler, id.Driver, keptRecs[i])
				}
			}
		}
		restoreKeptBuilds(f, cfg.BuildDir, jobs)
		// How a cell was planned is not part of its key: a record kept
		// from a run that planned it otherwise is brought up to date.
		for _, j := range kept {
			for _, id := range j.Cells {
				if c := f.Find(id.Kernel, id.Compiler, id.Driver); c != nil && c.Compile != nil {
					annotate(c.Compile, j)
				}
			}
		}
		for _, s := range skips {
			f.SetCompile(s.Cell.Kernel, s.Cell.Compiler, s.Cell.Driver, results.Compile{Status: results.CompileSkip, Reason: s.Reason})
			dropDriverOK(cfg.BuildDir, s.Cell)
		}
		f.StampArches()
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
	infra, scapFailed, engineDown := runPool(ctx, cfg.Jobs, todo, r, resultsPath, out)

	if ctx.Err() != nil {
		out.Linef("compile: interrupted; containers removed, cells not finished keep their previous records")
	}
	var unbuilt []error
	if ctx.Err() == nil && engineDown == nil {
		if unbuilt, err = recordNoScapOpen(resultsPath, cfg.BuildDir, jobs, scapFailed, out); err != nil {
			return err
		}
		errs, err := driversTestErrors(resultsPath, cfg.BuildDir, jobs)
		if err != nil {
			return err
		}
		unbuilt = append(unbuilt, errs...)
	}
	if err := printSummary(out, cfg.BuildDir, resultsPath, jobs, skips); err != nil {
		return err
	}
	for _, e := range unbuilt {
		out.Linef("compile: ERROR %v", e)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if engineDown != nil {
		return fmt.Errorf("compile: %w", engineDown)
	}
	if len(infra) > 0 {
		// Stripped of ErrScapOpen: with jobs that could not run, the later
		// stages must not go on as if only scap-open were missing.
		for _, e := range unbuilt {
			infra = append(infra, errors.New(e.Error()))
		}
		return fmt.Errorf("compile: %d jobs could not run: %w", len(infra)-len(unbuilt), errors.Join(infra...))
	}
	if len(unbuilt) > 0 {
		return fmt.Errorf("compile: %w", errors.Join(unbuilt...))
	}
	return nil
}

// kernelChoices picks, with VM_COMPILERS=kernel, the compiler of each
// kernel's own-compiler kmod cell from what the builder images provide,
// and says so in one line per kernel; nil otherwise.
func kernelChoices(cfg *config.Config, kernels []kernel.Entry, out *ui.Printer) (map[string]KernelChoice, error) {
	if !cfg.KernelCompiler || !cfg.Has(layout.Kmod) {
		return nil, nil
	}
	specs, err := container.Specs()
	if err != nil {
		return nil, err
	}
	choices := map[string]KernelChoice{}
	for _, k := range kernels {
		name := CellKernel(k)
		if _, ok := choices[name]; ok {
			continue
		}
		ch := ChooseKernelCompiler(specs, k.Facts)
		choices[name] = ch
		switch {
		case k.Error != "":
		case ch.Chosen == "":
			out.Linef("compile: kernel %s: %s", name, ch.Note)
		case ch.Chosen == ch.Own:
			out.Linef("compile: kernel %s: kmod with its own compiler, %s", name, ch.Own)
		default:
			out.Linef("compile: kernel %s: kmod with %s: %s", name, ch.Chosen, ch.Note)
		}
	}
	return choices, nil
}

// annotate brings a cell's compile record in line with how this run planned
// its job: ForKernel, and a failure's note about the kernel's own compiler.
func annotate(rec *results.Compile, j Job) {
	rec.ForKernel = j.ForKernel
	if rec.Status == results.CompileFail {
		rec.Reason = withNote(rec.Reason, CompilerNote(j.Compiler, j.Own(), j.ForKernel))
	}
}

// dropOtherKernels removes the cells of kernels that are not among
// kernels (named as their cells are) and returns how many it removed. A
// shard's results hold its own cells only: a cell of another shard left
// by an earlier run in this build directory would overlap that shard's
// when the two are merged.
func dropOtherKernels(f *results.File, kernels []kernel.Entry) int {
	mine := map[string]bool{}
	for _, k := range kernels {
		mine[k.UnameR] = true
		if k.UnameR == "" {
			mine[k.Name] = true
		}
	}
	n := len(f.Cells)
	f.Cells = slices.DeleteFunc(f.Cells, func(c results.Cell) bool { return !mine[c.Kernel] })
	f.Kernels = slices.DeleteFunc(f.Kernels, func(k results.Kernel) bool { return !mine[k.Kernel] })
	return n - len(f.Cells)
}

// gridID identifies the planned grid: its kernels named as their cells are
// (uname -r, or the grid name of a kernel that failed before its release
// was known), compilers and drivers.
func gridID(kernels []kernel.Entry, compilers, drivers []string) string {
	var names []string
	for _, k := range kernels {
		names = append(names, CellKernel(k))
	}
	return results.GridID(names, compilers, drivers)
}

// recordNoScapOpen makes the cells a missing scap-open was to run test
// errors naming its log, and drops their driver_ok artifacts. The shared
// scap-open runs every compiled kmod and bpf cell: when it is planned but
// not there with this run's key after the pool (its build failed, or could
// not run), each of those cells is an error. failed holds this run's
// scap-open failures by job name (modern_bpf jobs recorded theirs on their
// cells already). It returns one error per scap-open that did not build
// and that cells need, each wrapping ErrScapOpen.
func recordNoScapOpen(resultsPath, buildDir string, jobs []Job, failed map[string]string, out *ui.Printer) ([]error, error) {
	var errs []error
	for _, j := range jobs {
		why, ok := failed[j.Name()]
		if j.Driver == layout.ModernBPF && ok {
			errs = append(errs, fmt.Errorf("%s: %w (log %s): %s", j.Name(), ErrScapOpen, filepath.Join(buildDir, j.Log), why))
		}
	}
	for _, shared := range jobs {
		if shared.Driver != layout.ScapOpen {
			continue
		}
		missing, err := recordNoSharedScapOpen(resultsPath, buildDir, jobs, shared, failed, out)
		if err != nil {
			return nil, err
		}
		if missing != nil {
			errs = append(errs, missing)
		}
	}
	return errs, nil
}

// recordNoSharedScapOpen is recordNoScapOpen for one shared scap-open (one
// per architecture): the kmod and bpf cells of its architecture.
func recordNoSharedScapOpen(resultsPath, buildDir string, jobs []Job, shared Job, failed map[string]string, out *ui.Printer) (missing, err error) {
	if _, built := upToDate(nil, buildDir, shared); built {
		return nil, nil
	}
	why, ok := failed[shared.Name()]
	if !ok {
		why = "it did not run"
	}
	n := 0
	err = results.Update(resultsPath, func(f *results.File) error {
		for _, j := range jobs {
			if j.Driver != layout.Kmod && j.Driver != layout.BPF || layout.ArchOf(j.Arch) != layout.ArchOf(shared.Arch) {
				continue
			}
			for _, id := range j.Cells {
				c := f.Find(id.Kernel, id.Compiler, id.Driver)
				if c == nil || c.Compile == nil || c.Compile.Status != results.CompileOK {
					continue
				}
				f.SetTest(id.Kernel, id.Compiler, id.Driver, results.NoScapOpen(shared.Log, why))
				dropDriverOK(buildDir, id)
				n++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		// No cell of the grid needs it (none compiled): a fact, not a
		// missing answer.
		out.Linef("compile: %s did not build (log %s): %s; no compiled kmod or bpf cell needs it",
			shared.Name(), filepath.Join(buildDir, shared.Log), why)
		return nil, nil
	}
	cells := "cells cannot"
	if n == 1 {
		cells = "cell cannot"
	}
	return fmt.Errorf("%w (log %s): %s; %d compiled kmod and bpf %s be tested",
		ErrScapOpen, filepath.Join(buildDir, shared.Log), why, n, cells), nil
}

// driversTestErrors returns one error wrapping ErrDriversTest per planned
// drivers_test that is not there with its job's key, with the reason its
// build recorded.
func driversTestErrors(resultsPath, buildDir string, jobs []Job) ([]error, error) {
	f, err := results.Load(resultsPath)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, j := range jobs {
		if j.Driver != layout.DriversTest || keyed(buildDir, j) {
			continue
		}
		why := "it did not run"
		if b := f.FindBuild(layout.DriversTest, j.Compiler, j.Arch); b != nil && b.Key == j.Key && b.Reason != "" {
			why = b.Reason
		}
		errs = append(errs, fmt.Errorf("%s: %w (log %s): %s; the behaviour tests that need it are errors",
			j.Name(), ErrDriversTest, filepath.Join(buildDir, j.Log), why))
	}
	return errs, nil
}

// restoreKeptBuilds gives back its record to a drivers_test of jobs that
// is kept because it is there with its key beside it (such a cell-less
// build is not among the kept cells' jobs), when results.json lost the
// record (removed to start the matrices anew, or written by a run that did
// not plan it): the test stage finds its binary through the record, and
// would call every behaviour test unavailable.
func restoreKeptBuilds(f *results.File, buildDir string, jobs []Job) {
	for _, j := range jobs {
		if j.Driver != layout.DriversTest || !keyed(buildDir, j) {
			continue
		}
		if b := f.FindBuild(layout.DriversTest, j.Compiler, j.Arch); b == nil || b.Key != j.Key || b.Status != results.CompileOK {
			f.SetBuild(results.Build{Name: layout.DriversTest, Compiler: j.Compiler, Arch: buildArch(j.Arch), Status: results.CompileOK,
				Log: j.Log, Artifact: j.Artifact, Key: j.Key})
		}
	}
}

// dropDriverOK removes the driver_ok artifact of a cell, if any: it is the
// artifact of a cell whose latest answer is a pass, and the cell's latest
// answer now is something else.
func dropDriverOK(buildDir string, id CellID) {
	if p := results.DriverOKPath(results.Cell{Kernel: id.Kernel, Compiler: id.Compiler, Driver: id.Driver}); p != "" {
		os.Remove(filepath.Join(buildDir, p))
	}
}

// upToDate reports whether j need not run: an earlier run recorded its
// outcome under j's key and, when it built, its artifact is still there.
// It returns that record (nil for scap-open, which keeps its key beside its
// artifact) for the cells of j that lack it: a modern_bpf build is shared
// by every kernel's cell, so a kernel new to the grid takes the record of
// the build instead of causing it again.
func upToDate(prev *results.File, buildDir string, j Job) (*results.Compile, bool) {
	if j.Driver == layout.ScapOpen {
		return nil, keyed(buildDir, j)
	}
	if j.Driver == layout.DriversTest {
		// A failure is kept like a cell's: the same inputs fail again.
		b := prev.FindBuild(layout.DriversTest, j.Compiler, j.Arch)
		return nil, keyed(buildDir, j) || b != nil && b.Key == j.Key && b.Status == results.CompileFail
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

// keyed reports whether the artifact of a cell-less build (scap-open,
// drivers_test) is there with j's key beside it.
func keyed(buildDir string, j Job) bool {
	b, err := os.ReadFile(filepath.Join(buildDir, j.Artifact+".key"))
	_, serr := os.Stat(filepath.Join(buildDir, j.Artifact))
	return err == nil && serr == nil && strings.TrimSpace(string(b)) == j.Key
}

func cellCount(jobs []Job) int {
	n := 0
	for _, j := range jobs {
		n += len(j.Cells)
	}
	return n
}

// runPool runs jobs, at most n at a time, recording each outcome as soon
// as it is known. It returns the jobs that could not run, the reasons of
// the scap-open builds that failed, by job name, and, when the Docker
// engine stopped answering, that error (wrapping container.ErrEngineDown):
// the jobs in flight then are recorded as errors and no other job starts.
func runPool(ctx context.Context, n int, jobs []Job, r *runner, resultsPath string, out *ui.Printer) ([]error, map[string]string, error) {
	scapFailed := map[string]string{}
	if len(jobs) == 0 {
		return nil, scapFailed, nil
	}
	cells := 0
	for _, j := range jobs {
		cells += max(len(j.Cells), 1)
	}
	bar := out.Progress("compile", "cells", int64(cells))
	defer bar.Done()
	var (
		mu         sync.Mutex
		infra      []error
		engineDown error
		g          errgroup.Group
	)
	down := func() bool { mu.Lock(); defer mu.Unlock(); return engineDown != nil }
	g.SetLimit(max(n, 1))
	for _, j := range jobs {
		if ctx.Err() != nil || down() {
			break
		}
		g.Go(func() error {
			if ctx.Err() != nil || down() {
				return nil // cancelled, or the engine went down, while it waited for a slot
			}
			o := r.run(ctx, j)
			if o.infra != nil {
				if ctx.Err() != nil {
					return nil // interrupted: the cell keeps its previous record
				}
				mu.Lock()
				first := false
				switch {
				case errors.Is(o.infra, container.ErrEngineDown):
					first = engineDown == nil
					if first {
						engineDown = o.infra
					}
				default:
					infra = append(infra, fmt.Errorf("%s: %w", j.Name(), o.infra))
				}
				mu.Unlock()
				switch {
				case first:
					out.Linef("compile: ERROR %v; the cells in flight are recorded as errors, no other cell starts", o.infra)
				case !errors.Is(o.infra, container.ErrEngineDown):
					out.Linef("compile: ERROR %s: %v (log %s)", j.Name(), o.infra, filepath.Join(r.buildDir, j.Log))
				}
				o.compile = results.Compile{Status: results.CompileError, Reason: oneLine(o.infra.Error()), Log: j.Log, Seconds: o.compile.Seconds}
			}
			annotate(&o.compile, j)
			if o.compile.Status != results.CompileOK || o.scapOpen != "" {
				// An artifact of an earlier source must not pass for this one's.
				os.Remove(filepath.Join(r.buildDir, j.Artifact))
				os.RemoveAll(filepath.Join(r.buildDir, j.Artifact+".root"))
			}
			err := record(resultsPath, r.buildDir, j, o)
			mu.Lock()
			if err != nil {
				infra = append(infra, err)
			}
			if o.scapOpen != "" {
				scapFailed[j.Name()] = o.scapOpen
			}
			mu.Unlock()
			bar.Add(int64(max(len(j.Cells), 1)))
			line := fmt.Sprintf("compile: %-4s %s (%.0fs)", o.compile.Status, j.Name(), o.compile.Seconds)
			switch {
			case errors.Is(o.infra, container.ErrEngineDown):
				line = "compile: error " + j.Name() + ": " + container.ErrEngineDown.Error()
			case o.infra != nil:
				return nil // its ERROR line is out
			case o.compile.Status != results.CompileOK:
				line += ": " + o.compile.Reason + " (log " + filepath.Join(r.buildDir, j.Log) + ")"
			case o.scapOpen != "":
				line += ", but its scap-open did not build: " + o.scapOpen + " (log " + filepath.Join(r.buildDir, j.Log) + ")"
			}
			out.Linef("%s", line)
			return nil // recorded in results.json and infra
		})
	}
	g.Wait()
	return infra, scapFailed, engineDown
}

// oneLine is s up to its first line break.
func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// record writes a job's outcome on each of its cells (scap-open: its key
// beside its artifact). A cell whose driver built but whose scap-open did
// not gets a test error; a cell that did not compile loses its driver_ok
// artifact.
func record(resultsPath, buildDir string, j Job, o outcome) error {
	if j.Driver == layout.ScapOpen {
		if o.compile.Status != results.CompileOK {
			return nil // recordNoScapOpen handles the cells it was to run
		}
		return fsx.WriteFile(filepath.Join(buildDir, j.Artifact+".key"), []byte(j.Key+"\n"), 0o644)
	}
	if j.Driver == layout.DriversTest {
		c := o.compile
		err := results.Update(resultsPath, func(f *results.File) error {
			f.SetBuild(results.Build{Name: layout.DriversTest, Compiler: j.Compiler, Arch: buildArch(j.Arch), Status: c.Status, Reason: c.Reason,
				Log: j.Log, Artifact: c.Artifact, Key: c.Key, Seconds: c.Seconds})
			return nil
		})
		if err != nil || c.Status != results.CompileOK {
			os.Remove(filepath.Join(buildDir, j.Artifact+".key"))
			return err
		}
		return fsx.WriteFile(filepath.Join(buildDir, j.Artifact+".key"), []byte(j.Key+"\n"), 0o644)
	}
	return results.Update(resultsPath, func(f *results.File) error {
		for _, id := range j.Cells {
			f.SetCompile(id.Kernel, id.Compiler, id.Driver, o.compile)
			if o.scapOpen != "" {
				f.SetTest(id.Kernel, id.Compiler, id.Driver, results.NoScapOpen(j.Log, o.scapOpen))
			}
			if o.compile.Status != results.CompileOK {
				dropDriverOK(buildDir, id)
			}
		}
		f.StampArches()
		return nil
	})
}

// buildArch is a build record's Arch: empty for amd64, as records were
// before grids had an architecture, so that they stay the same.
func buildArch(arch string) string {
	if layout.ArchOf(arch) == layout.Amd64 {
		return ""
	}
	return arch
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
	errs := ""
	if n := count[results.CompileError]; n > 0 {
		errs = fmt.Sprintf(", %d error", n)
	}
	out.Linef("compile: %d cells: %d ok, %d fail, %d skip%s", len(cells), count[results.CompileOK], count[results.CompileFail], count[results.CompileSkip], errs)
	out.Linef("%s", strings.TrimRight(b.String(), "\n"))
	for _, j := range jobs {
		if j.Driver != layout.DriversTest {
			continue
		}
		if br := f.FindBuild(layout.DriversTest, j.Compiler, j.Arch); br != nil && br.Key == j.Key {
			line := fmt.Sprintf("compile: %s: %s", j.Name(), br.Status)
			if br.Reason != "" {
				line += ": " + br.Reason
			}
			out.Linef("%s (log %s)", line, filepath.Join(buildDir, j.Log))
		}
	}
	if len(failed) > 0 {
		out.Linef("compile: failed cells:")
		for _, c := range failed {
			out.Linef("  %s: %s", c.ID(), filepath.Join(buildDir, c.Compile.Log))
		}
	}
	return nil
}
