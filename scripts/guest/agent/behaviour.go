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
	"golang.org/x/sys/unix"
)

// behaviourReport is where drivers_test writes its googletest XML report,
// inside its root (a tmpfs the agent mounted): a new name for every run.
func behaviourReport() string {
	return fmt.Sprintf("/tmp/drivers_test.%d.xml", time.Now().UnixNano())
}

// behaviour runs drivers_test as the plan says, once the cell's scap-open
// check passed, and reads its googletest report. drivers_test loads the
// kernel module itself (it removes a loaded scap first) or opens the
// modern probe; it runs in its own root, from a writable /tmp, with
// loopback up, so that what fails is the driver, not the guest.
func (r *cellRunner) behaviour(b *guest.BehaviourRun) *guest.Behaviour {
	res := &guest.Behaviour{Mode: b.Mode}
	if b.Unavailable != "" {
		res.Error, res.Unavailable = b.Unavailable, true
		return res
	}
	start := time.Now()
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	for _, m := range b.Modules {
		if err := loadModule(m); err != nil && !errors.Is(err, unix.EEXIST) {
			res.Error = fmt.Sprintf("load the kernel's %s for drivers_test: %v", filepath.Base(m), err)
			return res
		}
	}
	restamp(b.Root)
	if err := raisePidMax(pidMaxFile, livePidMax); err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
	}
	inRoot := behaviourReport()
	report := filepath.Join(b.Root, inRoot)
	defer os.Remove(report)
	args := append([]string{}, b.Args...)
	args = append(args, "--gtest_output=xml:"+inRoot)
	if b.Filter != "" {
		args = append(args, "--gtest_filter="+b.Filter)
	}
	out := &headTail{}
	argv := append([]string{b.Binary}, args...)
	viaShell := false
	if _, err := os.Stat(filepath.Join(b.Root, "/bin/sh")); err == nil {
		// A shell of its own as drivers_test's parent, as on a developer's
		// machine. The agent is a Go program: it forks from any of its
		// threads, and the drivers report a child's parent as that thread
		// (task->real_parent), which is not the pid /proc gives as the
		// parent, so tests that compare the two would fail for the guest's
		// sake. The shell forks (it has more to run after) from its one
		// thread.
		argv = append([]string{"/bin/sh", "-c", `"$0" "$@"; exit $?`}, argv...)
		viaShell = true
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if b.Root != "" && b.Root != "/" {
		// Its root becomes the root of a mount namespace of its own
		// (enterMode), not a mere chroot: the modern probe reads an
		// executable's path up to the root of the mount tree, while
		// /proc/self/exe in a chroot is relative to the chroot, and
		// drivers_test compares the two.
		self, err := os.Executable()
		if err != nil {
			res.Error = fmt.Sprintf("find the agent's own executable: %v", err)
			return res
		}
		argv = append([]string{self, enterArg, b.Root}, argv...)
		attr.Cloneflags = syscall.CLONE_NEWNS
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp"}
	cmd.SysProcAttr = attr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		res.Error = fmt.Sprintf("start %s in %s: %v", b.Binary, b.Root, err)
		return res
	}
	stopAmbient := ambient(ambientEvery)
	defer stopAmbient()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	limit := time.Duration(b.Seconds) * time.Second
	if limit <= 0 {
		limit = 24 * time.Hour // the host's deadline ends the VM
	}
	var waitErr error
	timedOut := false
	select {
	case waitErr = <-done:
	case <-time.After(limit):
		timedOut = true
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGINT)
		select {
		case waitErr = <-done:
		case <-time.After(r.stopGrace):
			var exited bool
			if waitErr, exited = r.kill(cmd.Process.Pid, done); !exited {
				res.Error = fmt.Sprintf("time limit %s reached, and drivers_test was still there %s after SIGKILL: stuck in the kernel", seconds(limit), seconds(r.killWait))
				res.Output = out.String()
				return res
			}
		}
	}
	exit, signal, err := exitStatus(cmd, waitErr)
	if viaShell && signal == "" && exit > 128 && exit < 128+65 {
		// The shell's way of saying a signal ended its child.
		signal = unix.SignalName(syscall.Signal(exit - 128))
	}
	how := fmt.Sprintf("exited with status %d", exit)
	if signal != "" {
		how = "was killed by " + signal
	}
	if err != nil {
		how = err.Error()
	}
	f, ferr := os.Open(report)
	if ferr == nil {
		parsed, perr := guest.ParseGTestXML(f)
		f.Close()
		if perr == nil {
			parsed.Mode, parsed.Seconds = res.Mode, res.Seconds
			res = parsed
		} else {
			ferr = perr
		}
	}
	switch {
	case ferr != nil && timedOut:
		res.Error = fmt.Sprintf("time limit %s reached before drivers_test wrote its report", seconds(limit))
	case ferr != nil && errors.Is(ferr, os.ErrNotExist):
		res.Error = "no report: drivers_test " + how + lastOutputLine(out.String())
	case ferr != nil:
		res.Error = fmt.Sprintf("drivers_test %s; %v", how, ferr)
	case exit != 0 && res.Failed == 0:
		// googletest exits 1 only for failed tests: anything else is a
		// crash or a teardown that went wrong.
		res.Error = fmt.Sprintf("drivers_test %s though no test failed%s", how, lastOutputLine(out.String()))
	}
	if res.Error != "" || res.Failed > 0 {
		res.Output = out.String()
	}
	return res
}

