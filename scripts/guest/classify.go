package guest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Statuses and failure kinds, the same words as results.json.
const (
	Pass  = "pass"
	Fail  = "fail"
	Skip  = "skip"
	Error = "error"

	KindLoad   = "load"   // insmod, the verifier or libbpf refused the driver
	KindEvents = "events" // too few events
	KindPanic  = "panic"  // the kernel panicked (oops=panic makes every oops one)
	KindWarn   = "warn"   // the kernel reported a WARN/BUG splat while the driver ran
	KindExit   = "exit"   // enough events, but scap-open did not end cleanly
	// KindBehaviour: scap-open's check passed, drivers_test found events
	// that are wrong.
	KindBehaviour = "behaviour"
)

// Outcome is the classified result of one cell in one attempt.
type Outcome struct {
	Status string
	Kind   string // for Fail
	Events int
	Reason string // one line for tables; Detail holds the evidence
	Detail []string
	// Retried marks an error the guest already retried (a driver not open
	// at its load limit, tried again with twice the limit): another VM
	// would only repeat it.
	Retried bool
	// Behaviour is drivers_test's answer for a cell whose scap-open check
	// passed, when the plan asked for one.
	Behaviour *Behaviour
}

// Retry reports whether the outcome is an infrastructure error worth
// another attempt: the only kind, unless the guest retried it already.
func (o Outcome) Retry() bool { return o.Status == Error && !o.Retried }

// String is "status" or "status/kind".
func (o Outcome) String() string {
	if o.Kind != "" {
		return o.Status + "/" + o.Kind
	}
	return o.Status
}

// capturedRe matches scap-open's summary line in both known wordings:
// "Events correctly captured (SCAP_SUCCESS): 595" and
// "Number of `SCAP_SUCCESS` (events correctly captured): 595".
var capturedRe = regexp.MustCompile("(?im)captured[^0-9\n]*([0-9]+)")

// ParseEvents returns the event count of scap-open's last summary line, or
// -1 when there is none.
func ParseEvents(output string) int {
	m := capturedRe.FindAllStringSubmatch(output, -1)
	if len(m) == 0 {
		return -1
	}
	n, err := strconv.Atoi(m[len(m)-1][1])
	if err != nil {
		return -1
	}
	return n
}

// panicRe matches the first line of a kernel oops, BUG or panic report.
var panicRe = regexp.MustCompile(`Kernel panic - not syncing|\bOops[: ]|\bBUG: |kernel BUG at|general protection fault|Unable to handle kernel|unable to handle page fault|invalid opcode: `)

// PanicLines returns the console lines from the first oops/panic line on
// (at most max), or nil when the console shows none.
func PanicLines(console string, max int) []string {
	lines := strings.Split(console, "\n")
	for i, l := range lines {
		if !panicRe.MatchString(l) {
			continue
		}
		var out []string
		for _, k := range lines[i:] {
			if k = strings.TrimRight(k, "\r "); k != "" {
				out = append(out, k)
			}
			if len(out) == max {
				break
			}
		}
		return out
	}
	return nil
}

