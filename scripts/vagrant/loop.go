package vagrant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// providerName resolves "auto" the way the VM stage does when it hands a
// run to this package: Vagrant with VirtualBox.
func providerName(cfg *config.Config) string {
	if cfg.Provider == "libvirt" {
		return "libvirt"
	}
	return "virtualbox"
}

// lifecycle is what the loop needs of Vagrant's CLI (*CLI): bringing a VM
// up, pulling its plug, and how to reach it.
type lifecycle interface {
	Up(ctx context.Context, machine string) error
	Halt(ctx context.Context, machine string, force bool) error
	SSHConfig(ctx context.Context, machine string) (sshx.Config, error)
}

// looper is one Vagrant machine as a lane of the test loop: its kernels one
// after the other in the one VM. Its first run brings the VM up (halting
// it first when an interrupted loop could not) and uploads every cell's
// files; each job makes its kernel the grub default, reboots into it and
// checks uname -r; before each cell after the first the guest is made
// fresh (a reboot after a kmod cell, a hard reset after a guest was lost).
// A cell is classified as the qemu provider classifies it, with the
// serial console written during the cell: a guest that panics is
// fail/panic. A kernel that was not installed or does not come up is an
// error for its cells, and the lane goes on with the next kernel; a VM
// that does not come back after a hard reset ends the lane.
type looper struct {
	cfg      *config.Config
	out      *ui.Printer
	cli      lifecycle
	provider string
	group    string
	jobs     []loop.Job
	g        *machine
	cells    map[string]guest.PlanCell // the lane's cells as the guest agent runs them
	base     string                    // the guest directory of the lane's files: remoteBase in the login user's home
	// agent is the guest agent on the host (BuildAgent's; a test's
	// guest that is this host takes a stand-in).
	agent   string
	console consoleLog // the guest's serial console, as the hypervisor logs it
	st      *stateFile
	// rebootGuest restarts the guest and checks it runs unameR (reboot;
	// a test's guest that is this host replaces it).
	rebootGuest func(ctx context.Context, unameR string) error

	ready   bool           // the VM is up, connected, with the files
	current string         // the kernel the guest was booted into for the current job
	dirty   bool           // a cell ran since the guest was last made fresh
	last    string         // the driver of that cell
	lost    bool           // the guest stopped answering during that cell
	broken  error          // the lane can run nothing more
	runs    map[string]int // attempts per cell, for the logs
}

func newLooper(cfg *config.Config, out *ui.Printer, cli lifecycle, provider, group string) *looper {
	l := &looper{cfg: cfg, out: out, cli: cli, provider: provider, group: group, console: consoleLog{consolePath(cfg, group)}, runs: map[string]int{}}
	l.rebootGuest = l.reboot
	return l
}

// Jobs are the group's kernels, in the loop's order.
func (l *looper) Jobs() []loop.Job { return l.jobs }

// prepare brings the VM up and uploads every file the lane's cells need.
func (l *looper) prepare(ctx context.Context) error {
	st, err := readState(l.cfg, l.group)
	if err != nil {
		return err
	}
	l.st = st
	if err := finishPendingHalt(ctx, l.cfg, l.cli, l.out, l.group); err != nil {
		return err
	}
	if err := l.cli.Up(ctx, l.group); err != nil {
		return err
	}
	l.g, err = connect(ctx, l.cli, l.group, machines[l.group])
	if err != nil {
		return err
	}
	if err := l.place(ctx); err != nil {
		return err
	}
	l.ready = true
	return nil
}

