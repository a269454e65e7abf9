package vagrant

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/archive"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
	"github.com/falcosecurity/libs/test/vm/scripts/testplan"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// providerName resolves "auto" the way the VM stage does when it hands a
// run to this package: Vagrant with VirtualBox.
func providerName(cfg *config.Config) string {
	if cfg.Provider == "libvirt" {
		return "libvirt"
	}
	return "virtualbox"
}

// outcome is a classified cell ready to be recorded.
type outcome struct {
	cell    cell
	o       guest.Outcome
	log     string // relative to the build dir
	seconds float64
}

// looper runs the loop of one group's VM.
type looper struct {
	cfg      *config.Config
	out      *ui.Printer
	cli      *CLI
	provider string
	group    string
	g        *machine
	files    *guestFiles // where the group's files are in the guest
	summary  []outcome
}

// Loop tests the compiled drivers on the kernels of group ("" for every
// group with a Vagrant machine), in the VM Init prepared: kernels in a
// shuffled order (seed cfg.Seed, printed; 0 picks one), each made the grub
// default, rebooted into and verified with `uname -r`; then its cells, kmod
// first with a reboot after each. A kernel that does not come up is an
// error for its cells, and the loop goes on with the next kernel.
func Loop(ctx context.Context, cfg *config.Config, out *ui.Printer, group string) error {
	start := time.Now()
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return fmt.Errorf("loop: %w", err)
	}
	if group != "" && machines[group] == nil {
		return fmt.Errorf("loop: no Vagrant machine for VM group %q (machines: %s)", group, strings.Join(Groups(), ", "))
	}
	provider := providerName(cfg)
	cli, err := NewCLI(cfg.Root, stateDir(cfg), provider, out.Writer())
	if err != nil {
		return err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano() & (1<<31 - 1)
	}
	out.Linef("loop: kernel order seed %d (repeat it with VM_SEED=%d)", seed, seed)
	if err := results.Update(cfg.Path("results.json"), func(f *results.File) error {
		f.Run.Provider, f.Run.Seed, f.Run.Accel, f.Run.Time = provider, seed, "", time.Now().UTC()
		return nil
	}); err != nil {
		return err
	}
	var errs []error
	var summary []outcome
	groups := groupsOf(m, group)
	if len(groups) == 0 {
		want := group
		if want == "" {
			want = strings.Join(Groups(), ", ")
		}
		out.Linef("loop: no kernel of the grid is in a Vagrant group (%s); nothing to test", want)
	}
	for _, grp := range groups {
		l := &looper{cfg: cfg, out: out, cli: cli, provider: provider, group: grp}
		err := l.run(ctx, m, seed)
		summary = append(summary, l.summary...)
		if err != nil {
			if ctx.Err() != nil {
				// Interrupted: stop the VM (it stays defined, with its
				// kernels, for the next loop) rather than leave it running.
				hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
				out.Linef("loop %s: interrupted, halting the VM", grp)
				cli.Halt(hctx, grp, true)
				cancel()
				return err
			}
			out.Linef("loop %s: %v", grp, err)
			errs = append(errs, fmt.Errorf("%s: %w", grp, err))
		}
	}
	printSummary(out, summary, time.Since(start))
	return errors.Join(errs...)
}

func (l *looper) run(ctx context.Context, m *kernel.Manifest, seed int64) (err error) {
	cfg := l.cfg
	st, err := readState(cfg, l.group)
	if err != nil {
		return err
	}
	rf, err := results.Load(cfg.Path("results.json"))
	if err != nil {
		return err
	}
	type work struct {
		k     kernel.Entry
		cells []cell
	}
	var todo []work
	var all []cell
	for _, e := range m.Kernels {
		if e.VM != l.group || e.Error != "" {
			continue
		}
		p := testplan.For(cfg, e, rf)
		cells := p.Todo
		if p.Kept > 0 {
			l.out.Linef("loop %s: %s: %d cells passed before, kept (VM_RETEST=all tests them again)", l.group, e.UnameR, p.Kept)
		}
		if len(p.NoScapOpen) > 0 {
			l.out.Linef("loop %s: %s: %d cells not run: %s", l.group, e.UnameR, len(p.NoScapOpen), testplan.NoScapOpen)
			if err := testplan.RecordNotRun(cfg, p.NoScapOpen, testplan.NoScapOpen, l.provider); err != nil {
				return err
			}
		}
		if len(cells) == 0 {
			continue
		}
		todo = append(todo, work{e, orderCells(cells)})
		all = append(all, cells...)
	}
	if len(todo) == 0 {
		l.out.Linef("loop %s: nothing to test", l.group)
		return nil
	}
	r := rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>32|1))
	r.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })

	if err := l.cli.Up(ctx, l.group); err != nil {
		return err
	}
	l.g, err = connect(ctx, l.cli, l.group, machines[l.group])
	if err != nil {
		return err
	}
	defer l.g.ssh.Close()
	l.files = placeFiles(all)
	if err := l.upload(ctx, l.files); err != nil {
		return err
	}
	for _, w := range todo {
		if !slices.Contains(st.Kernels, w.k.UnameR) {
			l.fail(w.cells, fmt.Sprintf("kernel %s is not installed in VM %s (run init again)", w.k.UnameR, l.group))
			continue
		}
		if err := l.kernel(ctx, w.k, w.cells); err != nil {
			return err
		}
	}
	return nil
}

