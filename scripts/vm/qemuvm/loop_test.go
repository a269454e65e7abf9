package qemuvm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
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

// drive runs one VM job through the loop (retries, fresh VMs), as a loop
// runs its lanes, and returns the final outcomes by cell ID.
func drive(t *testing.T, r *runner, j *vmJob) map[string]loop.Outcome {
	t.Helper()
	s := &loop.Session{Parallel: 1, Lanes: []loop.Lane{r.lane(j)}}
	sum, err := loop.Drive(t.Context(), r.cfg, r.out, "qemu", s, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]loop.Outcome{}
	for _, o := range sum.List() {
		got[o.Cell.ID()] = o
	}
	return got
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
	r := newRunner(cfg, ui.Discard(), &qemuSetup{Agents: map[string]string{layout.Amd64: cfg.Path("agent")}, Accel: Accel{Accel: qemu.TCG}})
	r.qemuBinary = fakeQemu(t, `{"type":"hello","uname":"6.1.0-50-cloud-amd64"}`)
	got := drive(t, r, &vmJob{Name: "dies", Kernel: k, Cells: cells})
	if len(got) != 1 {
		t.Fatalf("summary %+v", got)
	}
	o := got[cells[0].ID()]
	if o.Outcome.Status != guest.Error || o.Attempts != 3 {
		t.Errorf("got %s after %d attempts (%s), want error after 3", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	if c := rf.Find(k.UnameR, "clang-19", "modern_bpf"); c == nil || c.Test == nil || c.Test.Status != results.TestError || c.Test.Attempts != 3 {
		t.Errorf("results.json cell %+v", c)
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
	r := newRunner(cfg, ui.Discard(), &qemuSetup{Agents: map[string]string{layout.Amd64: cfg.Path("agent")}, Accel: Accel{Accel: qemu.TCG}})
	r.qemuBinary = bin
	got := drive(t, r, &vmJob{Name: "order", Kernel: k, Cells: []cell{bad, good}})
	b, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{bad.ID(), good.ID(), bad.ID(), bad.ID()}, "\n") + "\n"
	if string(b) != want {
		t.Errorf("first cell of each VM:\n%s\nwant:\n%s", b, want)
	}
	if o := got[good.ID()]; o.Outcome.Status != guest.Pass || o.Attempts != 1 {
		t.Errorf("good cell: %s after %d attempts: %s", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
	if o := got[bad.ID()]; o.Outcome.Status != guest.Error || o.Attempts != 3 {
		t.Errorf("bad cell: %s after %d attempts: %s", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
}

// A driver the guest saw not open even at twice the load limit is an
// error the loop does not retry (the guest did); a pass keeps its load and
// capture times apart in results.json.
func TestRunJobNotOpenAndTimes(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_RETRIES": "2"})
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64", Vmlinuz: cfg.Path("vmlinuz")}
	scap := cfg.Path("driver", "clang-19", "modern_bpf", "scap-open")
	touch(t, scap)
	touch(t, cfg.Path("agent"))
	c := cell{Cell: results.Cell{Kernel: k.UnameR, Compiler: "clang-19", Driver: "modern_bpf"}, Artifact: scap, ScapOpen: scap, Root: scap + ".root"}
	for _, tc := range []struct {
		name, result, want string
		attempts           int
		load, capture      float64
	}{
		{"not open", `{"type":"result","cell":"` + c.ID() + `","exit":-1,"signal":"SIGKILL","events":-1,"not_open":"driver not open after 180 s (kernel shows 90 BPF programs, 20 maps loaded, 0 attached, 3 BPF map mappings)"}`,
			"error", 1, 0, 0},
		{"pass", `{"type":"result","cell":"` + c.ID() + `","exit":0,"events":30,"opened":true,"load_seconds":23.2,"capture":0.4}`,
			"pass", 1, 23.2, 0.4},
	} {
		r := newRunner(cfg, ui.Discard(), &qemuSetup{Agents: map[string]string{layout.Amd64: cfg.Path("agent")}, Accel: Accel{Accel: qemu.TCG}})
		// fakeQemu's printf prints each quoted word on a line of its own.
		r.qemuBinary = fakeQemu(t, `{"type":"hello"}' '{"type":"start","cell":"`+c.ID()+`"}' '`+tc.result)
		drive(t, r, &vmJob{Name: "x", Kernel: k, Cells: []cell{c}})
		rf, err := results.Load(cfg.Path(layout.Results))
		if err != nil {
			t.Fatal(err)
		}
		got := rf.Find(k.UnameR, "clang-19", "modern_bpf")
		if got == nil || got.Test == nil || got.Test.Status != tc.want || got.Test.Attempts != tc.attempts ||
			got.Test.Load != tc.load || got.Test.Capture != tc.capture {
			t.Errorf("%s: results.json cell %+v", tc.name, got.Test)
		}
	}
}
