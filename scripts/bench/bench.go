// Package bench measures the pipeline against its limits in one run: cold
// and warm compile grids, the boot floor against a test cell, the VM loop
// at one and at N jobs, and peak memory. Every figure is a ratio or a time
// measured in the same run, so noisy shared machines still compare.
//
// The bench works in build/bench/ and never touches the main build's
// results: build/bench/kernels holds the kernel stage of the bench grid
// (its package cache hard-linked from the main build directory, so nothing
// is downloaded twice), build/bench/compile-j<N> one cold compile each,
// and the VM loops run on the compile-j<CPUs> artifacts. The report goes
// to build/bench.json.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/qemuvm"
)

// DefaultGrid is the bench's kernel grid when VM_KERNELS is not set,
// relative to the project root: the CI grid's two amd64 Debian kernels of
// two suites and bookworm's arm64 kernel, emulated, for comparison.
const DefaultGrid = "testdata/grids/bench.txt"

// BootRuns is the number of bare boots per kernel the floor is the median
// of.
const BootRuns = 5

// Goals, as the issue sets them.
var (
	GoalColdRatio = Goal{Limit: 0.6, Unit: Ratio}               // jobs=N / jobs=1, on 2 CPUs
	GoalWarm      = Goal{Limit: 2, Strict: true, Unit: Percent} // warm / cold
	GoalCellFloor = Goal{Limit: 1.5, Unit: Ratio}               // cell cost / boot floor
)

// Run measures the pipeline on the bench grid with the stand-in driver
// tree, prints the table and writes build/bench.json. A measurement that
// fails is recorded with its error and the bench goes on; Run then returns
// the errors after writing the report.
func Run(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	b := newBench(cfg, out)
	load0 := loadAverage()
	out.Linef("bench: grid %s, %d CPUs, stand-in driver tree %s, work dir %s", b.base.KernelsFile, b.cpus, b.base.LibsDir, b.dir)
	if err := b.kernels(ctx); err != nil {
		return err
	}
	b.compileCold(ctx)
	b.compileWarm(ctx)
	b.bootFloor(ctx)
	b.loop(ctx)
	b.memory()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range b.rep.Figures {
		b.rep.Figures[i].CPUs, b.rep.Figures[i].Accel = b.cpus, b.rep.Accel
	}
	b.rep.Note = noteFor(b.rep.Accel)
	if l1 := loadAverage(); !math.IsNaN(load0) && !math.IsNaN(l1) {
		b.rep.Load = []float64{load0, l1}
	}
	b.rep.Sort()
	out.Linef("%s", b.rep.Table())
	path := cfg.Path(ReportFile)
	if err := b.rep.Write(path); err != nil {
		return err
	}
	out.Linef("bench: wrote %s", path)
	if err := b.rep.Check(); err != nil {
		b.errs = append(b.errs, err)
	}
	return errors.Join(b.errs...)
}

// noteFor says what the figures are worth.
func noteFor(accel string) string {
	n := "one run on this machine: other work running at the same time makes absolute times noisy; the ratios compare measurements of the same run"
	if accel == "tcg" {
		n += "; VMs run under TCG emulation (no KVM), so boots and loads are several times slower than on KVM"
	}
	return n
}

type bench struct {
	cfg  *config.Config // as given
	base config.Config  // bench grid, stand-in tree, qemu
	out  *ui.Printer
	dir  string // build/bench
	cpus int
	seed int64

	manifest *kernel.Manifest
	floors   map[string]float64 // uname -r -> median bare boot
	// qemuPeak is the largest VmHWM (KiB) of a test VM of the loops.
	qemuPeak, barePeak int64
	loopDir            string
	rep                *Report
	errs               []error
}

func newBench(cfg *config.Config, out *ui.Printer) *bench {
	base := *cfg
	if !cfg.KernelsSet {
		base.KernelsFile = filepath.Join(cfg.Root, DefaultGrid)
	}
	base.LibsDir, base.StandIn = filepath.Join(cfg.Root, config.StandInDir), true
	base.Provider = "qemu"
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano() & (1<<62 - 1)
	}
	b := &bench{
		cfg: cfg, base: base, out: out, dir: cfg.Path("bench"), cpus: runtime.NumCPU(), seed: seed,
		floors: map[string]float64{},
	}
	b.rep = &Report{
		Schema: SchemaVersion, Time: time.Now().UTC(), CPUs: b.cpus, Grid: base.KernelsFile,
		Compilers: base.Compilers, Drivers: base.Drivers, Source: base.LibsDir,
	}
	return b
}