// Classify decides a cell's outcome from its result record (nil when the
// agent never reported it), whether the cell had started, the VM's console
// log, and the VM error (deadline, qemu died; nil on a clean power-off).
//
// A cell passes when scap-open captured at least minEvents events, ended
// cleanly (see cleanEnd) and the kernel reported no splat meanwhile.
func Classify(rec *Record, started bool, console string, vmErr error, minEvents int) Outcome {
	if rec == nil {
		return classifyLost(started, console, vmErr)
	}
	switch {
	case rec.Error != "":
		return Outcome{Status: Error, Events: rec.Events, Reason: rec.Error}
	case rec.Skip != "":
		return Outcome{Status: Skip, Events: rec.Events, Reason: rec.Skip}
	case rec.Load != "":
		return moduleLoadFailure(rec)
	case rec.Exit == ExitUnsupported && !rec.Opened:
		last := LastLines(rec.Output, 1)
		reason := "not supported on this kernel (exit 95)"
		if len(last) > 0 {
			reason += ": " + last[0]
		}
		return Outcome{Status: Skip, Events: rec.Events, Reason: reason}
	}
	engineFailed := rec.NotOpen == "" && rec.Events < 0 && !rec.Opened && !rec.TimedOut && rec.Exit != 0
	splat := cellSplat(rec, console)
	if splat != nil && !engineFailed {
		return Outcome{Status: Fail, Kind: KindWarn, Events: max(rec.Events, 0),
			Reason: "kernel splat during the cell: " + splat[0], Detail: splat}
	}
	if rec.NotOpen != "" {
		detail := append(append([]string{}, rec.Notes...), LastLines(rec.Output, 10)...)
		return Outcome{Status: Error, Events: -1, Reason: rec.NotOpen, Detail: detail, Retried: true}
	}
	if engineFailed {
		reason, detail := LoadFailure(rec.Output, rec.Exit)
		if splat != nil {
			detail = append(detail, splat...)
		}
		return Outcome{Status: Fail, Kind: KindLoad, Events: -1, Reason: reason, Detail: detail}
	}
	tail := LastLines(rec.Output, 15)
	clean := cleanEnd(rec)
	switch {
	case rec.Events >= minEvents && clean:
		return withBehaviour(Outcome{Status: Pass, Events: rec.Events, Reason: fmt.Sprintf("%d events%s", rec.Events, timing(rec))}, rec.Behaviour)
	case rec.Events >= minEvents || (rec.Events < 0 && !clean):
		return Outcome{Status: Fail, Kind: KindExit, Events: max(rec.Events, 0),
			Reason: fmt.Sprintf("scap-open %s %s", howEnded(rec), eventsSoFar(rec)), Detail: tail}
	}
	reason := fmt.Sprintf("%d events, want >= %d", max(rec.Events, 0), minEvents)
	var notes []string
	if rec.TimedOut {
		notes = append(notes, fmt.Sprintf("stopped after %.0fs", rec.Capture))
	}
	if rec.Opened {
		notes = append(notes, fmt.Sprintf("driver open after %.1fs", rec.LoadSeconds))
	}
	if !clean {
		notes = append(notes, "scap-open "+howEnded(rec))
	}
	if len(notes) > 0 {
		reason += " (" + strings.Join(notes, ", ") + ")"
	}
	return Outcome{Status: Fail, Kind: KindEvents, Events: max(rec.Events, 0), Reason: reason, Detail: tail}
}

// ScapOpenPassed reports whether the scap-open check of a cell passed, as
// far as the guest can tell (the host also looks at the console): enough
// events, a clean end, no kernel splat. Only then does drivers_test run.
func ScapOpenPassed(rec *Record, minEvents int) bool {
	return rec.Error == "" && rec.Skip == "" && rec.Load == "" && rec.NotOpen == "" &&
		len(rec.Splat) == 0 && rec.Events >= minEvents && cleanEnd(rec)
}

// withBehaviour completes the outcome of a cell whose scap-open check
// passed with drivers_test's answer: failing tests make the cell a
// behaviour failure, naming them; no answer makes it an error, never a
// pass (the behaviour asked for is unknown).
func withBehaviour(o Outcome, b *Behaviour) Outcome {
	if b == nil {
		return o
	}
	o.Behaviour = b
	switch {
	case b.Error != "":
		o.Status, o.Retried = Error, b.Unavailable
		o.Reason = fmt.Sprintf("%s; behaviour unknown, %s", o.Reason, b.Summary())
		o.Detail = LastLines(b.Output, 15)
	case b.Failed > 0:
		o.Status, o.Kind = Fail, KindBehaviour
		o.Reason = "behaviour: " + b.Summary()
		for _, name := range b.Failing {
			o.Detail = append(o.Detail, name+": "+b.Failures[name])
		}
	case b.Total() == 0:
		o.Status = Error
		o.Reason = fmt.Sprintf("%s; behaviour unknown, drivers_test ran no test (filter %q matched none?)", o.Reason, b.Mode)
		o.Detail = LastLines(b.Output, 15)
	default:
		o.Reason += ", behaviour " + b.Summary()
	}
	return o
}

