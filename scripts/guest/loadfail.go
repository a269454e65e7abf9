package guest

import (
	"fmt"
	"regexp"
	"strings"
)

// This file turns the output of a scap-open that could not open its driver
// into one line that names the real cause: the verifier's own error for a
// rejected program, libbpf's complaint about the kernel's BTF, libbpf's or
// libscap's first error otherwise. scap-open's output mixes stdout (where
// libs' scap-open prints libbpf's messages, block-buffered) and stderr (its
// final error, unbuffered), so nothing here depends on the order of lines
// across the two streams; and the agent keeps only the head and tail of a
// long output, so a verifier log may have lost its beginning.

// Markers libbpf and libs' own legacy loader put around a verifier log.
const (
	beginLog = "-- BEGIN PROG LOAD LOG --"
	endLog   = "-- END PROG LOAD LOG --"
)

var (
	// progNameRe finds the program in libbpf's lines around a failed load:
	// "libbpf: prog 'NAME': BPF program load failed: ...",
	// "libbpf: prog 'NAME': -- BEGIN PROG LOAD LOG --",
	// "libbpf: prog 'NAME': failed to load: -13".
	progNameRe = regexp.MustCompile(`prog '([^']+)': (?:BPF program load failed|-- BEGIN PROG LOAD LOG|failed to load)`)
	// legacyProgRe finds it in libs' legacy loader error:
	// "libscap: bpf_load_program() event=raw_tracepoint/filler/sys_open_x: Permission denied (1)".
	legacyProgRe = regexp.MustCompile(`bpf_load_program\(\) event=([^\s:]+)`)
	// insnRe is an instruction line of a verifier log, "123: (79) r1 =
	// *(u64 *)(r9 +0)", or one libbpf rewrote because its CO-RE relocation
	// failed, "123: <invalid CO-RE relocation>".
	insnRe = regexp.MustCompile(`^[0-9]+: (\([0-9a-f]{2}\)|<invalid )`)
	// stateRe is a register-state line: "13: R0_w=map_value_or_null(...)",
	// "from 12 to 14: R0=...", "; R1=ctx()".
	stateRe = regexp.MustCompile(`^([0-9]+: R[0-9]|from [0-9]+ to [0-9]+:|; R[0-9]|[0-9]+: frame[0-9])`)
	// srcRe is a source line annotation with its location, as kernels
	// print it when the program carries BTF line info:
	// "; struct task_struct *task = ...; @ signal_deliver.bpf.c:45".
	srcRe = regexp.MustCompile(`^; .* @ ([^\s:]+:[0-9]+)\s*$`)
	// diagAtRe is the location line of the structured report newer
	// kernels append ("At:" then "  func @ file.c:128:2").
	diagAtRe = regexp.MustCompile(`^\s+\S+ @ ([^\s:]+:[0-9]+)(:[0-9]+)?\s*$`)
	// statsRe starts the verifier's closing statistics.
	statsRe = regexp.MustCompile(`^(processed [0-9]+ insns|verification time [0-9]+|stack depth [0-9])`)
	// btfRe is libbpf failing on the kernel's BTF (missing, or a format
	// this libbpf cannot parse): not a verifier verdict.
	btfRe = regexp.MustCompile(`(?i)(kernel BTF|vmlinux BTF|target BTF|valid kernel BTF|BTF is missing|failed to (load|parse|find).*\bBTF\b)`)
	// libbpfErrRe is a libbpf line that reports an error, not a notice.
	libbpfErrRe = regexp.MustCompile(`(?i)libbpf: .*(fail|error|invalid|cannot|can't|unable|not supported|unsupported|missing|unknown|denied|-[0-9]+\b)`)
	// loadFailureRe matches scap-open / libscap lines that say the engine
	// could not be opened, for output that carries nothing more precise.
	loadFailureRe = regexp.MustCompile(`(?i)verifier|libbpf|failed to load|unable to (open|load)|error opening|cannot open|cannot load|permission denied|invalid argument|no such device|BPF program load failed`)
)

