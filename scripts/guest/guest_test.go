package guest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReadReportRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("\x00garbage before\r\n")
	for _, r := range []*Record{
		{Type: TypeHello, Uname: "6.1.0-50-cloud-amd64", BTF: true},
		{Type: TypeStart, Cell: "gcc-12/6.1.0-50-cloud-amd64/kmod"},
		{Type: TypeResult, Cell: "gcc-12/6.1.0-50-cloud-amd64/kmod", Events: 200, Output: "line\nEvents correctly captured (SCAP_SUCCESS): 200\n"},
		{Type: TypeStart, Cell: "clang-19/6.1.0-50-cloud-amd64/bpf"},
	} {
		if err := Encode(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString(`{"type":"result","cell":"clang-19/6.1.0-50-cl`) // cut by power-off
	rep, err := ReadReport(strings.NewReader(strings.ReplaceAll(buf.String(), "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Hello == nil || rep.Hello.Uname != "6.1.0-50-cloud-amd64" || !rep.Hello.BTF {
		t.Errorf("hello = %+v", rep.Hello)
	}
	if len(rep.Started) != 2 || rep.Started[1] != "clang-19/6.1.0-50-cloud-amd64/bpf" {
		t.Errorf("started = %v", rep.Started)
	}
	if r := rep.Results["gcc-12/6.1.0-50-cloud-amd64/kmod"]; r == nil || r.Events != 200 || !strings.Contains(r.Output, "captured") {
		t.Errorf("result = %+v", r)
	}
	if len(rep.Results) != 1 || rep.Done || rep.Garbage != 2 {
		t.Errorf("results %d done %v garbage %d", len(rep.Results), rep.Done, rep.Garbage)
	}
}

func TestParseEvents(t *testing.T) {
	for out, want := range map[string]int{
		"[SCAP-OPEN]: Hello!\nEvents correctly captured (SCAP_SUCCESS): 595\nNumber of dropped events: 0\n": 595,
		"Number of `SCAP_SUCCESS` (events correctly captured): 31\n":                                        31,
		"---\nEvents correctly captured (SCAP_SUCCESS): 0\n":                                                0,
		"libbpf: prog 'x': failed to load: -13\n":                                                           -1,
		"": -1,
	} {
		if got := ParseEvents(out); got != want {
			t.Errorf("ParseEvents(%q) = %d, want %d", out, got, want)
		}
	}
}

const oopsConsole = `[    1.234] Run /init as init process
[    2.100] scap: loading out-of-tree module taints kernel.
[    2.101] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    2.102] #PF: supervisor write access in kernel mode
[    2.103] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    2.104] RIP: 0010:init_module+0x5/0x1000 [scap]
[    2.110] Kernel panic - not syncing: Fatal exception
`

const verifierOutput = `* BPF probe: '/drivers/clang-19/6.1.0-50-cloud-amd64.o'
libbpf: prog 'sys_enter': BPF program load failed: Permission denied
libbpf: prog 'sys_enter': -- BEGIN PROG LOAD LOG --
12: (85) call bpf_map_lookup_elem#1   ; R0_w=map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)
; *f += 1;
13: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 13 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
-- END PROG LOAD LOG --
libbpf: prog 'sys_enter': failed to load: -13
scap-open: cannot open the driver: Permission denied (verifier log above)
`

func TestVerifierReject(t *testing.T) {
	verdict, log := VerifierReject(verifierOutput)
	if verdict != "R0 invalid mem access 'map_value_or_null'" || len(log) != 5 || !strings.HasPrefix(log[4], "processed 13 insns") {
		t.Errorf("verdict %q log %q", verdict, log)
	}
	if v, _ := VerifierReject("libbpf: failed to open object\n"); v != "" {
		t.Errorf("no log, verdict %q", v)
	}
}

func TestClassify(t *testing.T) {
	const min = 30
	deadline := errors.New("deadline 90s exceeded")
	tests := []struct {
		name    string
		rec     *Record
		started bool
		console string
		vmErr   error
		want    string
		reason  string // substring of the reason
	}{
		{"pass", &Record{Events: 200, Capture: 1.5}, true, "", nil, "pass", "200 events"},
		{"pass at threshold after timeout", &Record{Events: 30, Exit: 0, TimedOut: true}, true, "", nil, "pass", "30 events"},
		{"too few events", &Record{Events: 12, TimedOut: true, Capture: 20}, true, "", nil, "fail/events", "12 events, want >= 30"},
		{"summary with zero events", &Record{Events: 0, Exit: 1}, true, "", nil, "fail/events", "0 events"},
		{"module load error", &Record{Load: "finit_module: exec format error", Events: -1, Kmsg: []string{"scap: disagrees about version of symbol module_layout"}}, true, "", nil, "fail/load", "disagrees about version"},
		{"verifier reject", &Record{Exit: 1, Events: -1, Output: "libbpf: prog 'sys_enter': BPF program load failed: Permission denied\nlibbpf: -- BEGIN PROG LOAD LOG --\n0: R1 invalid mem access 'scalar'\nprocessed 12 insns\n-- END PROG LOAD LOG --\nerror opening the engine\n"}, true, "", nil, "fail/load", "verifier: 0: R1 invalid mem access 'scalar'"},
		{"engine does not open", &Record{Exit: 1, Events: -1, Output: "libbpf: failed to open object\nerror opening the engine\nbye\n"}, true, "", nil, "fail/load", "exit 1: error opening the engine"},
		{"verifier log", &Record{Exit: 1, Events: -1, Output: verifierOutput}, true, "", nil, "fail/load", "verifier: R0 invalid mem access 'map_value_or_null' (scap-open exit 1)"},
		{"unsupported", &Record{Exit: 95, Events: -1, Output: "modern_bpf needs BTF\n"}, true, "", nil, "skip", "modern_bpf needs BTF"},
		{"agent skip", &Record{Skip: "kernel 5.4 < 5.8", Events: -1}, true, "", nil, "skip", "5.8"},
		{"agent error", &Record{Error: "exec scap-open: no such file", Events: -1}, true, "", nil, "error", "exec scap-open"},
		{"oops", nil, true, oopsConsole, nil, "fail/panic", "BUG: kernel NULL pointer"},
		{"oops then deadline", nil, true, oopsConsole, deadline, "fail/panic", "BUG:"},
		{"deadline in cell", nil, true, "[ 1.0] Run /init\n", deadline, "error", "deadline 90s"},
		{"never started", nil, false, oopsConsole, deadline, "error", "deadline"},
		{"ended silently", nil, true, "", nil, "error", "without a result"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Classify(tc.rec, tc.started, tc.console, tc.vmErr, min)
			if o.String() != tc.want || !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("got %s %q, want %s with %q", o, o.Reason, tc.want, tc.reason)
			}
			if o.Retry() != (o.Status == Error) {
				t.Errorf("Retry() = %v for %s", o.Retry(), o)
			}
		})
	}
	o := Classify(nil, true, oopsConsole, nil, min)
	if len(o.Detail) != 5 || !strings.Contains(o.Detail[2], "Oops: 0002") {
		t.Errorf("panic detail = %q", o.Detail)
	}
}

func TestPanicLinesIgnoresCleanBoot(t *testing.T) {
	clean := "[ 0.0] Linux version 6.1.0\n[ 0.5] BUGS: none\n[ 1.0] Run /init as init process\n[ 2.0] reboot: Power down\n"
	if p := PanicLines(clean, 10); p != nil {
		t.Errorf("clean boot seen as panic: %q", p)
	}
}