// classifyLost decides a cell the agent never reported: a panic when the
// console shows one after the cell started, otherwise an infrastructure
// error.
func classifyLost(started bool, console string, vmErr error) Outcome {
	if started {
		if p := PanicLines(console, 30); p != nil {
			return Outcome{Status: Fail, Kind: KindPanic, Events: -1, Reason: "kernel oops/panic: " + p[0], Detail: p}
		}
	}
	reason := "no result reported"
	switch {
	case vmErr != nil && started:
		reason = fmt.Sprintf("cell started, no result: %v", vmErr)
	case vmErr != nil:
		reason = vmErr.Error()
	case started:
		reason = "cell started, VM ended without a result"
	}
	return Outcome{Status: Error, Events: -1, Reason: reason, Detail: LastLines(console, 20)}
}

// taintRe matches the kernel's notices on loading any out-of-tree module,
// which are never the reason a load failed.
var taintRe = regexp.MustCompile(`taints kernel|tainting kernel|module verification failed`)

// moduleLoadFailure explains a kernel module the kernel refused, with the
// kernel's own message (e.g. "scap: disagrees about version of symbol
// module_layout") after the loader's error.
func moduleLoadFailure(rec *Record) Outcome {
	detail := LastLines(strings.Join(rec.Kmsg, "\n"), 10)
	reason := rec.Load
	for i := len(detail) - 1; i >= 0; i-- {
		if !taintRe.MatchString(detail[i]) {
			reason += ": " + detail[i]
			break
		}
	}
	if rec.Splat != nil {
		detail = append(detail, rec.Splat...)
	}
	return Outcome{Status: Fail, Kind: KindLoad, Events: -1, Reason: reason, Detail: detail}
}

// cellSplat returns the first kernel splat of the cell: the one the agent
// found in the kernel log during the cell, else one in the kernel lines it
// kept, else one on the console between the agent's lines for this cell and
// the next.
func cellSplat(rec *Record, console string) []string {
	if len(rec.Splat) > 0 {
		return rec.Splat
	}
	if s := SplatLines(rec.Kmsg, 30); s != nil {
		return s
	}
	if c := CellConsole(console, rec.Cell); c != "" {
		return SplatLines(strings.Split(c, "\n"), 30)
	}
	return nil
}

// cleanEnd reports whether scap-open ended the way a healthy run ends: on
// its own with exit 0 (it reached --num_events or its own time limit), or
// on the agent's stop at the capture limit (scap-open's SIGINT handler
// prints the summary and exits 0; one without a handler dies of the
// SIGINT). timeout(1), the stop of the Vagrant provider's script, reports
// 124 for a command it stopped and 137 for one it had to kill.
func cleanEnd(r *Record) bool {
	switch {
	case r.Killed:
		return false
	case r.Exit == 0 && r.Signal == "":
		return true
	case r.TimedOut && r.Signal == "SIGINT":
		return true
	case r.TimedOut && r.Exit == 124:
		return true
	}
	return false
}

// howEnded says how scap-open ended, for reasons.
func howEnded(r *Record) string {
	switch {
	case r.Killed:
		return "ignored the stop (SIGINT) and was killed"
	case r.Signal != "":
		return "was killed by " + r.Signal
	default:
		return fmt.Sprintf("exited with status %d", r.Exit)
	}
}

// eventsSoFar completes a reason about how scap-open ended.
func eventsSoFar(r *Record) string {
	switch {
	case r.Events >= 0:
		return fmt.Sprintf("after %d events", r.Events)
	case r.Opened:
		return "after the driver opened, without a summary"
	default:
		return "without a summary"
	}
}

// timing is ", driver open after L s, capture C s" when the agent saw the
// driver open, else " in T s".
func timing(r *Record) string {
	if r.Opened {
		return fmt.Sprintf(", driver open after %.1fs, capture %.1fs", r.LoadSeconds, r.Capture)
	}
	if t := r.LoadSeconds + r.Capture; t > 0 {
		return fmt.Sprintf(" in %.1fs", t)
	}
	return ""
}
