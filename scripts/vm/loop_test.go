package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// fakeQemu writes a qemu stand-in that writes report into the file of the
// second -serial (the report channel) and exits 0, as a VM whose agent
// said that much and then powered off.
func fakeQemu(t *testing.T, report string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qemu")
	script := `#!/bin/sh
n=0
while [ $# -gt 0 ]; do
	if [ "$1" = -serial ]; then
		n=$((n+1))
		[ $n = 2 ] && printf '%s\n' '` + report + `' > "${2#file:}"
	fi
	shift
done
exit 0
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// A VM whose agent says hello and dies before its first cell must cost the
// cells an attempt each (error, retried cfg.Retries times), not send them
// to fresh VMs forever.
func TestRunJobVMDiesBeforeFirstCell(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_RETRIES": "2"})
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64", Vmlinuz: cfg.Path("vmlinuz")}
	scap := cfg.Path("driver", "clang-19", "modern_bpf", "scap-open")
	touch(t, scap)
	touch(t, cfg.Path("agent"))
	cells := []cell{
		{Cell: results.Cell{Kernel: k.UnameR, Compiler: "clang-19", Driver: "modern_bpf"}, Artifact: scap, ScapOpen: scap, Root: scap + ".root"},
	}
	r := newRunner(cfg, ui.Discard(), &qemuSetup{Agent: cfg.Path("agent"), Accel: Accel{Accel: qemu.TCG}})
	r.qemuBinary = fakeQemu(t, `{"type":"hello","uname":"6.1.0-50-cloud-amd64"}`)
	bar := r.out.Progress("test", "cells", 1)
	defer bar.Done()
	done := make(chan error, 1)
	go func() { done <- r.runJob(t.Context(), &vmJob{Name: "dies", Kernel: k, Cells: cells}, bar) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(r.summary) != 1 {
		t.Fatalf("summary %+v", r.summary)
	}
	o := r.summary[0]
	if o.Outcome.Status != guest.Error || o.Attempts != 3 {
		t.Errorf("got %s after %d attempts (%s), want error after 3", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
	rf, err := results.Load(cfg.Path("results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c := rf.Find(k.UnameR, "clang-19", "modern_bpf"); c == nil || c.Test == nil || c.Test.Status != results.TestError || c.Test.Attempts != 3 {
		t.Errorf("results.json cell %+v", c)
	}
}

// driver_ok holds a cell's artifact only while its latest test passes.
func TestRecordKeepsDriverOKInStep(t *testing.T) {
	cfg := testConfig(t, nil)
	k := "6.1.0-50-cloud-amd64"
	ko := cfg.Path("driver", "gcc-12", k+".ko")
	touch(t, ko)
	c := cell{Cell: results.Cell{Kernel: k, Compiler: "gcc-12", Driver: "kmod"}, Artifact: ko}
	r := newRunner(cfg, ui.Discard(), &qemuSetup{})
	ok := cfg.Path("driver_ok", "gcc-12", k+".ko")
	if err := r.record(c, cellOutcome{Cell: c.Cell, Outcome: guest.Outcome{Status: guest.Pass, Events: 40}, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ok); err != nil {
		t.Fatalf("pass: artifact not kept: %v", err)
	}
	if err := r.record(c, cellOutcome{Cell: c.Cell, Outcome: guest.Outcome{Status: guest.Fail, Kind: guest.KindEvents, Events: 3}, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ok); !os.IsNotExist(err) {
		t.Errorf("fail after a pass: %s still there (%v)", ok, err)
	}
	rf, err := results.Load(cfg.Path("results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rf.Find(k, "gcc-12", "kmod"); got == nil || got.Test == nil || got.Test.Status != results.TestFail || got.Test.Kind != results.KindEvents {
		t.Errorf("results.json cell %+v", got)
	}
}

// A cell that keeps ending its VM is retried after the cells that VM never
// reached, so they are not held back until its retries run out.
func TestRunJobRetriesGoLast(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_RETRIES": "2"})
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64", Vmlinuz: cfg.Path("vmlinuz")}
	scap := cfg.Path("scap-open")
	touch(t, scap)
	touch(t, cfg.Path("agent"))
	for _, c := range []string{"clang-18", "clang-19"} {
		touch(t, cfg.Path("driver", c, k.UnameR+".o"))
	}
	mk := func(comp string) cell {
		return cell{Cell: results.Cell{Kernel: k.UnameR, Compiler: comp, Driver: "bpf"},
			Artifact: cfg.Path("driver", comp, k.UnameR+".o"), ScapOpen: scap, Root: scap + ".root"}
	}
	bad, good := mk("clang-18"), mk("clang-19")
	// The stand-in VM runs the plan's first cell: the bad one ends the VM
	// without a result; the good one passes and the VM ends before the next.
	order := filepath.Join(t.TempDir(), "order")
	bin := filepath.Join(t.TempDir(), "qemu")
	script := `#!/bin/sh
initrd= report= n=0
while [ $# -gt 0 ]; do
	case "$1" in
	-initrd) initrd=$2 ;;
	-serial) n=$((n+1)); [ $n = 2 ] && report=${2#file:} ;;
	esac
	shift
done
first=$(grep -ao '"id": "[^"]*"' "$initrd" | head -n 1 | cut -d'"' -f4)
echo "$first" >> ` + order + `
{
	echo '{"type":"hello"}'
	echo '{"type":"start","cell":"'"$first"'"}'
	case "$first" in
	` + bad.ID() + `) ;;
	*) echo '{"type":"result","cell":"'"$first"'","exit":0,"events":100,"capture":1}' ;;
	esac
} > "$report"
exit 0
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRunner(cfg, ui.Discard(), &qemuSetup{Agent: cfg.Path("agent"), Accel: Accel{Accel: qemu.TCG}})
	r.qemuBinary = bin
	bar := r.out.Progress("test", "cells", 2)
	defer bar.Done()
	if err := r.runJob(t.Context(), &vmJob{Name: "order", Kernel: k, Cells: []cell{bad, good}}, bar); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{bad.ID(), good.ID(), bad.ID(), bad.ID()}, "\n") + "\n"
	if string(b) != want {
		t.Errorf("first cell of each VM:\n%s\nwant:\n%s", b, want)
	}
	got := map[string]cellOutcome{}
	for _, o := range r.summary {
		got[o.Cell.ID()] = o
	}
	if o := got[good.ID()]; o.Outcome.Status != guest.Pass || o.Attempts != 1 {
		t.Errorf("good cell: %s after %d attempts: %s", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
	if o := got[bad.ID()]; o.Outcome.Status != guest.Error || o.Attempts != 3 {
		t.Errorf("bad cell: %s after %d attempts: %s", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
}
