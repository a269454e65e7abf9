package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	c := Config{Name: "t1", Accel: TCG, Kernel: "/k/vmlinuz", Initrd: "/k/initrd", Console: "/l/console.log", Report: "/l/report.jsonl"}
	got := strings.Join(Args(c), " ")
	for _, want := range []string{
		"-name t1 ", "-accel tcg", "-cpu max", "-m 512", "-smp 1", "-no-reboot", "-nodefaults",
		"-kernel /k/vmlinuz", "-initrd /k/initrd", "-append " + DefaultAppend,
		"-serial file:/l/console.log -serial file:/l/report.jsonl",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	c.Accel, c.MemoryMB, c.CPUs, c.Report, c.Append, c.AllowReboot = KVM, 1024, 2, "", "console=ttyS0", true
	args := Args(c)
	if slices.Contains(args, "-no-reboot") {
		t.Errorf("AllowReboot kept -no-reboot: %v", args)
	}
	if i := slices.Index(args, "-cpu"); i < 0 || args[i+1] != "host" {
		t.Errorf("kvm cpu: %v", args)
	}
	if n := strings.Count(strings.Join(args, " "), "-serial"); n != 1 {
		t.Errorf("%d serial ports without a report file", n)
	}
	if i := slices.Index(args, "-append"); args[i+1] != "console=ttyS0" {
		t.Errorf("append = %q", args[i+1])
	}
	line := CommandLine(Config{Accel: TCG, Kernel: "/a b/vmlinuz", Initrd: "i", Console: "c"})
	if !strings.HasPrefix(line, "qemu-system-x86_64 ") || !strings.Contains(line, "'/a b/vmlinuz'") || !strings.Contains(line, "'"+DefaultAppend+"'") {
		t.Errorf("command line not shell-quoted: %s", line)
	}
}

// An arm64 guest boots on virt with the PL011 console and the report
// channel on the second port of a PCI serial card (ttyS1, as on x86).
func TestArgsArm64(t *testing.T) {
	c := Config{Arch: "arm64", Accel: TCG, Kernel: "/k/vmlinuz", Initrd: "/k/initrd", Console: "/l/console.log", Report: "/l/report.jsonl"}
	got := strings.Join(Args(c), " ")
	for _, want := range []string{
		"-machine virt", "-cpu max,pauth-impdef=on", "-append " + Aarch64Append, "-serial file:/l/console.log",
		"-chardev file,id=report,path=/l/report.jsonl", "-device pci-serial-2x,chardev1=unused,chardev2=report",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, " -serial "); n != 1 {
		t.Errorf("%d -serial options: virt has one serial port:\n%s", n, got)
	}
	if line := CommandLine(c); !strings.HasPrefix(line, "qemu-system-aarch64 ") {
		t.Errorf("command line %s", line)
	}
	if BinaryFor("arm64") != Aarch64Binary || BinaryFor("amd64") != DefaultBinary || BinaryFor("") != DefaultBinary {
		t.Error("BinaryFor")
	}
}

// fakeQemu writes a shell script standing in for the qemu binary: qemu
// itself cannot boot anything without a kernel, and Run's contract (exit,
// deadline, cancel, process group) does not depend on what the binary is.
func fakeQemu(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// alive reports whether pid runs (a killed process may linger as a zombie
// until its new parent reaps it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestRunDeadlineKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The "VM" forks a child that would outlive it, then hangs.
	bin := fakeQemu(t, "sleep 300 & echo $! > "+pidFile+"\nsleep 300")
	c := Config{Binary: bin, Name: "hang", Accel: TCG, Console: filepath.Join(dir, "console")}
	res, err := Run(context.Background(), c, 500*time.Millisecond)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("err = %v, want deadline", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("exit code %d after kill", res.ExitCode)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, r := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(r-'0')
	}
	time.Sleep(50 * time.Millisecond)
	if alive(pid) {
		exec.Command("kill", "-9", strings.TrimSpace(string(b))).Run()
		t.Errorf("child %d of the VM survived the deadline", pid)
	}
}

func TestRunCancelAndExit(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	_, err := Run(ctx, Config{Binary: fakeQemu(t, "sleep 300"), Name: "c", Console: filepath.Join(dir, "c")}, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: err = %v", err)
	}
	_, err = Run(context.Background(), Config{Binary: fakeQemu(t, "echo 'could not load kernel' >&2; exit 1"), Name: "bad", Console: filepath.Join(dir, "c")}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "could not load kernel") || !strings.Contains(err.Error(), "exited with 1") {
		t.Errorf("failing qemu: err = %v", err)
	}
	if _, err := Run(context.Background(), Config{Binary: fakeQemu(t, "exit 0"), Console: filepath.Join(dir, "c")}, time.Minute); err != nil {
		t.Errorf("clean exit: %v", err)
	}
}
