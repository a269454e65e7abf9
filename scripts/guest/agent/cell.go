package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"golang.org/x/sys/unix"
)

// cellRunner runs the cells of a plan, one after the other, and emits
// their records. Nothing in it depends on being /init.
type cellRunner struct {
	plan *guest.Plan
	emit func(*guest.Record)
	// release and btf describe the running kernel.
	release string
	btf     bool
	// view reads what the kernel shows of a process's hold on a driver,
	// maps only its mappings; nextLink returns the first BPF link newer
	// than a given ID (see links.go).
	view, maps func(pid int) procView
	nextLink   func(after uint32) (uint32, error)
	// kmsgDev is the kernel log device ("" reads none).
	kmsgDev string
	// stopGrace is how long scap-open gets to print its summary after the
	// stop (SIGINT) before it is killed; killWait how long a killed
	// scap-open may take to go away before the agent gives up on it.
	stopGrace, killWait time.Duration
}

func newCellRunner(plan *guest.Plan, emit func(*guest.Record)) *cellRunner {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	return &cellRunner{
		plan: plan, emit: emit,
		release: unix.ByteSliceToString(uts.Release[:]), btf: err == nil,
		view:      inspectProc,
		maps:      inspectMaps,
		nextLink:  nextLinkID,
		kmsgDev:   "/dev/kmsg",
		stopGrace: 5 * time.Second, killWait: 10 * time.Second,
	}
}

// runAll emits hello, then start and result for every cell.
func (r *cellRunner) runAll(uptime float64) {
	r.emit(&guest.Record{Type: guest.TypeHello, Uname: r.release, BTF: r.btf, Uptime: uptime})
	for _, c := range r.plan.Cells {
		r.emit(&guest.Record{Type: guest.TypeStart, Cell: c.ID})
		rec := r.runCell(c)
		rec.Type, rec.Cell = guest.TypeResult, c.ID
		r.emit(rec)
	}
}

// runCell runs one cell and returns its result record.
func (r *cellRunner) runCell(c guest.PlanCell) *guest.Record {
	start := time.Now()
	rec := &guest.Record{Events: -1}
	defer func() { rec.Seconds = time.Since(start).Seconds() }()
	// The console line lets the host cut the console into cells.
	fmt.Fprintln(os.Stderr, guest.AgentCellLine(c.ID))

	if c.Driver == layout.ModernBPF {
		if !r.btf {
			rec.Skip = "modern_bpf needs BTF: /sys/kernel/btf/vmlinux missing"
			return rec
		}
		if kernelBelow(r.release, 5, 8) {
			rec.Skip = "modern_bpf needs kernel >= 5.8, this is " + r.release
			return rec
		}
	}
	args, err := scapOpenArgs(c, r.plan.NumEvents)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}

	kmsg := openKmsg(r.kmsgDev)
	defer kmsg.Close()
	defer func() {
		// After drivers_test too: a splat it caused is the driver's.
		lines, splat := kmsg.read()
		rec.Kmsg = append(rec.Kmsg, lines...)
		if n := len(rec.Kmsg) - kmsgKeep; n > 0 {
			rec.Kmsg = rec.Kmsg[n:]
		}
		if rec.Splat == nil {
			rec.Splat = splat
		}
	}()
	if c.Driver == layout.Kmod && c.Module != "" {
		if err := loadModules(c); err != nil {
			rec.Load = err.Error()
			return rec
		}
	}

	limit := time.Duration(r.plan.LoadSeconds) * time.Second
	a := r.attempt(c, args, limit)
	if a.notOpen != "" && !a.stuck && limit > 0 {
		// A loaded host can make a big probe's verification slow: one more
		// try with twice the time before calling the driver not open.
		rec.Notes = append(rec.Notes, fmt.Sprintf("attempt 1: %s; scap-open killed, trying again with %s", a.notOpen, seconds(2*limit)))
		a = r.attempt(c, args, 2*limit)
	}
	a.fill(rec)
	if c.Behaviour != nil {
		// The splat check of the scap-open run comes first: a kernel that
		// warned is a failure already, whatever drivers_test says.
		rec.Kmsg, rec.Splat = kmsg.read()
		if guest.ScapOpenPassed(rec, r.plan.NumEvents) {
			rec.Behaviour = r.behaviour(c.Behaviour)
		}
	}
	return rec
}

// scapOpenArgs is scap-open's command line for cell c.
func scapOpenArgs(c guest.PlanCell, numEvents int) ([]string, error) {
	n := []string{"--num_events", strconv.Itoa(numEvents)}
	switch c.Driver {
	case layout.Kmod:
		return append([]string{"--kmod"}, n...), nil
	case layout.BPF:
		return append([]string{"--bpf", c.Probe}, n...), nil
	case layout.ModernBPF:
		return append([]string{"--modern_bpf"}, n...), nil
	}
	return nil, fmt.Errorf("unknown driver %q", c.Driver)
}