// VerifierVerdict is what a verifier log says about a rejected program.
type VerifierVerdict struct {
	Prog     string   // the program, "" when the output does not name it
	Error    string   // the verifier's error line
	Location string   // source file:line of the failing instruction, "" when the log lacks line info
	Log      []string // the log's last lines up to and including the error
}

// Reason is the one-line reason of a verifier reject.
func (v VerifierVerdict) Reason() string {
	prog := ""
	if v.Prog != "" {
		prog = fmt.Sprintf(" prog '%s'", v.Prog)
	}
	r := "verifier rejected" + prog + ": " + v.Error
	if what, ok := coreFailure(v.Error); ok {
		// libbpf found no match for a field or type the probe reads in
		// the kernel's BTF and poisoned the instruction, which the
		// verifier then rejects: the cause is the relocation.
		if prog != "" {
			prog = " in" + prog
		}
		r = "CO-RE relocation failed" + prog + ": " + what + " is not in the kernel's BTF"
	}
	if v.Location != "" {
		r += " (" + v.Location + ")"
	}
	return r
}

// coreFailure reads libbpf's "failed to resolve CO-RE relocation <byte_off>
// [1076] struct kernfs_node.parent (0:2 @ offset 8)" into what the probe
// looked for ("struct kernfs_node.parent").
func coreFailure(msg string) (string, bool) {
	_, rest, ok := strings.Cut(msg, "failed to resolve CO-RE relocation")
	if !ok {
		return "", false
	}
	if _, after, found := strings.Cut(rest, "] "); found {
		rest = after
	}
	if i := strings.LastIndex(rest, " ("); i > 0 {
		rest = rest[:i]
	}
	rest = strings.TrimSpace(rest)
	return rest, rest != ""
}

// VerifierReject finds the last verifier log in output and returns its
// verdict, or false when the output holds no verifier log.
//
// The error line is the first line after the failing instruction (the
// last instruction of the log): kernels print the rejected instruction,
// then their message ("R9 invalid mem access 'scalar'"), then, in newer
// kernels, a structured report and suggestion text, then the "processed N
// insns" statistics. Neither the report nor the statistics are the error.
func VerifierReject(output string) (VerifierVerdict, bool) {
	lines := strings.Split(output, "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], endLog) {
			end = i
			break
		}
	}
	if end < 0 {
		return VerifierVerdict{}, false
	}
	// The log starts after its BEGIN marker, or, when the head of a long
	// output was cut, wherever the kept output starts.
	begin := 0
	for i := end; i >= 0; i-- {
		if strings.Contains(lines[i], beginLog) {
			begin = i + 1
			break
		}
	}
	log := trimLines(lines[begin:end])
	// libbpf prints the log's last line and the END marker together when
	// the log does not end in a newline.
	if before, _, ok := strings.Cut(lines[end], endLog); ok && strings.TrimSpace(before) != "" {
		log = append(log, strings.TrimRight(before, "\r "))
	}
	for i, l := range log {
		if statsRe.MatchString(l) {
			log = log[:i]
			break
		}
	}
	if len(log) == 0 {
		return VerifierVerdict{}, false
	}
	v := VerifierVerdict{Prog: verifierProg(lines, begin, end)}
	errAt := verifierErrorLine(log)
	v.Error = strings.TrimSpace(log[errAt])
	v.Location = verifierLocation(log, errAt)
	v.Log = log[max(0, errAt-14) : errAt+1]
	return v, true
}