// ambientEvery is the pace of the guest's background syscalls.
const ambientEvery = 10 * time.Millisecond

// ambientCall is the background syscall.
var ambientCall = func() { unix.Getuid() }

// ambient makes, until stop is called, the background of syscalls that a
// live system always has and an initramfs lacks: a getuid every tick,
// from one of the agent's threads. drivers_test's sampling-ratio test
// (Actions.sampling_ratio_check_DROP_E_DROP_X) waits for the drop events
// that a driver emits only when some process makes a syscall the
// sampling may drop; the test's own syscalls while it polls (sleeps) are
// never sampled, so in a quiet guest it polled its empty buffers for the
// whole run. getuid is such a syscall for the kernel module and the
// modern probe, with no side effect and no event of any other test's
// process.
func ambient(every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ambientCall()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// enterArg is the agent's internal mode that starts a program inside a
// root of its own: "agent enter ROOT PROGRAM ARGS...".
const enterArg = "enter"

// enterMode runs in a new mount namespace (its parent cloned it so): it
// makes root the root of the namespace's mount tree, as switch_root does
// (a bind mount of root moved over /, then chroot into it: pivot_root
// cannot leave an initramfs), and execs argv there from /tmp.
func enterMode(root string, argv []string) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "agent: enter %s: %s: %v\n", root, what, err)
		return 127
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("make / private", err)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fail("bind", err)
	}
	if err := unix.Chdir(root); err != nil {
		return fail("chdir", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fail("move to /", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fail("chroot", err)
	}
	if err := unix.Chdir("/tmp"); err != nil {
		return fail("chdir /tmp", err)
	}
	return fail("exec "+argv[0], unix.Exec(argv[0], argv, os.Environ()))
}

// lastOutputLine is ": " and the last non-empty line of s, or "".
func lastOutputLine(s string) string {
	if l := guest.LastLines(s, 1); len(l) > 0 {
		return ": " + strings.TrimSpace(l[0])
	}
	return ""
}

// loopbackUp brings lo up: an initramfs has nobody else to do it, and
// network tests connect to 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// pseudoDirs are the directories of a root where the agent mounts
// pseudo filesystems (pseudoFS).
var pseudoDirs = map[string]bool{"dev": true, "proc": true, "sys": true, "tmp": true}

// unpackedBefore is a status-change time no file of a test VM has unless
// it dates from a clock not yet set: 2020-01-01, the modification time
// the host gives every initramfs entry.
const unpackedBefore = 1577836800

// restamp gives the files under root (a root the host staged for
// drivers_test) whose status-change time (ctime)
// predates unpackedBefore the clock's time, by a status change that
// changes nothing else (the same mode again). The kernel unpacks the
// initramfs before it sets its clock from an RTC that is a device (arm64's
// virt: rtc_hctosys is a late initcall), so there every file's ctime is in
// 1970, and libs' tests expect an executable's ctime to be a real date (the
// execve exit event carries it). On x86 the clock is set before, and
// nothing changes.
func restamp(root string) {
	if root == "" || root == "/" {
		// drivers_test without a root of its own: a booted guest's own
		// files (the Vagrant providers), whose times are real.
		return
	}
	if time.Now().Unix() < unpackedBefore {
		return // the clock itself is not set: nothing better to stamp with
	}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if rel, _ := filepath.Rel(root, p); d.IsDir() && pseudoDirs[rel] {
			return filepath.SkipDir // what the agent mounted there is not unpacked
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Ctim.Sec >= unpackedBefore {
			return nil
		}
		_ = unix.Chmod(p, st.Mode&07777)
		return nil
	})
}

// pidMaxFile is the kernel's limit on pids.
const pidMaxFile = "/proc/sys/kernel/pid_max"

// livePidMax is kernel.pid_max on a live 64-bit system: systemd sets it so
// (its sysctl.d/50-pid-max.conf). The kernel's own default follows the
// number of possible CPUs, 32768 in arm64's one-CPU virt VM, and libs'
// tests create processes with chosen pids above that (clone3 with set_tid
// 61001, which fails with EINVAL under the default).
const livePidMax = 4194304

// raisePidMax raises the pid limit in file to at least want.
func raisePidMax(file string, want int) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	have, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if have >= want {
		return nil
	}
	if err := os.WriteFile(file, []byte(strconv.Itoa(want)+"\n"), 0o644); err != nil {
		return fmt.Errorf("raise %s from %d to %d: %w", file, have, want, err)
	}
	return nil
}
