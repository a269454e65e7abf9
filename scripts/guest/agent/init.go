package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"golang.org/x/sys/unix"
)

// initMode is the agent as PID 1 of a test VM: everything a bare
// initramfs lacks is set up here, records go to the report serial port,
// and the VM is powered off at the end (qemu runs with -no-reboot).
func initMode() {
	start := time.Now()
	for _, m := range pseudoFS {
		mountOne(m, "/")
	}
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "agent: loopback: %v\n", err)
	}
	report, err := openReport(guest.ReportDevice)
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		powerOff(nil)
	}
	plan, err := readPlan(guest.PlanPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		powerOff(report)
	}
	if plan.Hang {
		// Negative control: never report, never power off; the host's
		// deadline must end this VM.
		fmt.Fprintln(os.Stderr, "agent: plan says hang")
		sleepForever()
	}
	emit := func(rec *guest.Record) {
		if err := guest.Encode(report, rec); err != nil {
			fmt.Fprintf(os.Stderr, "agent: report: %v\n", err)
		}
	}
	for _, r := range plan.Roots {
		for _, m := range pseudoFS {
			mountOne(m, r)
		}
	}
	newCellRunner(plan, emit).runAll(uptime())
	emit(&guest.Record{Type: guest.TypeDone, Seconds: time.Since(start).Seconds()})
	if plan.Reboot {
		_ = unix.IoctlSetInt(int(report.Fd()), unix.TCSBRK, 1)
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	powerOff(report)
}

// pseudoFS are the filesystems scap-open and the drivers need: devtmpfs
// (/dev/scap* of the kmod), proc, sysfs (kernel BTF for the modern probe),
// tracefs (some programs attach through it) and a /tmp.
var pseudoFS = []struct{ fs, dir string }{
	{"devtmpfs", "/dev"},
	{"proc", "/proc"},
	{"sysfs", "/sys"},
	{"tracefs", "/sys/kernel/tracing"},
	{"tmpfs", "/tmp"},
}

// mountOne mounts m under root and reports whether it mounted something
// (false when it was there already or failed). Errors are printed, not
// fatal: a kernel without tracefs still runs the kmod.
func mountOne(m struct{ fs, dir string }, root string) bool {
	dir := filepath.Join(root, m.dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if m.fs != "tracefs" {
			fmt.Fprintf(os.Stderr, "agent: mkdir %s: %v\n", dir, err)
		}
		return false
	}
	err := unix.Mount(m.fs, dir, m.fs, 0, "")
	if err != nil && !errors.Is(err, unix.EBUSY) && m.fs != "tracefs" {
		fmt.Fprintf(os.Stderr, "agent: mount %s on %s: %v\n", m.fs, dir, err)
	}
	return err == nil
}

// openReport opens the report serial port in raw output mode, so records
// reach the host byte for byte.
func openReport(dev string) (*os.File, error) {
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open report channel: %w", err)
	}
	if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		t.Oflag &^= unix.OPOST
		_ = unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
	}
	return f, nil
}

func readPlan(path string) (*guest.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p guest.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("parse plan %s: %w", path, err)
	}
	return &p, nil
}

// powerOff waits until the report port has sent everything, then powers the
// VM off (qemu runs with -no-reboot, so it exits).
func powerOff(report *os.File) {
	if report != nil {
		_ = unix.IoctlSetInt(int(report.Fd()), unix.TCSBRK, 1) // tcdrain
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	sleepForever()
}

// sleepForever blocks without ending /init (its exit panics the kernel)
// and without a goroutine deadlock, which the Go runtime would make fatal.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// uptime is the seconds since the kernel started, from /proc/uptime.
func uptime() float64 {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
