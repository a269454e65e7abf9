package loop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Run is the test loop, the same for every provider: it plans the cells of
// the kernels p tests (group "" for all; PlanKernel), in an order seeded
// by VM_SEED (printed), has p run them, retries a cell whose outcome is an
// infrastructure error up to cfg.Retries times, writes each attempt's log,
// records each cell's final outcome in results.json (Record) and prints a
// summary. A cell the VM never reached is run again without costing an
// attempt. It ends with an error when cells could not be tested for want
// of a scap-open, or a lane of VMs broke down.
func Run(ctx context.Context, cfg *config.Config, out *ui.Printer, p Provider, group string) error {
	start := time.Now()
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return err
	}
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		return err
	}
	ks, err := p.Kernels(cfg, out, m, group)
	if err != nil {
		return err
	}
	seed := Seed(cfg)
	Shuffle(ks, seed)
	var jobs []Job
	var noScapOpen []Cell
	kept, ncells := 0, 0
	for _, k := range ks {
		pl := PlanKernel(cfg, k, rf)
		kept += pl.Kept
		noScapOpen = append(noScapOpen, pl.NoScapOpen...)
		if len(pl.Todo) > 0 {
			jobs = append(jobs, Job{Name: k.UnameR, Kernel: k, Cells: pl.Todo})
			ncells += len(pl.Todo)
		}
	}
	out.Linef("test: %d kernels, %d cells, order seed %d (VM_SEED=%d repeats it)", len(ks), ncells, seed, seed)
	if len(noScapOpen) > 0 {
		out.Linef("test: ERROR %d cells cannot be tested: %s", len(noScapOpen), NoScapOpen)
		if err := RecordNoScapOpen(cfg, noScapOpen, p.Name()); err != nil {
			return err
		}
	}
	if kept > 0 {
		out.Linef("test: keeping %d cells that passed before (VM_RETEST=all tests them again)", kept)
	}
	if ncells == 0 {
		out.Linef("test: nothing to test (no compiled drivers for these kernels, or all passed)")
		return MissingScapOpen(noScapOpen)
	}
	s, err := p.Open(ctx, cfg, out, jobs)
	if err != nil {
		return err
	}
	accel := ""
	if s.Accel != "" {
		accel = ", accel " + s.Accel
	}
	out.Linef("test: provider %s%s, %d lanes, %d at a time", p.Name(), accel, len(s.Lanes), max(s.Parallel, 1))
	if err := results.Update(cfg.Path(layout.Results), func(f *results.File) error {
		f.Run.Provider, f.Run.Accel, f.Run.Seed, f.Run.Time = p.Name(), s.Accel, seed, time.Now().UTC()
		return nil
	}); err != nil {
		return err
	}
	_, err = Drive(ctx, cfg, out, p.Name(), s, start)
	return errors.Join(err, MissingScapOpen(noScapOpen))
}

// Drive runs the lanes of s, up to s.Parallel at once, to every cell's
// final outcome (see Run) and prints the summary, counting the loop's time
// from start. provider is recorded with each cell. It returns the final
// outcomes and the errors of lanes that broke down.
func Drive(ctx context.Context, cfg *config.Config, out *ui.Printer, provider string, s *Session, start time.Time) (*Summary, error) {
	ncells := 0
	for _, l := range s.Lanes {
		for _, j := range l.Jobs() {
			ncells += len(j.Cells)
		}
	}
	r := &runner{cfg: cfg, out: out, provider: provider, bar: out.Progress("test", "cells", int64(ncells))}
	var g errgroup.Group
	g.SetLimit(max(s.Parallel, 1))
	laneErrs := make([]error, len(s.Lanes))
	for i, l := range s.Lanes {
		g.Go(func() error {
			laneErrs[i] = r.runLane(ctx, l)
			return nil
		})
	}
	g.Wait()
	r.bar.Done()
	if err := ctx.Err(); err != nil {
		return &r.summary, err
	}
	r.summary.Print(out, time.Since(start))
	return &r.summary, errors.Join(laneErrs...)
}

// runner is one loop's shared state.
type runner struct {
	cfg      *config.Config
	out      *ui.Printer
	provider string
	bar      *ui.Bar
	summary  Summary
}