// Run runs j's cells on its kernel: see looper.
func (l *looper) Run(ctx context.Context, j loop.Job, done func(loop.Attempt)) error {
	if l.broken != nil {
		return l.broken
	}
	if !l.ready {
		if err := l.prepare(ctx); err != nil {
			return err
		}
	}
	unameR := j.Kernel.UnameR
	if !slices.Contains(l.st.Kernels, unameR) {
		l.fail(j.Cells, notInstalled(l.st, unameR), done)
		return nil
	}
	if l.lost && l.current != unameR {
		// The next kernel needs a guest that answers.
		if err := l.recover(ctx); err != nil {
			return vmLostError{err}
		}
		l.lost, l.dirty, l.current = false, false, ""
	}
	if l.current != unameR {
		l.out.Linef("loop %s: next up kernel %s (%d cells)", l.group, unameR, len(j.Cells))
		if err := l.bootRetrying(ctx, unameR); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.out.Linef("loop %s: kernel %s did not come up: %v", l.group, unameR, err)
			l.current, l.dirty = "", false
			if err := l.leaveAnswering(ctx); err != nil {
				l.broken = err
			}
			l.fail(j.Cells, fmt.Sprintf("kernel %s did not come up: %v", unameR, err), done)
			return nil
		}
		l.current, l.dirty = unameR, false
	}
	for i, c := range j.Cells {
		if l.dirty {
			if err := l.freshen(ctx, unameR, l.lost, l.last); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				l.out.Linef("loop %s: kernel %s: guest not ready for the next cell: %v", l.group, unameR, err)
				l.current, l.dirty, l.lost = "", false, false
				if errors.As(err, new(vmLostError)) {
					l.broken = err
				} else if err := l.leaveAnswering(ctx); err != nil {
					l.broken = err
				}
				l.fail(j.Cells[i:], fmt.Sprintf("kernel %s: guest not ready for this cell: %v", unameR, err), done)
				return nil
			}
			l.lost = false
		}
		a, lost, err := l.runCell(ctx, c)
		if err != nil {
			return err
		}
		done(a)
		l.dirty, l.last, l.lost = true, c.Driver, lost
	}
	return nil
}

// Close leaves the VM running and answering for the next loop when the
// lane ran to its end. Interrupted, it stops the VM (it stays defined,
// with its kernels, for the next loop) rather than leave it running a
// cell: the halt outlasts the few seconds mage gives the targets after
// Ctrl-C, so it is recorded first, and the next loop finishes it when
// this process could not.
func (l *looper) Close(ctx context.Context, interrupted bool) error {
	if l.g != nil {
		defer l.g.ssh.Close()
	}
	if !l.ready {
		return nil
	}
	if interrupted {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		l.out.Linef("loop %s: interrupted, halting the VM (recorded in %s until it is done)", l.group, haltPendingPath(l.cfg, l.group))
		if err := os.WriteFile(haltPendingPath(l.cfg, l.group), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			l.out.Linef("loop %s: %v", l.group, err)
		}
		if l.cli.Halt(hctx, l.group, true) == nil {
			os.Remove(haltPendingPath(l.cfg, l.group))
		}
		return nil
	}
	if l.lost && l.broken == nil {
		return l.recover(ctx)
	}
	return nil
}

// notInstalled is why the cells of a kernel missing from the VM are not
// run: the installer's words when Init recorded them.
func notInstalled(st *stateFile, unameR string) string {
	if why, ok := st.Failed[unameR]; ok {
		return fmt.Sprintf("kernel %s could not be installed in VM %s: %s", unameR, st.Machine, why)
	}
	return fmt.Sprintf("kernel %s is not installed in VM %s (run init again)", unameR, st.Machine)
}