// upload puts scap-open roots, probes and modules into the guest.
func (l *looper) upload(ctx context.Context, gf *guestFiles) error {
	for dir, host := range gf.Trees {
		if err := uploadTree(ctx, l.g.ssh, host, dir); err != nil {
			return err
		}
	}
	for dst, src := range gf.Files {
		if err := l.g.ssh.Upload(ctx, src, dst, 0o755, nil); err != nil {
			return err
		}
	}
	return nil
}

// uploadTree copies a host directory tree into dir of the guest (tar over
// ssh; symlinks kept, as a library closure needs).
func uploadTree(ctx context.Context, c *sshx.Client, host, dir string) error {
	// WalkDir does not descend into a root that is a symlink.
	host, err := filepath.EvalSymlinks(host)
	if err != nil {
		return fmt.Errorf("upload %s: %w", host, err)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.WriteTree(pw, host, archive.TreeOptions{RootOwned: true}))
	}()
	var errb strings.Builder
	st, err := c.Run(ctx, fmt.Sprintf("mkdir -p %s && tar -x -C %s", sshx.Quote(dir), sshx.Quote(dir)), pr, nil, &errb)
	pr.Close()
	if err == nil && st != 0 {
		err = fmt.Errorf("tar exit status %d: %s", st, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", host, dir, err)
	}
	return nil
}

// boot makes unameR the running kernel: grub default, reboot, strict check.
func (l *looper) boot(ctx context.Context, unameR string) error {
	cur, err := l.g.ssh.Output(ctx, "uname -r")
	if err != nil {
		return err
	}
	cur = strings.TrimSpace(cur)
	if cur != unameR {
		l.out.Linef("loop %s: current kernel %s -> %s", l.group, cur, unameR)
	}
	if err := l.g.makeDefault(ctx, unameR); err != nil {
		return err
	}
	l.out.Linef("loop %s: configured next kernel %s in grub, rebooting", l.group, unameR)
	return l.reboot(ctx, unameR)
}

// reboot restarts the guest and checks that it runs unameR.
func (l *looper) reboot(ctx context.Context, unameR string) error {
	t0 := time.Now()
	if err := l.g.ssh.Reboot(ctx, "sudo reboot", rebootTimeout); err != nil {
		return noBootError{fmt.Errorf("reboot into %s: %w", unameR, err)}
	}
	got, err := l.g.ssh.Output(ctx, "uname -r")
	if err != nil {
		return err
	}
	if got = strings.TrimSpace(got); got != unameR {
		return fmt.Errorf("booted kernel %s, want %s: grub did not switch", got, unameR)
	}
	l.out.Linef("loop %s: kernel is %s after %s, running its cells", l.group, unameR, time.Since(t0).Round(time.Second))
	return nil
}

// noBootError is a reboot after which the guest never answered: the one
// boot failure a hard reset can help with (a kernel missing from grub, or
// grub booting another one, fails the same way every time).
type noBootError struct{ error }

func (e noBootError) Unwrap() error { return e.error }

// bootRetrying is boot, with up to cfg.Retries hard resets when the guest
// does not answer after the reboot: a boot that hangs is an infrastructure
// error (under emulation a kernel occasionally stalls early), not an answer
// about the kernel. Grub still defaults to unameR, so a reset boots it again.
func (l *looper) bootRetrying(ctx context.Context, unameR string) error {
	err := l.boot(ctx, unameR)
	for attempt := 1; errors.As(err, new(noBootError)) && attempt <= l.cfg.Retries && ctx.Err() == nil; attempt++ {
		l.out.Linef("loop %s: kernel %s did not come up (%v); hard reset, retry %d of %d", l.group, unameR, err, attempt, l.cfg.Retries)
		if rerr := l.recover(ctx); rerr != nil {
			return fmt.Errorf("%w; after a hard reset: %v", err, rerr)
		}
		got, gerr := l.g.ssh.Output(ctx, "uname -r")
		if gerr == nil && strings.TrimSpace(got) == unameR {
			l.out.Linef("loop %s: kernel is %s after a hard reset, running its cells", l.group, unameR)
			return nil
		}
		err = l.boot(ctx, unameR)
	}
	return err
}