// runLane runs a lane's jobs, then closes it. An error means the lane
// broke down: its cells that did not run are recorded as errors.
func (r *runner) runLane(ctx context.Context, l Lane) error {
	jobs := l.Jobs()
	var laneErr error
	for i, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		pending, err := r.runJob(ctx, l, j)
		if err != nil && ctx.Err() == nil {
			laneErr = fmt.Errorf("%s: %w", j.Name, err)
			r.out.Linef("test: %v", laneErr)
			for _, c := range pending {
				r.fail(c, err.Error(), 1)
			}
			for _, later := range jobs[i+1:] {
				for _, c := range later.Cells {
					r.fail(c, fmt.Sprintf("not run: the VM that was to run it broke down on %s: %v", j.Kernel.UnameR, err), 1)
				}
			}
			break
		}
	}
	interrupted := ctx.Err() != nil
	cctx := ctx
	if interrupted {
		cctx = context.WithoutCancel(ctx)
	}
	if err := l.Close(cctx, interrupted); err != nil && !interrupted {
		r.out.Linef("test: %v", err)
		laneErr = errors.Join(laneErr, err)
	}
	return laneErr
}

// runJob runs a job's cells to their final outcomes: cells a run did not
// reach go to the next run first, cells to retry after them (a cell that
// keeps ending its VM must not hold the others back). Each attempt is
// logged and printed as the provider reports it. On a lane error it
// returns the cells that have no final outcome.
func (r *runner) runJob(ctx context.Context, l Lane, j Job) ([]Cell, error) {
	attempts := map[string]int{}
	pending := j.Cells
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return pending, err
		}
		byID := map[string]Attempt{}
		logs := map[string]string{}
		runErr := l.Run(ctx, Job{Name: j.Name, Kernel: j.Kernel, Cells: pending}, func(a Attempt) {
			if ctx.Err() != nil {
				return // an interrupted cell is not this run's to report
			}
			a.Outcome = behaviourAsked(a)
			log, _ := r.log(a)
			r.print(a, log)
			byID[a.Cell.ID()], logs[a.Cell.ID()] = a, log
		})
		if ctx.Err() != nil {
			return pending, ctx.Err()
		}
		var next, retry []Cell
		for _, c := range pending {
			a, ran := byID[c.ID()]
			if !ran {
				next = append(next, c)
				continue
			}
			attempts[c.ID()]++
			n := attempts[c.ID()]
			if runErr == nil && a.Outcome.Retry() && !a.Final && n <= r.cfg.Retries {
				r.out.Linef("test: %s: %s (%s), attempt %d of %d, retrying", c.ID(), a.Outcome, a.Outcome.Reason, n, r.cfg.Retries+1)
				retry = append(retry, c)
				continue
			}
			if err := r.final(a, n, logs[c.ID()]); err != nil {
				return append(next, retry...), err
			}
		}
		if runErr != nil {
			return append(next, retry...), runErr
		}
		if len(byID) == 0 {
			// A run must start a cell or say why not: never loop.
			for _, c := range next {
				r.fail(c, "the VM ran none of its cells", attempts[c.ID()]+1)
			}
			next = nil
		}
		pending = append(next, retry...)
	}
	return nil, nil
}

// fail logs, prints and records reason as the final error of cell c,
// which did not run (its n-th attempt).
func (r *runner) fail(c Cell, reason string, n int) error {
	a := Attempt{Cell: c, Outcome: errorOutcome(reason)}
	log, _ := r.log(a)
	r.print(a, log)
	return r.final(a, n, log)
}

// log writes an attempt's log; a log that cannot be written is said, and
// the cell still recorded.
func (r *runner) log(a Attempt) (string, error) {
	log, err := writeCellLog(r.cfg, a)
	if err != nil {
		r.out.Linef("test: %s: log: %v", a.Cell.ID(), err)
	}
	return log, err
}

func (r *runner) print(a Attempt, log string) {
	_, _ = io.WriteString(r.out.Writer(), transcript(a, log))
}

// final records a cell's final attempt (the n-th), whose log is log.
func (r *runner) final(a Attempt, n int, log string) error {
	o := a.Outcome
	t := results.Test{
		Status: o.Status, Kind: o.Kind, Events: max(o.Events, 0), Reason: o.Reason, Log: log,
		Attempts: max(n, 1), Seconds: a.Seconds, Provider: r.provider,
	}
	if a.Record != nil {
		t.Load, t.Capture = a.Record.LoadSeconds, a.Record.Capture
	}
	t.Behaviour = ToResults(o.Behaviour)
	r.bar.Add(1)
	r.summary.Add(Outcome{Cell: a.Cell.Cell, Outcome: o, Log: log, Attempts: t.Attempts, Seconds: t.Seconds, Load: t.Load, Capture: t.Capture})
	return Record(r.cfg, a.Cell, t)
}

// CellLimit is the most one cell may take in a guest: its load limit, the
// retry of a driver not open with twice that, the capture limit, and slack
// (module load, stopping scap-open, what the provider adds).
func CellLimit(cfg *config.Config, slack time.Duration) time.Duration {
	limit := 3*cfg.LoadTime + cfg.TestTime + slack
	if cfg.BehaviourOn() {
		// drivers_test, and the stop of one that hit its limit.
		limit += cfg.BehaviourTime + 15*time.Second
	}
	return limit
}
