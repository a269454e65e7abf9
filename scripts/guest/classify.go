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

	KindLoad   = "load"
	KindEvents = "events"
	KindPanic  = "panic"
)

// Outcome is the classified result of one cell in one attempt.
type Outcome struct {
	Status string
	Kind   string // for Fail
	Events int
	Reason string // one line for tables; Detail holds the evidence
	Detail []string
}

// Retry reports whether the outcome is an infrastructure error, the only
// kind worth another attempt.
func (o Outcome) Retry() bool { return o.Status == Error }

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

// loadFailureRe matches scap-open / libbpf output that says the engine
// could not be opened (verifier reject, missing device, bad object).
var loadFailureRe = regexp.MustCompile(`(?i)verifier|libbpf|failed to load|unable to (open|load)|error opening|cannot open|permission denied|invalid argument|no such device|BPF program load failed`)

// processedRe is the verifier's closing statistics line.
var processedRe = regexp.MustCompile(`^processed [0-9]+ insns`)

// VerifierReject finds the last verifier log in output (libbpf prints it
// between "-- BEGIN PROG LOAD LOG --" and "-- END PROG LOAD LOG --") and
// returns its verdict, the line before the "processed N insns" statistics,
// and the log's last lines up to that point. It returns "" when there is
// no verifier log.
func VerifierReject(output string) (string, []string) {
	lines := strings.Split(output, "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "-- END PROG LOAD LOG --") {
			end = i
			break
		}
	}
	if end < 0 {
		return "", nil
	}
	begin := 0
	for i := end; i >= 0; i-- {
		if strings.Contains(lines[i], "-- BEGIN PROG LOAD LOG --") {
			begin = i + 1
			break
		}
	}
	var log []string
	for _, l := range lines[begin:end] {
		if l = strings.TrimRight(l, "\r "); l != "" {
			log = append(log, l)
		}
	}
	verdict := ""
	for i := len(log) - 1; i >= 0; i-- {
		if processedRe.MatchString(log[i]) {
			if i > 0 {
				verdict = log[i-1]
			}
			log = log[:i+1]
			break
		}
	}
	if verdict == "" && len(log) > 0 {
		verdict = log[len(log)-1]
	}
	if len(log) > 15 {
		log = log[len(log)-15:]
	}
	return verdict, log
}

// Classify decides a cell's outcome from its result record (nil when the
// agent never reported it), whether the cell had started, the VM's console
// log, and the VM error (deadline, qemu died; nil on a clean power-off).
func Classify(rec *Record, started bool, console string, vmErr error, minEvents int) Outcome {
	if rec == nil {
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
	if rec.Error != "" {
		return Outcome{Status: Error, Events: rec.Events, Reason: rec.Error}
	}
	if rec.Skip != "" {
		return Outcome{Status: Skip, Events: rec.Events, Reason: rec.Skip}
	}
	if rec.Load != "" {
		detail := LastLines(strings.Join(rec.Kmsg, "\n"), 10)
		reason := rec.Load
		if len(detail) > 0 {
			reason += ": " + detail[len(detail)-1]
		}
		return Outcome{Status: Fail, Kind: KindLoad, Events: -1, Reason: reason, Detail: detail}
	}
	if rec.Exit == ExitUnsupported {
		last := LastLines(rec.Output, 1)
		reason := "not supported on this kernel (exit 95)"
		if len(last) > 0 {
			reason += ": " + last[0]
		}
		return Outcome{Status: Skip, Events: rec.Events, Reason: reason}
	}
	if rec.Events >= minEvents {
		return Outcome{Status: Pass, Events: rec.Events, Reason: fmt.Sprintf("%d events in %.1fs", rec.Events, rec.Capture)}
	}
	tail := LastLines(rec.Output, 15)
	if rec.Events < 0 && rec.Exit != 0 && !rec.TimedOut {
		if reason, log := VerifierReject(rec.Output); reason != "" {
			return Outcome{Status: Fail, Kind: KindLoad, Events: -1,
				Reason: fmt.Sprintf("verifier: %s (scap-open exit %d)", reason, rec.Exit), Detail: log}
		}
		// No summary and a failing exit: the engine did not open. The last
		// lines carry the verifier's or the loader's reason.
		reason := fmt.Sprintf("scap-open exit %d", rec.Exit)
		for i := len(tail) - 1; i >= 0; i-- {
			if loadFailureRe.MatchString(tail[i]) {
				reason += ": " + tail[i]
				break
			}
		}
		if len(tail) > 0 && !strings.Contains(reason, ": ") {
			reason += ": " + tail[len(tail)-1]
		}
		return Outcome{Status: Fail, Kind: KindLoad, Events: -1, Reason: reason, Detail: tail}
	}
	events := max(rec.Events, 0)
	reason := fmt.Sprintf("%d events, want >= %d", events, minEvents)
	if rec.TimedOut {
		reason += fmt.Sprintf(" (stopped after %.0fs)", rec.Capture)
	}
	return Outcome{Status: Fail, Kind: KindEvents, Events: events, Reason: reason, Detail: tail}
}