// jobCounts are the pool sizes compared: 1 and the CPU count.
func (b *bench) jobCounts() []int {
	if b.cpus > 1 {
		return []int{1, b.cpus}
	}
	return []int{1}
}

// add records a figure; err (if any) is kept for Run's result too.
func (b *bench) add(f Figure, err error) *Figure {
	if f.Runs == 0 {
		f.Runs = 1
	}
	if err != nil {
		f.Error = err.Error()
		f.Value = math.NaN()
		b.errs = append(b.errs, fmt.Errorf("%s %s: %w", f.Group, f.Name, err))
	}
	b.rep.Figures = append(b.rep.Figures, f)
	return &b.rep.Figures[len(b.rep.Figures)-1]
}

// kernels runs the kernel stage of the bench grid in build/bench/kernels,
// its package cache seeded from the main build directory, and decides the
// accelerator there (vm.Init).
func (b *bench) kernels(ctx context.Context) error {
	kc := b.base
	kc.BuildDir = filepath.Join(b.dir, "kernels")
	n, err := linkTree(b.cfg.BuildDir, kc.BuildDir, "headers", "kernels", "apt")
	if err != nil {
		return fmt.Errorf("bench: seed the package cache: %w", err)
	}
	if n > 0 {
		b.out.Linef("bench: %d cached files hard-linked from %s", n, b.cfg.BuildDir)
	}
	fetchErr := kernel.Fetch(ctx, &kc, b.out)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m, err := kernel.LoadManifest(kc.BuildDir)
	if err != nil {
		return errors.Join(fetchErr, err)
	}
	if fetchErr != nil {
		b.errs = append(b.errs, fetchErr) // the kernels that did come are measured
	}
	b.manifest = m
	for _, k := range m.Kernels {
		if k.Error == "" {
			b.rep.Kernels = append(b.rep.Kernels, k.UnameR)
		}
	}
	if len(b.rep.Kernels) == 0 {
		return fmt.Errorf("bench: no kernel of %s could be fetched: %w", kc.KernelsFile, fetchErr)
	}
	if err := vm.Init(ctx, &kc, b.out); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// stageDir makes an empty build directory under build/bench with the
// bench grid's kernel manifest, so the compile stage starts cold.
func (b *bench) stageDir(name string) (string, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	m, err := os.ReadFile(filepath.Join(b.dir, "kernels", layout.Manifest))
	if err != nil {
		return "", err
	}
	return dir, fsx.WriteFile(filepath.Join(dir, layout.Manifest), m, 0o644)
}

func (b *bench) compileIn(ctx context.Context, dir string, jobs int) (float64, error) {
	cc := b.base
	cc.BuildDir, cc.Jobs = dir, jobs
	start := time.Now()
	err := compile.Run(ctx, &cc, b.out)
	return time.Since(start).Seconds(), err
}

// compileCold builds the grid from an empty build directory once per job
// count.
func (b *bench) compileCold(ctx context.Context) {
	cold := map[int]float64{}
	for _, n := range b.jobCounts() {
		if ctx.Err() != nil {
			return
		}
		name := fmt.Sprintf("compile-j%d", n)
		b.out.Linef("bench: compile cold, jobs=%d, in %s", n, filepath.Join(b.dir, name))
		dir, err := b.stageDir(name)
		secs := math.NaN()
		if err == nil {
			secs, err = b.compileIn(ctx, dir, n)
			b.loopDir = dir
		}
		cold[n] = secs
		b.add(Figure{Group: GroupCompileCold, Name: fmt.Sprintf("compile cold, jobs=%d", n), Value: secs, Unit: Seconds}, err)
	}
	f := b.add(Figure{Group: GroupCompileCold, Name: fmt.Sprintf("cold jobs=%d / jobs=1", b.cpus), Unit: Ratio,
		Value: Fraction(cold[b.cpus], cold[1])}, nil)
	f.Judge(GoalColdRatio)
	if b.cpus < 2 {
		f.Met = nil
		f.Note = "one CPU: nothing to run in parallel, the goal does not apply"
	}
}

// compileWarm builds the same grid again in the jobs=N directory, where
// nothing changed.
func (b *bench) compileWarm(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	cold := math.NaN()
	for _, f := range b.rep.Figures {
		if f.Name == fmt.Sprintf("compile cold, jobs=%d", b.cpus) {
			cold = f.Value
		}
	}
	b.out.Linef("bench: compile warm, jobs=%d, in %s", b.cpus, b.loopDir)
	secs, err := math.NaN(), error(nil)
	if b.loopDir == "" {
		err = errors.New("no cold compile to repeat")
	} else {
		secs, err = b.compileIn(ctx, b.loopDir, b.cpus)
	}
	b.add(Figure{Group: GroupCompileWarm, Name: fmt.Sprintf("compile warm, jobs=%d", b.cpus), Value: secs, Unit: Seconds}, err)
	f := b.add(Figure{Group: GroupCompileWarm, Name: "warm / cold", Unit: Percent, Value: Fraction(secs, cold) * 100}, nil)
	f.Judge(GoalWarm)
}

// bootFloor boots each kernel BootRuns times to an agent that powers off
// at once and keeps the median.
func (b *bench) bootFloor(ctx context.Context) {
	kc := b.base
	kc.BuildDir = filepath.Join(b.dir, "kernels")
	w := watchQemu(200 * time.Millisecond)
	defer func() { b.barePeak, _ = w.Stop() }()
	defer os.RemoveAll(filepath.Join(b.dir, "boot"))
	for _, k := range b.manifest.Kernels {
		if k.Error != "" || k.Vmlinuz == "" {
			continue
		}
		var runs []float64
		var err error
		for i := 0; i < BootRuns && ctx.Err() == nil; i++ {
			dir := filepath.Join(b.dir, "boot", fmt.Sprintf("%s-%d", k.UnameR, i))
			var secs float64
			var acc string
			secs, acc, err = qemuvm.BareBoot(ctx, &kc, b.out, k, dir)
			os.RemoveAll(dir)
			if err != nil {
				break
			}
			b.rep.Accel = acc
			runs = append(runs, secs)
		}
		if ctx.Err() != nil {
			return
		}
		med := Median(runs)
		b.floors[k.UnameR] = med
		b.out.Linef("bench: boot floor %s: median %.1fs of %v", k.UnameR, med, runs)
		b.add(Figure{Group: GroupBoot, Name: "boot floor " + k.UnameR, Value: med, Unit: Seconds, Runs: len(runs)}, err)
	}
}

// loop runs the whole VM loop on the jobs=N compile's artifacts, once per
// job count, retesting every cell; the jobs=1 run gives each cell's cost.
func (b *bench) loop(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	lc := b.base
	lc.BuildDir, lc.RetestAll, lc.Seed = b.loopDir, true, b.seed
	if b.rep.Accel != "" {
		lc.Accel = b.rep.Accel // decided once, in the kernels dir
	}
	var prepErr error
	if b.loopDir == "" {
		prepErr = errors.New("no compiled grid to test")
	} else {
		prepErr = vm.Init(ctx, &lc, b.out) // the agent; not part of the timing
	}
	wall := map[int]float64{}
	for _, n := range b.jobCounts() {
		if ctx.Err() != nil {
			return
		}
		name := fmt.Sprintf("loop, jobs=%d", n)
		if prepErr != nil {
			b.add(Figure{Group: GroupLoop, Name: name, Unit: Seconds}, prepErr)
			continue
		}
		lc.Jobs = n
		b.out.Linef("bench: VM loop, jobs=%d, in %s", n, lc.BuildDir)
		w := watchQemu(200 * time.Millisecond)
		start := time.Now()
		err := vm.Loop(ctx, &lc, b.out, "")
		secs := time.Since(start).Seconds()
		peak, _ := w.Stop()
		b.qemuPeak = max(b.qemuPeak, peak)
		if ctx.Err() != nil {
			return
		}
		rf, lerr := results.Load(lc.Path(layout.Results))
		if lerr != nil {
			err = errors.Join(err, lerr)
			rf = &results.File{}
		}
		tested := testedCells(rf.Cells)
		wall[n] = secs
		b.add(Figure{Group: GroupLoop, Name: name, Value: secs, Unit: Seconds, Note: fmt.Sprintf("%d cells", len(tested))}, err)
		b.add(Figure{Group: GroupLoop, Name: fmt.Sprintf("per cell, jobs=%d", n), Value: Fraction(secs, float64(len(tested))), Unit: Seconds}, nil)
		if n == 1 {
			b.cellCost(tested)
		}
	}
	if len(wall) == 2 {
		b.add(Figure{Group: GroupLoop, Name: fmt.Sprintf("loop jobs=%d / jobs=1", b.cpus), Value: Fraction(wall[b.cpus], wall[1]), Unit: Ratio}, nil)
	}
}

// cellCost compares, per kernel, what a test VM costs besides capturing
// events with the bare boot floor.
func (b *bench) cellCost(tested []results.Cell) {
	costs := VMCosts(tested)
	for _, k := range b.rep.Kernels {
		c, ok := costs[k]
		if !ok {
			b.add(Figure{Group: GroupBoot, Name: "cell cost / floor " + k, Unit: Ratio, Value: math.NaN(), Note: "no cell of this kernel reached scap-open"}, nil)
			continue
		}
		b.add(Figure{Group: GroupBoot, Name: "cell wall - capture " + k, Value: Median(c), Unit: Seconds, Runs: len(c),
			Note: "median over the kernel's test VMs of the jobs=1 loop"}, nil)
		f := b.add(Figure{Group: GroupBoot, Name: "cell cost / floor " + k, Unit: Ratio, Value: Fraction(Median(c), b.floors[k]), Runs: len(c)}, nil)
		f.Judge(GoalCellFloor)
	}
}

// memory records the peak resident sets.
func (b *bench) memory() {
	self, err := selfPeakRSS()
	b.add(Figure{Group: GroupMemory, Name: "peak RSS, mage process", Value: float64(self) / 1024, Unit: MiB,
		Note: "getrusage RUSAGE_SELF of the process running the targets"}, err)
	var qerr error
	if b.qemuPeak == 0 {
		qerr = errors.New("no test VM was seen running")
	}
	b.add(Figure{Group: GroupMemory, Name: "peak RSS, one test VM (qemu)", Value: float64(b.qemuPeak) / 1024, Unit: MiB,
		Note: "largest VmHWM of the loops' qemu processes, sampled while they ran"}, qerr)
	if b.barePeak > 0 {
		b.add(Figure{Group: GroupMemory, Name: "peak RSS, bare boot VM (qemu)", Value: float64(b.barePeak) / 1024, Unit: MiB}, nil)
	}
}

// testedCells are the cells the loop ran scap-open for.
func testedCells(cells []results.Cell) []results.Cell {
	var out []results.Cell
	for _, c := range cells {
		if c.Test != nil && c.Test.Provider == "qemu" && c.Test.Status != results.TestNotRun {
			out = append(out, c)
		}
	}
	return out
}

// VMCosts groups tested cells into the VMs that ran them (one per kmod
// cell; one per kernel for its eBPF cells) and returns, per kernel, each
// VM's wall time minus the time scap-open ran in it (opening its driver
// and capturing). VMs in which no cell reached scap-open are left out.
func VMCosts(cells []results.Cell) map[string][]float64 {
	type vmKey struct{ kernel, name string }
	wall := map[vmKey]float64{}
	capture := map[vmKey]float64{}
	var order []vmKey
	for _, c := range cells {
		if c.Test == nil || c.Test.Load+c.Test.Capture <= 0 {
			continue
		}
		k := vmKey{c.Kernel, "ebpf"}
		if c.Driver == layout.Kmod {
			k.name = c.Compiler + "-kmod"
		}
		if _, seen := wall[k]; !seen {
			order = append(order, k)
		}
		wall[k] = max(wall[k], c.Test.Seconds)
		capture[k] += c.Test.Load + c.Test.Capture
	}
	out := map[string][]float64{}
	for _, k := range order {
		out[k.kernel] = append(out[k.kernel], wall[k]-capture[k])
	}
	return out
}
