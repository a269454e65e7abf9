package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/testplan"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// runner runs the VMs of one loop.
type runner struct {
	cfg   *config.Config
	out   *ui.Printer
	setup *qemuSetup
	// bootTimeout is the part of a VM's deadline that is not per cell:
	// qemu start, kernel boot and unpacking under emulation on a busy host.
	bootTimeout time.Duration
	// cellTimeout is added per cell on top of cfg.TestTime (module load,
	// verifier under emulation).
	cellTimeout time.Duration
	// hang makes every agent hang before reporting (negative control).
	hang bool
	// qemuBinary replaces qemu.DefaultBinary when set.
	qemuBinary string

	mu      sync.Mutex
	summary []cellOutcome
}

// cellOutcome is a cell's final outcome in this loop.
type cellOutcome struct {
	Cell     results.Cell
	Outcome  guest.Outcome
	Attempts int
	Log      string  // relative to the build dir
	Seconds  float64 // wall time of the VM run that decided it
	Capture  float64 // scap-open time in the guest
}

func loopQemu(ctx context.Context, cfg *config.Config, out *ui.Printer, group string) error {
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return err
	}
	setup, err := loadSetup(ctx, cfg, out)
	if err != nil {
		return err
	}
	return newRunner(cfg, out, setup).loop(ctx, m, group)
}

func newRunner(cfg *config.Config, out *ui.Printer, setup *qemuSetup) *runner {
	return &runner{cfg: cfg, out: out, setup: setup, bootTimeout: 120 * time.Second, cellTimeout: 60 * time.Second}
}

func (r *runner) loop(ctx context.Context, m *kernel.Manifest, group string) error {
	cfg, out := r.cfg, r.out
	rf, err := results.Load(cfg.Path("results.json"))
	if err != nil {
		return err
	}
	var ks []kernel.Entry
	for _, k := range m.Kernels {
		if group != "" && k.VM != group {
			continue
		}
		if k.Error != "" || k.Vmlinuz == "" {
			out.Linef("test: %s: skipped, kernel not available: %s", k.UnameR, k.Error)
			continue
		}
		ks = append(ks, k)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano() & (1<<62 - 1)
	}
	shuffleKernels(ks, seed)
	out.Linef("test: %d kernels, order seed %d (VM_SEED=%d repeats it), accel %s, %d parallel VMs", len(ks), seed, seed, r.setup.Accel.Accel, cfg.Jobs)

	var jobs []*vmJob
	var noScapOpen []cell
	kept := 0
	for _, k := range ks {
		p := testplan.For(cfg, k, rf)
		kept += p.Kept
		noScapOpen = append(noScapOpen, p.NoScapOpen...)
		jobs = append(jobs, vmJobs(k, p.Todo)...)
	}
	if len(noScapOpen) > 0 {
		out.Linef("test: %d cells not run: %s", len(noScapOpen), testplan.NoScapOpen)
		if err := testplan.RecordNotRun(cfg, noScapOpen, testplan.NoScapOpen, "qemu"); err != nil {
			return err
		}
	}
	ncells := 0
	for _, j := range jobs {
		ncells += len(j.Cells)
	}
	if kept > 0 {
		out.Linef("test: keeping %d cells that passed before (VM_RETEST=all tests them again)", kept)
	}
	if ncells == 0 {
		out.Linef("test: nothing to test (no compiled drivers for these kernels, or all passed)")
	}
	bar := out.Progress("test", "cells", int64(ncells))
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Jobs)
	for _, j := range jobs {
		g.Go(func() error {
			err := r.runJob(gctx, j, bar)
			if err != nil && ctx.Err() == nil {
				out.Linef("test: %s: %v", j.Name, err)
				return nil // one VM's trouble is recorded in its cells
			}
			return err
		})
	}
	err = g.Wait()
	bar.Done()
	if err := updateRun(cfg, r.setup.Accel.Accel, seed); err != nil && ctx.Err() == nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.printSummary(time.Since(start))
	return err
}

