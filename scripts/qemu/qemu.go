// Package qemu runs short-lived test VMs by direct kernel boot: the command
// line comes from one pure function of a Config (so it can be printed and
// unit-tested), every VM has a hard deadline, the console and the report
// channel go to files, and cancelling the context kills qemu's whole process
// group.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/tail"
)

// DefaultBinary is the emulator for x86_64 guests.
const DefaultBinary = "qemu-system-x86_64"

// Aarch64Binary is the emulator for arm64 guests.
const Aarch64Binary = "qemu-system-aarch64"

// BinaryFor is the emulator of a guest of arch (Debian's name).
func BinaryFor(arch string) string {
	if arch == "arm64" {
		return Aarch64Binary
	}
	return DefaultBinary
}

// PackageFor is the Debian package of BinaryFor(arch).
func PackageFor(arch string) string {
	if arch == "arm64" {
		return "qemu-system-arm"
	}
	return "qemu-system-x86"
}

// ForeignSlowdown scales a VM's deadline when its architecture is not the
// host's: TCG translates every guest instruction either way, but an
// aarch64 guest on an x86-64 host has more to translate per guest
// instruction. Measured on a 2-core x86-64 host (README, Performance): the
// bare boot of Debian's arm64 6.1 and 6.12 cloud kernels to the agent
// takes 0.9-1.0x the amd64 boot (with -cpu max,pauth-impdef=on), a
// stand-in cell 1.0-1.2x, and opening libs' modern probe (the verifier,
// the longest step) 1.25x; twice leaves room for a loaded host.
const ForeignSlowdown = 2.0

// Accelerators.
const (
	KVM = "kvm"
	TCG = "tcg"
)

// Config describes one VM.
type Config struct {
	Binary   string // default BinaryFor(Arch)
	Arch     string // the guest's architecture, Debian's name; "" is amd64
	Name     string // shown by ps and in messages
	Accel    string // KVM or TCG
	Kernel   string // vmlinuz
	Initrd   string // initramfs
	Append   string // kernel command line; empty means DefaultAppend
	MemoryMB int    // default 512
	CPUs     int    // default 1
	// Console receives the guest's first serial port (the kernel console).
	Console string
	// Report receives the second serial port (the agent's records); empty
	// leaves it unconnected.
	Report string
	// AllowReboot lets a guest reboot; by default a reboot (and the panic
	// that turns into one) ends qemu.
	AllowReboot bool
}

// DefaultAppend is the kernel command line of a test VM: console on the
// first serial port, an oops becomes a panic and a panic reboots at once
// (qemu runs with -no-reboot, so it exits), quiet to keep emulated serial
// output short (oops and panic lines are printed at every log level).
const DefaultAppend = "console=ttyS0 quiet oops=panic panic=-1 rdinit=/init"

// Aarch64Append is DefaultAppend on arm64's virt machine, whose serial port
// is a PL011 (ttyAMA0).
const Aarch64Append = "console=ttyAMA0 quiet oops=panic panic=-1 rdinit=/init"

// Args returns qemu's arguments (without the binary) for c.
func Args(c Config) []string {
	mem, cpus := c.MemoryMB, c.CPUs
	if mem <= 0 {
		mem = 512
	}
	if cpus <= 0 {
		cpus = 1
	}
	arm := c.Arch == "arm64"
	appendLine := c.Append
	if appendLine == "" {
		appendLine = DefaultAppend
		if arm {
			appendLine = Aarch64Append
		}
	}
	cpu := "max"
	switch {
	case c.Accel == KVM:
		cpu = "host"
	case arm:
		// TCG's architected pointer authentication (QARMA5) triples an
		// arm64 boot; qemu's own cheaper algorithm keeps every feature
		// the guest sees (PAC, BTI, SVE, LSE).
		cpu = "max,pauth-impdef=on"
	}
	args := []string{"-nodefaults", "-no-user-config", "-nographic", "-display", "none"}
	if arm {
		args = append(args, "-machine", "virt")
	}
	args = append(args,
		"-accel", c.Accel,
		"-cpu", cpu,
		"-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(cpus),
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", appendLine,
		"-serial", "file:"+c.Console,
	)
	switch {
	case c.Report != "" && arm:
		// virt has one serial port (the PL011, ttyAMA0) and ignores a
		// second -serial. A two-port PCI 16550 card, built into every
		// arm64 kernel (8250 and its PCI glue), gives the report channel
		// the same ttyS1 as on x86; its first port goes nowhere.
		args = append(args, "-chardev", "null,id=unused", "-chardev", "file,id=report,path="+c.Report,
			"-device", "pci-serial-2x,chardev1=unused,chardev2=report")
	case c.Report != "":
		args = append(args, "-serial", "file:"+c.Report)
	}
	if !c.AllowReboot {
		args = append(args, "-no-reboot")
	}
	if c.Name != "" {
		args = append([]string{"-name", c.Name}, args...)
	}
	return args
}

// CommandLine is c's full command line, shell-quoted, for printing.
func CommandLine(c Config) string {
	bin := c.Binary
	if bin == "" {
		bin = BinaryFor(c.Arch)
	}
	parts := []string{quote(bin)}
	for _, a := range Args(c) {
		parts = append(parts, quote(a))
	}
	return strings.Join(parts, " ")
}

func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ErrDeadline is returned (wrapped) when a VM ran out of time and was killed.
var ErrDeadline = errors.New("deadline exceeded, VM killed")

// Result is how one VM run ended.
type Result struct {
	Seconds  float64 // qemu's wall time
	ExitCode int     // qemu's exit code, -1 if killed
}

// Run starts qemu for c, waits until it exits, the deadline passes or ctx
// is cancelled, and makes sure no process of its group survives. A guest
// that powers off is a nil error; a deadline is ErrDeadline; a qemu that
// fails is an error with the end of its stderr.
func Run(ctx context.Context, c Config, deadline time.Duration) (Result, error) {
	bin := c.Binary
	if bin == "" {
		bin = BinaryFor(c.Arch)
	}
	for _, f := range []string{c.Console, c.Report} {
		if f != "" {
			// qemu appends to an existing file; a retry must not see the
			// previous attempt's records.
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return Result{ExitCode: -1}, err
			}
		}
	}
	cmd := exec.Command(bin, Args(c)...)
	var stderr tail.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", bin, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("%s: %w after %s", c.Name, ErrDeadline, deadline)
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("%s: %w", c.Name, ctx.Err())
	}
	// Anything qemu forked (it does not, normally) goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res := Result{Seconds: time.Since(start).Seconds(), ExitCode: cmd.ProcessState.ExitCode()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("%s: qemu exited with %d: %s", c.Name, res.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return res, err
}