// recover brings a guest that stopped answering back with a hard reset.
func (l *looper) recover(ctx context.Context) error {
	l.out.Linef("loop %s: VM does not answer, resetting it", l.group)
	l.cli.Halt(ctx, l.group, true)
	if err := l.cli.Up(ctx, l.group); err != nil {
		return fmt.Errorf("VM %s does not come back (consider destroying and rebuilding it with init): %w", l.group, err)
	}
	if err := l.g.ssh.WaitReady(ctx, sshTimeout); err != nil {
		return fmt.Errorf("VM %s does not come back (consider destroying and rebuilding it with init): %w", l.group, err)
	}
	return nil
}

// kernel runs the cells of one kernel. It returns an error only when the
// VM is lost for good; a kernel that does not come up fails its cells.
func (l *looper) kernel(ctx context.Context, k kernel.Entry, cells []cell) error {
	l.out.Linef("loop %s: next up kernel %s (%d cells)", l.group, k.UnameR, len(cells))
	if err := l.bootRetrying(ctx, k.UnameR); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.out.Linef("loop %s: kernel %s did not come up: %v", l.group, k.UnameR, err)
		l.fail(cells, fmt.Sprintf("kernel %s did not come up: %v", k.UnameR, err))
		if l.g.ssh.WaitReady(ctx, 30*time.Second) == nil {
			return nil // the guest answers (e.g. on its previous kernel)
		}
		return l.recover(ctx)
	}
	for i, c := range cells {
		lost, err := l.runCell(ctx, c)
		if err != nil {
			return err
		}
		last := i == len(cells)-1
		switch {
		case lost:
			if err := l.recover(ctx); err != nil {
				l.fail(cells[i+1:], err.Error())
				return err
			}
			if !last {
				if err := l.boot(ctx, k.UnameR); err != nil {
					l.fail(cells[i+1:], fmt.Sprintf("kernel %s did not come up again: %v", k.UnameR, err))
					return nil
				}
			}
		case c.Driver == "kmod" && !last:
			// The module stays loaded; only a reboot gives the next cell
			// a clean kernel, as in the original.
			if err := l.reboot(ctx, k.UnameR); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				l.fail(cells[i+1:], fmt.Sprintf("reboot after kmod cell %s: %v", c.ID(), err))
				return l.recover(ctx)
			}
		}
	}
	return nil
}

// runCell runs one cell over ssh, streaming scap-open's output, and
// records its outcome. lost says the guest stopped answering during it.
func (l *looper) runCell(ctx context.Context, c cell) (lost bool, err error) {
	cfg := l.cfg
	t0 := time.Now()
	root := l.files.Roots[c.ScapOpen]
	script := cellScript(c, root, cfg.MinEvents, int(cfg.TestTime.Seconds()))
	fmt.Fprintf(l.out.Writer(), "=== %s (test run for compiler/kernel %s/%s)\n", c.ID(), c.Compiler, c.Kernel)
	var buf strings.Builder
	w := &lineFilter{w: l.out.Writer()}
	// Bound the cell: capture time, module load and BPF verification under
	// emulation, plus the timeout's own grace.
	cctx, cancel := context.WithTimeout(ctx, cfg.TestTime+5*time.Minute)
	defer cancel()
	st, runErr := l.g.ssh.Run(cctx, "sudo sh -s", strings.NewReader(script), io.MultiWriter(&buf, w), io.MultiWriter(&buf, w))
	w.Flush()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	var o guest.Outcome
	var rec *guest.Record
	if runErr != nil || st != 0 {
		vmErr := runErr
		if vmErr == nil {
			vmErr = fmt.Errorf("cell script exit status %d", st)
		}
		o = guest.Classify(nil, true, buf.String(), vmErr, cfg.MinEvents)
		lost = runErr != nil
	} else {
		var uname string
		rec, uname = parseCell(buf.String())
		o = guest.Classify(rec, true, "", nil, cfg.MinEvents)
		if uname != c.Kernel {
			o = guest.Outcome{Status: guest.Error, Events: -1, Reason: fmt.Sprintf("cell ran on kernel %q, want %s", uname, c.Kernel)}
		}
	}
	res := outcome{cell: c, o: o, seconds: time.Since(t0).Seconds()}
	logPath := cfg.Path("logs", "test", c.Kernel, logName(c.Cell)+".log")
	if err := writeCellLog(logPath, c, l.provider, l.group, rec, o, buf.String(), res.seconds); err != nil {
		return lost, err
	}
	res.log, _ = filepath.Rel(cfg.BuildDir, logPath)
	fmt.Fprintf(l.out.Writer(), "--- %s: %s: %s (log %s)\n", c.ID(), strings.ToUpper(o.String()), o.Reason, res.log)
	return lost, l.record(res)
}