// verifierErrorLine returns the index of the error line in log (a log cut
// before its statistics).
func verifierErrorLine(log []string) int {
	last := -1
	for i, l := range log {
		if insnRe.MatchString(l) {
			last = i
		}
	}
	if last >= 0 {
		for i := last + 1; i < len(log); i++ {
			if l := strings.TrimSpace(log[i]); l != "" && !stateRe.MatchString(l) && !strings.HasPrefix(l, "; ") {
				return i
			}
		}
	}
	// No instruction (a program-level error such as "back-edge from insn
	// 5 to 3" or "BPF program is too large"): the first line that is not
	// state or source.
	for i, l := range log {
		if l = strings.TrimSpace(l); l != "" && !stateRe.MatchString(l) && !strings.HasPrefix(l, ";") {
			return i
		}
	}
	return len(log) - 1
}

// verifierLocation returns file:line of the instruction that failed: the
// last source annotation before the error line, or the "At:" line of the
// structured report that follows it.
func verifierLocation(log []string, errAt int) string {
	for i := errAt; i >= 0; i-- {
		if m := srcRe.FindStringSubmatch(strings.TrimSpace(log[i])); m != nil {
			return m[1]
		}
	}
	for i := errAt + 1; i < len(log)-1; i++ {
		if strings.TrimSpace(log[i]) == "At:" {
			if m := diagAtRe.FindStringSubmatch(log[i+1]); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// verifierProg names the program whose log ends at line end: libbpf names
// it on the BEGIN line and on the lines before and after the log; libs'
// legacy loader names its section in the error scap-open prints.
func verifierProg(lines []string, begin, end int) string {
	if begin > 0 {
		if m := progNameRe.FindStringSubmatch(lines[begin-1]); m != nil {
			return m[1]
		}
	}
	for _, l := range lines[end:] {
		if m := progNameRe.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	for i := begin - 1; i >= 0; i-- {
		if m := progNameRe.FindStringSubmatch(lines[i]); m != nil {
			return m[1]
		}
	}
	for _, l := range lines {
		if m := legacyProgRe.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

// LoadFailure explains why a scap-open that printed no summary and exited
// with exit could not open its driver: a verifier reject, libbpf failing on
// the kernel's BTF, libbpf's first error, or scap-open's own error line. It
// returns the one-line reason and the evidence.
func LoadFailure(output string, exit int) (string, []string) {
	if v, ok := VerifierReject(output); ok {
		return v.Reason(), v.Log
	}
	lines := trimLines(strings.Split(output, "\n"))
	tail := lines[max(0, len(lines)-15):]
	for _, l := range lines {
		if strings.Contains(l, "libbpf") && btfRe.MatchString(l) {
			return "libbpf cannot use the kernel's BTF: " + strings.TrimSpace(l), tail
		}
	}
	// libbpf's first error is the cause; the ones after it ("failed to
	// load object", "failed to load BPF skeleton") are consequences.
	for _, l := range lines {
		if libbpfErrRe.MatchString(l) {
			return strings.TrimSpace(l[strings.Index(l, "libbpf: "):]), tail
		}
	}
	if l := scapOpenError(lines, exit); l != "" {
		return fmt.Sprintf("scap-open exit %d: %s", exit, l), tail
	}
	reason := fmt.Sprintf("scap-open exit %d", exit)
	for i := len(tail) - 1; i >= 0; i-- {
		if loadFailureRe.MatchString(tail[i]) {
			return reason + ": " + strings.TrimSpace(tail[i]), tail
		}
	}
	if len(tail) > 0 {
		reason += ": " + strings.TrimSpace(tail[len(tail)-1])
	}
	return reason, tail
}

// scapOpenError returns libscap's error as libs' scap-open prints it when
// the engine does not open: "<error> (<code>)" on stderr, then it exits
// with that code (libs main and 0.20.0 alike). Being on stderr, the line
// may come before or inside scap-open's block-buffered stdout.
func scapOpenError(lines []string, exit int) string {
	suffix := fmt.Sprintf(" (%d)", exit)
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasSuffix(l, suffix) && len(l) > len(suffix) {
			return l
		}
	}
	return ""
}

// trimLines drops empty lines and trailing blanks.
func trimLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if l = strings.TrimRight(l, "\r "); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