// place plans the lane's cells (loop.GuestPlan, under remoteBase in the
// login user's home) and uploads the guest agent and the cells' files:
// scap-open roots, probes, modules.
func (l *looper) place(ctx context.Context) error {
	home, err := l.g.ssh.Output(ctx, "pwd")
	if err != nil {
		return err
	}
	l.base = path.Join(strings.TrimSpace(home), remoteBase)
	if l.agent == "" {
		if l.agent, err = loop.BuildAgent(ctx, l.cfg, layout.Amd64); err != nil {
			return err
		}
	}
	plan, files, err := loop.GuestPlan(l.cfg, l.jobs, l.base)
	if err != nil {
		return err
	}
	l.cells = map[string]guest.PlanCell{}
	for _, c := range plan.Cells {
		l.cells[c.ID] = c
	}
	files = append(files, loop.GuestFile{Guest: path.Join(l.base, "agent"), Host: l.agent})
	for _, f := range files {
		switch {
		case f.Tree:
			err = uploadTree(ctx, l.g.ssh, f.Host, f.Guest)
		case f.Module:
			var b []byte
			if b, err = loop.ReadModule(f.Host); err == nil {
				err = uploadBytes(ctx, l.g.ssh, b, f.Guest)
			}
		default:
			err = l.g.ssh.Upload(ctx, f.Host, f.Guest, 0o755, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// uploadBytes writes b to file p of the guest.
func uploadBytes(ctx context.Context, c *sshx.Client, b []byte, p string) error {
	var errb strings.Builder
	st, err := c.Run(ctx, fmt.Sprintf("mkdir -p %s && cat > %s", sshx.Quote(path.Dir(p)), sshx.Quote(p)), bytes.NewReader(b), nil, &errb)
	if err == nil && st != 0 {
		err = fmt.Errorf("exit status %d: %s", st, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		return fmt.Errorf("upload to %s: %w", p, err)
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
		pw.CloseWithError(fsx.WriteTar(pw, host, fsx.TarOptions{RootOwned: true}))
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
	return l.rebootGuest(ctx, unameR)
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

// ensureKernel makes sure the guest runs unameR, booting it only when it
// does not (a guest reset by recover comes back on grub's default, which
// is already unameR).
func (l *looper) ensureKernel(ctx context.Context, unameR string) error {
	got, err := l.g.ssh.Output(ctx, "uname -r")
	if err == nil && strings.TrimSpace(got) == unameR {
		return nil
	}
	return l.bootRetrying(ctx, unameR)
}

// vmLostError is a VM that did not come back after a hard reset: nothing
// more can run in it.
type vmLostError struct{ error }

func (e vmLostError) Unwrap() error { return e.error }

// freshen makes the guest ready for another cell on unameR: a guest that
// was lost gets a hard reset and, if it does not come back on unameR, a
// boot into it; after a kmod cell a reboot (the module stays loaded, and
// only a reboot gives a clean kernel, as in the original); otherwise a
// check that the guest still runs unameR.
func (l *looper) freshen(ctx context.Context, unameR string, lost bool, driver string) error {
	switch {
	case lost:
		if err := l.recover(ctx); err != nil {
			return vmLostError{err}
		}
		return l.ensureKernel(ctx, unameR)
	case driver == layout.Kmod:
		return l.rebootGuest(ctx, unameR)
	}
	return l.ensureKernel(ctx, unameR)
}

// leaveAnswering makes sure the guest answers (on whatever kernel), with a
// hard reset if it does not; an error means the VM is gone.
func (l *looper) leaveAnswering(ctx context.Context) error {
	if l.g.ssh.WaitReady(ctx, 30*time.Second) == nil {
		return nil
	}
	return l.recover(ctx)
}

// runCell runs one attempt of a cell over ssh: the guest agent's run mode
// (`agent run PLAN`, as root) on a plan of that cell alone, so that load
// and capture are timed and classified exactly as in a qemu VM. The serial
// console written meanwhile goes to the classification too: a guest that
// panicked is fail/panic with the console's panic lines. lost says the
// guest stopped answering during the cell.
func (l *looper) runCell(ctx context.Context, c cell) (a loop.Attempt, lost bool, err error) {
	cfg := l.cfg
	t0 := time.Now()
	l.runs[c.ID()]++
	pc := l.cells[c.ID()]
	plan := guest.Plan{NumEvents: cfg.MinEvents, LoadSeconds: int(cfg.LoadTime.Seconds()), TestSeconds: int(cfg.TestTime.Seconds()),
		Roots: []string{pc.Root}, Cells: []guest.PlanCell{pc}}
	if b := pc.Behaviour; b != nil && b.Root != "" {
		plan.Roots = append(plan.Roots, b.Root) // drivers_test's, prepared like scap-open's
	}
	b, err := json.Marshal(plan)
	if err != nil {
		return a, false, err
	}
	planPath := path.Join(l.base, "plan.json")
	l.out.Linef("loop %s: running %s", l.group, c.ID())
	mark := l.console.mark()
	var stdout, stderr strings.Builder
	st, runErr := -1, uploadBytes(ctx, l.g.ssh, b, planPath)
	if runErr == nil {
		// The agent bounds the cell; this bounds the agent.
		cctx, cancel := context.WithTimeout(ctx, loop.CellLimit(cfg, time.Minute))
		st, runErr = l.g.ssh.Run(cctx, "sudo "+sshx.Quote(path.Join(l.base, "agent"))+" run "+sshx.Quote(planPath), nil, &stdout, &stderr)
		cancel()
	}
	if ctx.Err() != nil {
		return a, false, ctx.Err()
	}
	console, cerr := l.console.since(mark)
	if cerr != nil {
		l.out.Linef("loop %s: %s: %v", l.group, c.ID(), cerr)
	}
	o, rec := classifyCell(c, stdout.String(), stderr.String(), console, st, runErr, cfg.MinEvents)
	a = loop.Attempt{Cell: c, Outcome: o, Record: rec, Seconds: time.Since(t0).Seconds(), VM: l.vmLine(c)}
	a.VM += fmt.Sprintf(", %.1fs", a.Seconds)
	a.Console = l.consoleRel()
	if rec == nil {
		// What the agent said before it, or the guest, stopped.
		a.Sections = append(a.Sections, loop.Section{Title: "guest agent output", Body: stdout.String() + stderr.String()})
	}
	if lines := consoleExcerpt(console); len(lines) > 0 {
		a.Sections = append(a.Sections, loop.Section{Title: "serial console during the cell", Body: strings.Join(lines, "\n")})
	}
	return a, runErr != nil, nil
}

// vmLine says where a cell ran, for its log.
func (l *looper) vmLine(c cell) string {
	s := fmt.Sprintf("%s machine %s", l.provider, l.group)
	if n := l.runs[c.ID()]; n > 1 {
		s += fmt.Sprintf(", attempt %d", n)
	}
	return s
}

// consoleRel is the console log's path relative to the build directory
// (as it is when the build directory does not hold it).
func (l *looper) consoleRel() string {
	if rel, err := filepath.Rel(l.cfg.BuildDir, l.console.path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return l.console.path
}

// fail reports an error attempt with reason for every cell, final: the
// provider already did what a retry would.
func (l *looper) fail(cells []cell, reason string, done func(loop.Attempt)) {
	for _, c := range cells {
		done(loop.Attempt{Cell: c, Outcome: guest.Outcome{Status: guest.Error, Events: -1, Reason: reason}, Final: true,
			VM: fmt.Sprintf("%s machine %s", l.provider, l.group)})
	}
}

// haltPendingPath records the halt an interrupted loop started on group's
// VM, until the halt is done.
func haltPendingPath(cfg *config.Config, group string) string {
	return cfg.Path("vagrant", group+".halt-pending")
}

// finishPendingHalt halts group's VM when an interrupted loop recorded a
// halt it could not see to its end: the guest may still run the cell it
// was interrupted in, with its driver loaded. The loop then brings the VM
// up afresh.
func finishPendingHalt(ctx context.Context, cfg *config.Config, cli lifecycle, out *ui.Printer, group string) error {
	p := haltPendingPath(cfg, group)
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	out.Linef("loop %s: an interrupted loop did not finish halting the VM; halting it now", group)
	if err := cli.Halt(ctx, group, true); err != nil {
		return fmt.Errorf("finish the halt of an interrupted loop: %w", err)
	}
	return os.Remove(p)
}