// loadModules loads the cell's module after its dependencies.
func loadModules(c guest.PlanCell) error {
	for _, m := range append(append([]string{}, c.Deps...), c.Module) {
		err := loadModule(m)
		if errors.Is(err, unix.EEXIST) && m != c.Module {
			continue // a dependency already loaded
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// attemptResult is one run of scap-open.
type attemptResult struct {
	opened        bool
	load, capture time.Duration
	timedOut      bool   // stopped at the capture limit
	killed        bool   // did not stop on SIGINT
	openView      string // what the kernel showed when the driver was seen open
	notOpen       string // driver not open at the load limit, and what the kernel showed
	stuck         bool   // did not even go away after SIGKILL
	exit          int
	signal        string
	output        string
	err           error // scap-open could not be run or waited for
}

// attempt runs scap-open once: until the kernel shows the driver open
// (bounded by loadLimit), then for the capture (bounded by the plan's
// TestSeconds). The two clocks are apart on purpose: under emulation the
// verifier of a big probe takes tens of seconds, which must not eat into
// the capture, and a driver that never opens is not a capture failure.
func (r *cellRunner) attempt(c guest.PlanCell, args []string, loadLimit time.Duration) attemptResult {
	var a attemptResult
	out := &headTail{}
	newCmd := func() *exec.Cmd {
		cmd := exec.Command(c.ScapOpen, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}
		// Its own process group, so a kill reaches whatever it started;
		// and a bound on waiting for its output once it is gone.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if c.Root != "" && c.Root != "/" {
			cmd.SysProcAttr.Chroot = c.Root
		}
		cmd.WaitDelay = 2 * time.Second
		return cmd
	}
	w := r.watchOpen(c.Driver)
	start := time.Now()
	cmd := newCmd()
	err := cmd.Start()
	// A binary just written is "busy" while a process forked meanwhile
	// still holds the writer's descriptor (until that process execs).
	for try := 0; errors.Is(err, syscall.ETXTBSY) && try < 20; try++ {
		time.Sleep(50 * time.Millisecond)
		cmd = newCmd()
		err = cmd.Start()
	}
	if err != nil {
		a.err = fmt.Errorf("start %s in %s: %w", c.ScapOpen, c.Root, err)
		return a
	}
	stopSyscalls := make(chan struct{})
	go makeSyscalls(stopSyscalls)
	defer close(stopSyscalls)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pid := cmd.Process.Pid
	w.pid = pid

	err = nil
	exited := false
	// A plan without a load limit (0) leaves opening to the host's deadline.
	var loadEnd <-chan time.Time
	if loadLimit > 0 {
		t := time.NewTimer(loadLimit)
		defer t.Stop()
		loadEnd = t.C
	}
load:
	for {
		select {
		case err = <-done:
			exited = true
			break load
		case <-loadEnd:
			a.notOpen = fmt.Sprintf("driver not open after %s (%s)", seconds(loadLimit), r.view(pid).describe(c.Driver))
			err, exited = r.kill(pid, done)
			if !exited {
				a.stuck = true
				a.err = fmt.Errorf("%s; scap-open (pid %d) still there %s after SIGKILL: stuck in the kernel", a.notOpen, pid, seconds(r.killWait))
			}
			break load
		case <-time.After(w.interval(time.Since(start))):
			if w.open() {
				a.opened, a.openView = true, r.view(pid).describe(c.Driver)
				break load
			}
		}
	}
	// Without an open seen, the whole run counts as load.
	opened := time.Now()
	a.load = opened.Sub(start)
	if a.opened && !exited {
		err, exited = r.capture(&a, pid, done)
		a.capture = time.Since(opened)
	}
	a.output = out.String()
	if a.err == nil && exited {
		a.exit, a.signal, a.err = exitStatus(cmd, err)
	}
	return a
}

// capture lets scap-open capture for the plan's TestSeconds once its
// driver is open, then stops it with SIGINT (scap-open prints its summary
// and exits) and, when that does not end it, kills it.
func (r *cellRunner) capture(a *attemptResult, pid int, done <-chan error) (err error, exited bool) {
	capEnd := time.NewTimer(time.Duration(r.plan.TestSeconds) * time.Second)
	defer capEnd.Stop()
	select {
	case err = <-done:
		return err, true
	case <-capEnd.C:
	}
	a.timedOut = true
	_ = unix.Kill(pid, unix.SIGINT)
	select {
	case err = <-done:
		return err, true
	case <-time.After(r.stopGrace):
	}
	a.killed = true
	if err, exited = r.kill(pid, done); !exited {
		a.stuck = true
		a.err = fmt.Errorf("scap-open (pid %d) ignored SIGINT and was still there %s after SIGKILL: stuck in the kernel", pid, seconds(r.killWait))
	}
	return err, exited
}

// kill sends SIGKILL to scap-open's process group and waits up to killWait
// for it to end; exited is false when it did not (a process in an
// uninterruptible wait in the kernel).
func (r *cellRunner) kill(pid int, done <-chan error) (err error, exited bool) {
	_ = unix.Kill(-pid, unix.SIGKILL)
	select {
	case err = <-done:
		return err, true
	case <-time.After(r.killWait):
		return nil, false
	}
}

// exitStatus reads how scap-open ended: its exit code, or -1 and the
// signal that ended it.
func exitStatus(cmd *exec.Cmd, waitErr error) (int, string, error) {
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) && !errors.Is(waitErr, exec.ErrWaitDelay) {
		return -1, "", fmt.Errorf("run scap-open: %w", waitErr)
	}
	st := cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, unix.SignalName(ws.Signal()), nil
	}
	return st.ExitCode(), "", nil
}

