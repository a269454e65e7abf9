package vagrant

import (
	"fmt"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// remoteBase is where the loop puts the guest agent, scap-open and the
// drivers in a guest (loop.GuestPlan's base), under the login user's
// home: no root is needed to upload, and it outlives the reboots between
// cells.
const remoteBase = "test-vm"

// cell is one cell to test, with the host files it needs.
type cell = loop.Cell

// orderCells puts the cells of one kernel in the original loop's order:
// every kmod first (each followed by a reboot, so a module that is never
// unloaded cannot affect the next cell), then bpf, then modern_bpf.
func orderCells(cells []cell) []cell {
	rank := map[string]int{layout.Kmod: 0, layout.BPF: 1, layout.ModernBPF: 2}
	out := append([]cell(nil), cells...)
	// A stable insertion sort keeps the compiler order within a driver.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank[out[j].Driver] < rank[out[j-1].Driver]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// classifyCell decides a cell's outcome from what the guest agent's run
// mode wrote (its records on stdout, its own complaints on stderr), the
// console written during the cell, and how the ssh command ended (exit
// status st, or runErr when the connection broke or the command could not
// run): guest.Classify, exactly as for a qemu VM, with the agent's record
// when it wrote one, and the console for a panic when the guest died.
func classifyCell(c cell, stdout, stderr, console string, st int, runErr error, minEvents int) (guest.Outcome, *guest.Record) {
	rep, err := guest.ReadReport(strings.NewReader(stdout))
	if err != nil {
		rep = &guest.Report{Results: map[string]*guest.Record{}}
	}
	vmErr := runErr
	if vmErr == nil && st != 0 {
		vmErr = fmt.Errorf("guest agent exit status %d%s", st, lastLine(stderr))
	}
	if rep.Hello != nil && rep.Hello.Uname != c.Kernel {
		return guest.Outcome{Status: guest.Error, Events: -1, Reason: fmt.Sprintf("cell ran on kernel %q, want %s", rep.Hello.Uname, c.Kernel)}, nil
	}
	rec := rep.Results[c.ID()]
	started := slices.Contains(rep.Started, c.ID()) || runErr != nil
	o := guest.Classify(rec, started, console, vmErr, minEvents)
	if rep.Hello == nil && vmErr == nil {
		o.Reason = "the guest agent wrote no record: " + o.Reason
	}
	return o, rec
}

// lastLine is ": " and the last non-empty line of s, or "".
func lastLine(s string) string {
	if l := guest.LastLines(s, 1); len(l) > 0 {
		return ": " + l[0]
	}
	return ""
}
