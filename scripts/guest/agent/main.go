// Command agent is the guest agent: the static /init of a test VM's
// initramfs. It mounts the pseudo filesystems the drivers need, runs the
// cells of /plan.json one after the other (load the kernel module, run
// scap-open with the driver while something makes syscalls), writes one JSON
// record per event on the report serial port, and powers the VM off.
//
// Build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

func main() {
	start := time.Now()
	mountAll("")
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
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	_, btfErr := os.Stat("/sys/kernel/btf/vmlinux")
	send(report, &guest.Record{Type: guest.TypeHello, Uname: release, BTF: btfErr == nil, Uptime: uptime()})
	for _, r := range plan.Roots {
		mountAll(r)
	}
	for _, c := range plan.Cells {
		send(report, &guest.Record{Type: guest.TypeStart, Cell: c.ID})
		rec := runCell(plan, c, release, btfErr == nil)
		rec.Type, rec.Cell = guest.TypeResult, c.ID
		send(report, rec)
	}
	send(report, &guest.Record{Type: guest.TypeDone, Seconds: time.Since(start).Seconds()})
	if plan.Reboot {
		_ = unix.IoctlSetInt(int(report.Fd()), unix.TCSBRK, 1)
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
	powerOff(report)
}

// mountAll mounts the pseudo filesystems under root ("" is /). Errors are
// printed, not fatal: a kernel without tracefs still runs the kmod.
func mountAll(root string) {
	for _, m := range []struct{ fs, dir string }{
		{"devtmpfs", "/dev"},
		{"proc", "/proc"},
		{"sysfs", "/sys"},
		{"tracefs", "/sys/kernel/tracing"},
		{"tmpfs", "/tmp"},
	} {
		dir := filepath.Join("/", root, m.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil && m.fs != "tracefs" {
			fmt.Fprintf(os.Stderr, "agent: mkdir %s: %v\n", dir, err)
			continue
		}
		if err := unix.Mount(m.fs, dir, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) && m.fs != "tracefs" {
			fmt.Fprintf(os.Stderr, "agent: mount %s on %s: %v\n", m.fs, dir, err)
		}
	}
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

func send(report *os.File, rec *guest.Record) {
	if report == nil {
		return
	}
	if err := guest.Encode(report, rec); err != nil {
		fmt.Fprintf(os.Stderr, "agent: report: %v\n", err)
	}
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

func uptime() float64 {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// runCell runs one cell and returns its result record.
func runCell(p *guest.Plan, c guest.PlanCell, release string, btf bool) *guest.Record {
	start := time.Now()
	rec := &guest.Record{Events: -1}
	defer func() { rec.Seconds = time.Since(start).Seconds() }()
	fmt.Fprintf(os.Stderr, "agent: cell %s\n", c.ID)

	if c.Driver == "modern_bpf" {
		if !btf {
			rec.Skip = "modern_bpf needs BTF: /sys/kernel/btf/vmlinux missing"
			return rec
		}
		if kernelBelow(release, 5, 8) {
			rec.Skip = "modern_bpf needs kernel >= 5.8, this is " + release
			return rec
		}
	}

	kmsg := openKmsg()
	defer kmsg.Close()
	if c.Driver == "kmod" {
		for _, m := range append(append([]string{}, c.Deps...), c.Module) {
			err := loadModule(m)
			if errors.Is(err, unix.EEXIST) && m != c.Module {
				continue // a dependency already loaded
			}
			if err != nil {
				rec.Load = err.Error()
				rec.Kmsg = readKmsg(kmsg)
				return rec
			}
		}
	}

	args := []string{"--num_events", strconv.Itoa(p.NumEvents)}
	switch c.Driver {
	case "kmod":
		args = append([]string{"--kmod"}, args...)
	case "bpf":
		args = append([]string{"--bpf", c.Probe}, args...)
	case "modern_bpf":
		args = append([]string{"--modern_bpf"}, args...)
	default:
		rec.Error = "unknown driver " + c.Driver
		return rec
	}
	out := &headTail{}
	cmd := exec.Command(c.ScapOpen, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: c.Root}
	capStart := time.Now()
	if err := cmd.Start(); err != nil {
		rec.Error = fmt.Sprintf("start %s in %s: %v", c.ScapOpen, c.Root, err)
		return rec
	}
	stop := make(chan struct{})
	go makeSyscalls(stop)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	limit := time.Duration(p.TestSeconds) * time.Second
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		rec.TimedOut = true
		_ = cmd.Process.Signal(unix.SIGINT) // scap-open prints its summary
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			err = <-done
		}
	}
	close(stop)
	rec.Capture = time.Since(capStart).Seconds()
	rec.Exit = cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		rec.Error = fmt.Sprintf("run scap-open: %v", err)
	}
	rec.Output = out.String()
	rec.Events = guest.ParseEvents(rec.Output)
	rec.Kmsg = readKmsg(kmsg)
	return rec
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

// kmsg reads /dev/kmsg with raw non-blocking reads: an *os.File would
// park a read on the poller instead of returning EAGAIN at the end.
type kmsg int

// openKmsg opens the kernel log positioned at its end, so readKmsg returns
// only what the cell caused.
func openKmsg() kmsg {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return -1
	}
	return kmsg(fd)
}

func (k kmsg) Close() {
	if k >= 0 {
		unix.Close(int(k))
	}
}

// readKmsg returns the messages written since the last read (at most the
// last 200), without the record prefix "prio,seq,time,flags;".
func readKmsg(k kmsg) []string {
	if k < 0 {
		return nil
	}
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(int(k), buf)
		if err == unix.EPIPE { // records were overwritten; read on
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		rec := buf[:n]
		if i := bytes.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if i := bytes.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		lines = append(lines, string(rec))
	}
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	return lines
}

// headTail keeps the first and last bytes of a long output: the start says
// what ran, the end says how it ended (the verifier's last lines).
type headTail struct {
	head, tail []byte
	dropped    int
}

const headMax, tailMax = 16 << 10, 112 << 10

func (h *headTail) Write(b []byte) (int, error) {
	n := len(b)
	if room := headMax - len(h.head); room > 0 {
		k := min(room, len(b))
		h.head = append(h.head, b[:k]...)
		b = b[k:]
	}
	h.tail = append(h.tail, b...)
	if over := len(h.tail) - tailMax; over > 0 {
		h.dropped += over
		h.tail = append(h.tail[:0], h.tail[over:]...)
	}
	return n, nil
}

func (h *headTail) String() string {
	if h.dropped == 0 {
		return string(h.head) + string(h.tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes cut ...]\n%s", h.head, h.dropped, h.tail)
}