// openWatch decides, poll after poll, whether scap-open has its driver
// open (see open.go and links.go).
type openWatch struct {
	r      *cellRunner
	driver string
	pid    int
	// links says BPF links are listed by ID; linksBefore is the newest
	// link before scap-open started.
	links       bool
	linksBefore uint32
}

// watchOpen prepares to watch a scap-open with driver that is about to
// start: for the eBPF drivers it notes the newest BPF link so far.
func (r *cellRunner) watchOpen(driver string) *openWatch {
	w := &openWatch{r: r, driver: driver}
	if driver != layout.Kmod {
		id, err := newestLink(r.nextLink)
		w.links, w.linksBefore = err == nil, id
	}
	return w
}

// newestLink returns the highest BPF link ID that next reports.
func newestLink(next func(uint32) (uint32, error)) (uint32, error) {
	var last uint32
	for {
		id, err := next(last)
		if err != nil || id == 0 {
			return last, err
		}
		last = id
	}
}

// open reports whether the driver is open now. eBPF drivers are asked for
// a new BPF link first (one syscall), and only then for their rings (one
// file in /proc). A scap-open that attached and was gone before its rings
// could be read had its driver open too: a small capture can end within
// milliseconds of the attach.
func (w *openWatch) open() bool {
	if w.links {
		id, err := w.r.nextLink(w.linksBefore)
		switch {
		case err != nil:
			w.links = false // read /proc from now on
		case id == 0:
			return false
		default:
			m := w.r.maps(w.pid)
			return m.Err != nil || m.ringsMapped(w.driver)
		}
	}
	return w.r.view(w.pid).open(w.driver)
}

// interval is how long to wait before the next look. Cheap looks (the
// kmod's few fds, a BPF link ID) are frequent, so a driver that opens and
// captures in a blink is still seen open; scanning a big probe's fds in
// /proc (kernels without link IDs) backs off as the load goes on, so it
// does not slow down a long verification on the guest's one CPU: a
// twentieth of the time so far, at most 250 ms.
func (w *openWatch) interval(elapsed time.Duration) time.Duration {
	if w.driver == layout.Kmod || w.links {
		return 10 * time.Millisecond
	}
	return min(max(elapsed/20, 10*time.Millisecond), 250*time.Millisecond)
}

// seconds formats a limit the way settings give it: "60 s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// fill copies an attempt's outcome into the cell's record.
func (a attemptResult) fill(rec *guest.Record) {
	if a.err != nil {
		rec.Error = a.err.Error()
	}
	rec.Opened, rec.NotOpen = a.opened, a.notOpen
	if a.opened {
		rec.Notes = append(rec.Notes, fmt.Sprintf("driver open after %.1f s: %s", a.load.Seconds(), a.openView))
	}
	rec.LoadSeconds, rec.Capture = a.load.Seconds(), a.capture.Seconds()
	rec.TimedOut, rec.Killed = a.timedOut, a.killed
	rec.Exit, rec.Signal = a.exit, a.signal
	rec.Output = a.output
	if a.notOpen == "" {
		rec.Events = guest.ParseEvents(a.output)
	}
}

func kernelBelow(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return ma < major || ma == major && mi < minor
}

// loadModule loads a kernel module file with finit_module(2).
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// makeSyscalls keeps the capture busy: a driver that loaded but sees
// nothing must be told apart from an idle guest.
func makeSyscalls(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if f, err := os.Open("/proc/self/stat"); err == nil {
			var b [256]byte
			_, _ = f.Read(b[:])
			f.Close()
		}
		_ = unix.Getppid()
		time.Sleep(2 * time.Millisecond)
	}
}