// lineFilter passes output to w without the marker lines meant for the
// host.
type lineFilter struct {
	w    io.Writer
	part []byte
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.part = append(f.part, p...)
	for {
		i := slices.Index(f.part, '\n')
		if i < 0 {
			break
		}
		line := f.part[:i+1]
		if !strings.HasPrefix(string(line), marker) {
			f.w.Write(line)
		}
		f.part = f.part[i+1:]
	}
	return len(p), nil
}

// Flush writes a last unterminated line.
func (f *lineFilter) Flush() {
	if len(f.part) > 0 && !strings.HasPrefix(string(f.part), marker) {
		f.w.Write(append(f.part, '\n'))
	}
	f.part = nil
}

// fail records every cell as an error with reason.
func (l *looper) fail(cells []cell, reason string) {
	for _, c := range cells {
		res := outcome{cell: c, o: guest.Outcome{Status: guest.Error, Events: -1, Reason: reason}}
		logPath := l.cfg.Path("logs", "test", c.Kernel, logName(c.Cell)+".log")
		if err := writeCellLog(logPath, c, l.provider, l.group, nil, res.o, "", 0); err == nil {
			res.log, _ = filepath.Rel(l.cfg.BuildDir, logPath)
		}
		if err := l.record(res); err != nil {
			l.out.Linef("loop %s: %v", l.group, err)
		}
	}
}

// record merges a cell's outcome into results.json, as the qemu provider
// does, and on a pass keeps the artifact in
// build/driver_ok/<compiler>/<uname-r>.<ext>.
func (l *looper) record(o outcome) error {
	t := results.Test{
		Status: o.o.Status, Kind: o.o.Kind, Events: max(o.o.Events, 0), Reason: o.o.Reason,
		Log: o.log, Attempts: 1, Seconds: o.seconds, Provider: l.provider,
	}
	if err := testplan.Record(l.cfg, o.cell, t); err != nil {
		return err
	}
	l.summary = append(l.summary, o)
	return nil
}

// logName is the cell's log file name, as the qemu provider names it.
func logName(c results.Cell) string {
	return strings.ReplaceAll(c.Compiler+"_"+c.Driver, "/", "_")
}

func writeCellLog(p string, c cell, provider, machine string, rec *guest.Record, o guest.Outcome, output string, seconds float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cell:     %s\nartifact: %s\noutcome:  %s\nreason:   %s\nvm:       %s machine %s, %.1fs\n", c.ID(), c.Artifact, o, o.Reason, provider, machine, seconds)
	if rec != nil {
		fmt.Fprintf(&b, "guest:    scap-open %.1fs, exit %d, events %d, timed out %v\n", rec.Capture, rec.Exit, rec.Events, rec.TimedOut)
		if rec.Load != "" {
			fmt.Fprintf(&b, "load:     %s\n", rec.Load)
		}
	}
	if output != "" {
		fmt.Fprintf(&b, "\n--- guest output\n%s\n", strings.TrimRight(output, "\n"))
	}
	if len(o.Detail) > 0 {
		fmt.Fprintf(&b, "\n--- evidence\n%s\n", strings.Join(o.Detail, "\n"))
	}
	if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	return results.WriteFileAtomic(p, []byte(b.String()))
}

func printSummary(out *ui.Printer, summary []outcome, wall time.Duration) {
	counts := map[string]int{}
	var bad []outcome
	for _, o := range summary {
		counts[o.o.String()]++
		if o.o.Status != guest.Pass {
			bad = append(bad, o)
		}
	}
	var parts []string
	for _, k := range []string{"pass", "fail/load", "fail/events", "fail/panic", "skip", "error"} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	out.Linef("test: %d cells in %s: %s", len(summary), wall.Round(time.Second), strings.Join(parts, ", "))
	for _, o := range bad {
		out.Linef("  %s %s: %s (log %s)", o.o, o.cell.ID(), o.o.Reason, o.log)
	}
}