// runJob runs one VM's cells: cells a VM never started (an earlier cell
// panicked the kernel) go to a fresh VM without costing an attempt; cells
// that ended in an infrastructure error are retried up to cfg.Retries times.
func (r *runner) runJob(ctx context.Context, j *vmJob, bar *ui.Bar) error {
	attempts := map[string]int{}
	pending := j.Cells
	for run := 1; len(pending) > 0; run++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := j.Name
		if run > 1 {
			name = fmt.Sprintf("%s-%d", j.Name, run)
		}
		outcomes, err := r.runVM(ctx, &vmJob{Name: name, Kernel: j.Kernel, Cells: pending})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// The VM could not even be prepared: no attempt will do better.
			for _, c := range pending {
				o := cellOutcome{Cell: c.Cell, Attempts: attempts[c.ID()] + 1,
					Outcome: guest.Outcome{Status: guest.Error, Events: -1, Reason: err.Error()}}
				r.out.Linef("--- %s: ERROR: %v", c.ID(), err)
				if rerr := r.record(c, o); rerr != nil {
					return rerr
				}
				bar.Add(1)
			}
			return nil
		}
		// Cells the VM never reached go first, retries last: a cell that
		// hangs its VM until the deadline must not hold the others back.
		var next, retry []cell
		for _, c := range pending {
			o, ran := outcomes[c.ID()]
			if !ran {
				next = append(next, c)
				continue
			}
			attempts[c.ID()]++
			o.Attempts = attempts[c.ID()]
			if o.Outcome.Retry() && o.Attempts <= r.cfg.Retries {
				r.out.Linef("test: %s: %s (%s), attempt %d of %d, retrying", c.ID(), o.Outcome, o.Outcome.Reason, o.Attempts, r.cfg.Retries+1)
				retry = append(retry, c)
				continue
			}
			if err := r.record(c, o); err != nil {
				return err
			}
			bar.Add(1)
		}
		pending = append(next, retry...)
	}
	return nil
}

// runVM boots one VM for job and returns the outcome of every cell it
// started (cells it never started are absent). A VM that never reached the
// agent yields an error outcome for every cell.
func (r *runner) runVM(ctx context.Context, j *vmJob) (map[string]cellOutcome, error) {
	cfg := r.cfg
	logDir := cfg.Path("logs", "test", j.Kernel.UnameR)
	workDir := cfg.Path("vm", "run", j.Name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(workDir)
	plan, add, err := guestPlan(cfg, j)
	if err != nil {
		return nil, err
	}
	plan.Hang = r.hang
	initrd := filepath.Join(workDir, "initrd.cpio")
	if err := writeInitramfs(initrd, r.setup.Agent, plan, add); err != nil {
		return nil, fmt.Errorf("%s: %w", j.Name, err)
	}
	qc := qemu.Config{
		Binary: r.qemuBinary, Name: j.Name, Accel: r.setup.Accel.Accel, Kernel: j.Kernel.Vmlinuz, Initrd: initrd,
		Console: filepath.Join(logDir, j.Name+".console.log"),
		Report:  filepath.Join(workDir, "report.jsonl"),
	}
	if cfg.QemuPrint {
		r.out.Linef("qemu: %s", qemu.CommandLine(qc))
	}
	deadline := r.bootTimeout + time.Duration(len(j.Cells))*(cfg.TestTime+r.cellTimeout)
	res, vmErr := qemu.Run(ctx, qc, deadline)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep, err := readReportFile(qc.Report)
	if err != nil {
		return nil, err
	}
	if rep.Garbage > 0 {
		// Keep the raw channel next to the console when something was off.
		_ = testplan.CopyFile(qc.Report, filepath.Join(logDir, j.Name+".report.jsonl"))
	}
	consoleB, _ := os.ReadFile(qc.Console)
	console := string(consoleB)
	consoleRel, _ := filepath.Rel(cfg.BuildDir, qc.Console)

	outcomes := map[string]cellOutcome{}
	started := map[string]bool{}
	for _, id := range rep.Started {
		started[id] = true
	}
	anyStarted := false
	for _, c := range j.Cells {
		anyStarted = anyStarted || started[c.ID()]
	}
	for _, c := range j.Cells {
		rec := rep.Results[c.ID()]
		if anyStarted && rec == nil && !started[c.ID()] {
			// Never started because an earlier cell ended the VM: the
			// caller gives it a fresh VM. When no cell started at all,
			// every cell is classified (an attempt each), so a VM that
			// keeps dying before its first cell cannot loop forever.
			continue
		}
		o := guest.Classify(rec, started[c.ID()], console, vmErr, cfg.MinEvents)
		if rep.Hello == nil && vmErr == nil {
			o.Reason = "VM ended before the agent reported: " + o.Reason
		}
		co := cellOutcome{Cell: c.Cell, Outcome: o, Seconds: res.Seconds}
		if rec != nil {
			co.Capture = rec.Capture
		}
		logPath := filepath.Join(logDir, logName(c.Cell)+".log")
		if err := writeCellLog(logPath, c, rec, o, consoleRel, res, vmErr); err != nil {
			return nil, err
		}
		co.Log, _ = filepath.Rel(cfg.BuildDir, logPath)
		r.printCell(c, rec, o, co.Log)
		outcomes[c.ID()] = co
	}
	return outcomes, nil
}

// printCell prints scap-open's output and the outcome, in one write so
// parallel VMs do not interleave.
func (r *runner) printCell(c cell, rec *guest.Record, o guest.Outcome, log string) {
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s\n", c.ID())
	if rec != nil && rec.Output != "" {
		b.WriteString(strings.TrimRight(rec.Output, "\n") + "\n")
	}
	for _, l := range o.Detail {
		if rec == nil || !strings.Contains(rec.Output, l) {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	fmt.Fprintf(&b, "--- %s: %s: %s (log %s)\n", c.ID(), strings.ToUpper(o.String()), o.Reason, log)
	_, _ = io.WriteString(r.out.Writer(), b.String())
}

func writeCellLog(path string, c cell, rec *guest.Record, o guest.Outcome, console string, res qemu.Result, vmErr error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cell:     %s\nartifact: %s\noutcome:  %s\nreason:   %s\nvm:       %.1fs, qemu exit %d", c.ID(), c.Artifact, o, o.Reason, res.Seconds, res.ExitCode)
	if vmErr != nil {
		fmt.Fprintf(&b, ", %v", vmErr)
	}
	fmt.Fprintf(&b, "\nconsole:  %s\n", console)
	if rec != nil {
		fmt.Fprintf(&b, "guest:    cell %.1fs, scap-open %.1fs, exit %d, events %d, timed out %v\n", rec.Seconds, rec.Capture, rec.Exit, rec.Events, rec.TimedOut)
		if rec.Load != "" {
			fmt.Fprintf(&b, "load:     %s\n", rec.Load)
		}
		if rec.Output != "" {
			fmt.Fprintf(&b, "\n--- scap-open output\n%s\n", strings.TrimRight(rec.Output, "\n"))
		}
		if len(rec.Kmsg) > 0 {
			fmt.Fprintf(&b, "\n--- kernel log during the cell\n%s\n", strings.Join(rec.Kmsg, "\n"))
		}
	}
	if len(o.Detail) > 0 {
		fmt.Fprintf(&b, "\n--- evidence\n%s\n", strings.Join(o.Detail, "\n"))
	}
	return results.WriteFileAtomic(path, []byte(b.String()))
}

// record merges a cell's final outcome into results.json and, on a pass,
// copies the artifact to build/driver_ok/<compiler>/<uname-r>.<ext>; any
// other outcome removes what an earlier pass left there, so driver_ok only
// ever holds artifacts that passed as they are now.
func (r *runner) record(c cell, o cellOutcome) error {
	t := results.Test{
		Status: o.Outcome.Status, Kind: o.Outcome.Kind, Events: max(o.Outcome.Events, 0),
		Reason: o.Outcome.Reason, Log: o.Log, Attempts: o.Attempts, Seconds: o.Seconds, Capture: o.Capture, Provider: "qemu",
	}
	if err := testplan.Record(r.cfg, c, t); err != nil {
		return err
	}
	r.mu.Lock()
	r.summary = append(r.summary, o)
	r.mu.Unlock()
	return nil
}

func updateRun(cfg *config.Config, accel string, seed int64) error {
	return results.Update(cfg.Path("results.json"), func(f *results.File) error {
		f.Run.Provider, f.Run.Accel, f.Run.Seed, f.Run.Time = "qemu", accel, seed, time.Now().UTC()
		return nil
	})
}

func (r *runner) printSummary(wall time.Duration) {
	counts := map[string]int{}
	var bad []cellOutcome
	for _, o := range r.summary {
		counts[o.Outcome.String()]++
		if o.Outcome.Status != guest.Pass {
			bad = append(bad, o)
		}
	}
	var parts []string
	for _, k := range []string{"pass", "fail/load", "fail/events", "fail/panic", "skip", "error"} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	r.out.Linef("test: %d cells in %s: %s", len(r.summary), wall.Round(time.Second), strings.Join(parts, ", "))
	for _, o := range bad {
		r.out.Linef("  %s %s: %s (log %s)", o.Outcome, o.Cell.ID(), o.Outcome.Reason, o.Log)
	}
}
