package guest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

// A 5.10-style reject through libbpf: no source locations, state lines.
const verifierOutput = `* BPF probe: '/drivers/clang-19/6.1.0-50-cloud-amd64.o'
libbpf: prog 'sys_enter': BPF program load failed: Permission denied
libbpf: prog 'sys_enter': -- BEGIN PROG LOAD LOG --
12: (85) call bpf_map_lookup_elem#1
13: R0_w=map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0) R10=fp0
; *f += 1;
13: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 13 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
-- END PROG LOAD LOG --
libbpf: prog 'sys_enter': failed to load: -13
scap-open: cannot open the driver: cannot load BPF probe: Permission denied (libbpf's messages above)
`

// A 6.x-style reject: source annotations with their location, state after
// each instruction; libbpf's last log line shares the END marker's line.
const verifierOutput6x = `libbpf: prog 'minilibs_modern_sys_enter': BPF program load failed: Permission denied
libbpf: prog 'minilibs_modern_sys_enter': -- BEGIN PROG LOAD LOG --
0: R1=ctx(off=0,imm=0) R10=fp0
; int minilibs_modern_sys_enter(__u64 *ctx) @ probe.bpf.c:58
0: (b7) r1 = 0                        ; R1_w=0
; __u32 key = 0; @ probe.bpf.c:66
1: (63) *(u32 *)(r10 -4) = r1         ; R1_w=0 R10=fp0 fp-8=0000????
2: (bf) r2 = r10                      ; R2_w=fp0 R10=fp0
3: (07) r2 += -4                      ; R2_w=fp-4
; __u64 *f = bpf_map_lookup_elem(&fault, &key); @ probe.bpf.c:67
4: (18) r1 = 0xffff888004a1e000       ; R1_w=map_ptr(off=0,ks=4,vs=8,imm=0)
6: (85) call bpf_map_lookup_elem#1    ; R0_w=map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)
; *f += 1; @ probe.bpf.c:69
7: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
verification time 31 usec
stack depth 8
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0-- END PROG LOAD LOG --
libbpf: prog 'minilibs_modern_sys_enter': failed to load: -13
libbpf: failed to load object 'minilibs_modern_bpf'
scap-open: cannot open the driver: cannot load the modern BPF probe: Permission denied (libbpf's messages above)
`

// The structured report of 7.x kernels: suggestion text after the error,
// whose last line is not the verdict.
const verifierOutput7x = `libbpf: prog 'signal_deliver': BPF program load failed: Permission denied
libbpf: prog 'signal_deliver': -- BEGIN PROG LOAD LOG --
; struct task_struct *task = get_task(); @ signal_deliver.bpf.c:44
122: (bf) r9 = r0                     ; R0=scalar() R9_w=scalar()
; if (task->flags & PF_KTHREAD) @ signal_deliver.bpf.c:45
123: (61) r1 = *(u32 *)(r9 +44)
R9 invalid mem access 'scalar'

Verification failed: Register Type Safety: Invalid dereference

Reason:
  R9 is an integer scalar here, not a pointer to memory.

At:
  signal_deliver @ signal_deliver.bpf.c:45:6
      44 | struct task_struct *task = get_task();     >>> 122 | (bf) r9 = r0
  >>> 45 | if (task->flags & PF_KTHREAD)             >>> 123 | (61) r1 = *(u32 *)(r9 +44)
         |         ^-- error: invalid dereference of R9 (scalar)

Suggestion:
  Preserve a pointer-valued register where needed, or reload and revalidate the pointer after scalar
  arithmetic, helper calls, or other operations that can invalidate it.

processed 845 insns (limit 1000000) max_states_per_insn 2 total_states 61 peak_states 61 mark_read 12
-- END PROG LOAD LOG --
libbpf: prog 'signal_deliver': failed to load: -13
libbpf: failed to load object 'bpf_probe'
libbpf: failed to load BPF skeleton 'bpf_probe': -13
libpman: failed to load BPF object (errno: 13 | message: Permission denied)
`

// libs' own legacy loader (0.20.0): its markers without libbpf's prefix,
// the section named in scap-open's error.
const verifierOutputLegacy = `-- BEGIN PROG LOAD LOG --
0: (bf) r6 = r1
1: (85) call bpf_get_smp_processor_id#8
2: (63) *(u32 *)(r10 -4) = r0
3: (bf) r2 = r10
4: (07) r2 += -4
5: (18) r1 = 0xffff88800b0e8000
7: (85) call bpf_map_lookup_elem#1
8: (61) r1 = *(u32 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 9 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0

-- END PROG LOAD LOG --
libscap: bpf_load_program() event=raw_tracepoint/filler/sys_socket_x: Permission denied (1)
`

func TestVerifierReject(t *testing.T) {
	for _, tc := range []struct {
		name, output, prog, err, loc string
		lastLog                      string
	}{
		{"5.10 style", verifierOutput, "sys_enter", "R0 invalid mem access 'map_value_or_null'", "", "R0 invalid mem access 'map_value_or_null'"},
		{"6.x style", verifierOutput6x, "minilibs_modern_sys_enter", "R0 invalid mem access 'map_value_or_null'", "probe.bpf.c:69", "R0 invalid mem access 'map_value_or_null'"},
		{"7.x report", verifierOutput7x, "signal_deliver", "R9 invalid mem access 'scalar'", "signal_deliver.bpf.c:45", "R9 invalid mem access 'scalar'"},
		{"legacy loader", verifierOutputLegacy, "raw_tracepoint/filler/sys_socket_x", "R0 invalid mem access 'map_value_or_null'", "", "R0 invalid mem access 'map_value_or_null'"},
		{"head cut off", "[... 9000 bytes cut ...]\n" + verifierOutput7x[strings.Index(verifierOutput7x, "122:"):], "signal_deliver", "R9 invalid mem access 'scalar'", "signal_deliver.bpf.c:45", "R9 invalid mem access 'scalar'"},
		{"program-level error", "libbpf: prog 'loop': -- BEGIN PROG LOAD LOG --\nback-edge from insn 5 to 3\nprocessed 0 insns (limit 1000000)\n-- END PROG LOAD LOG --\n", "loop", "back-edge from insn 5 to 3", "", "back-edge from insn 5 to 3"},
		{"CO-RE relocation", "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n; x = t->y; @ p.bpf.c:9\n5: (bf) r1 = r6\n6: <invalid CO-RE relocation>\nfailed to resolve CO-RE relocation <byte_off> [12] struct task_struct.y (0:1 @ offset 8)\nprocessed 7 insns\n-- END PROG LOAD LOG --\n", "p", "failed to resolve CO-RE relocation <byte_off> [12] struct task_struct.y (0:1 @ offset 8)", "p.bpf.c:9", ""},
	} {
		v, ok := VerifierReject(tc.output)
		if !ok || v.Prog != tc.prog || v.Error != tc.err || v.Location != tc.loc {
			t.Errorf("%s: got %+v %v, want prog %q error %q location %q", tc.name, v, ok, tc.prog, tc.err, tc.loc)
			continue
		}
		if want := "CO-RE relocation failed in prog 'p': struct task_struct.y is not in the kernel's BTF (p.bpf.c:9)"; tc.name == "CO-RE relocation" && v.Reason() != want {
			t.Errorf("%s: reason %q, want %q", tc.name, v.Reason(), want)
		}
		if tc.lastLog != "" && (len(v.Log) == 0 || v.Log[len(v.Log)-1] != tc.lastLog) {
			t.Errorf("%s: log ends %q", tc.name, v.Log)
		}
	}
	if v, ok := VerifierReject("libbpf: failed to open object\n"); ok {
		t.Errorf("no log, verdict %+v", v)
	}
	want := "verifier rejected prog 'signal_deliver': R9 invalid mem access 'scalar' (signal_deliver.bpf.c:45)"
	if v, _ := VerifierReject(verifierOutput7x); v.Reason() != want {
		t.Errorf("reason %q, want %q", v.Reason(), want)
	}
}

func TestLoadFailure(t *testing.T) {
	for _, tc := range []struct{ name, output, want string }{
		{"verifier", verifierOutput7x, "verifier rejected prog 'signal_deliver': R9 invalid mem access"},
		{"BTF libbpf cannot parse", "* modern BPF probe\nlibbpf: Unsupported BTF_KIND:20\nlibbpf: Error loading vmlinux BTF: -22\nlibbpf: failed to find valid kernel BTF\nscap-open: cannot open the driver: cannot load the modern BPF probe: Invalid argument (libbpf's messages above)\n",
			"libbpf cannot use the kernel's BTF: libbpf: Error loading vmlinux BTF: -22"},
		{"other libbpf error first", "libbpf: map 'ringbuf': failed to create: Operation not permitted(-1)\nlibbpf: failed to load object 'x'\nscap-open: cannot open the driver: cannot load\n",
			"libbpf: map 'ringbuf': failed to create: Operation not permitted(-1)"},
		{"libbpf through libs' log function", "libbpf: prog 'x': BPF program load failed: Permission denied\nlibbpf: prog 'x': failed to load: -13\n",
			"libbpf: prog 'x': BPF program load failed: Permission denied"},
		{"scap-open's own error", "[SCAP-OPEN]: Hello!\nscap-open: cannot open the driver: cannot open /dev/scap0: No such device\n",
			"scap-open exit 1: scap-open: cannot open the driver: cannot open /dev/scap0: No such device"},
		{"libs' scap-open: libscap's error on stderr, before stdout", "error opening device /dev/scap0. Make sure you have root credentials and that the scap module is loaded: No such file or directory (1)\n\n[SCAP-OPEN]: Hello!\n------\n",
			"scap-open exit 1: error opening device /dev/scap0. Make sure you have root credentials and that the scap module is loaded: No such file or directory (1)"},
	} {
		if got, _ := LoadFailure(tc.output, 1); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The kernel log of a WARN as /dev/kmsg gives it (no stamps) and as the
// console shows it.
var warnKmsg = []string{
	"scap: adding new consumer",
	"------------[ cut here ]------------",
	"scap: fault variant 'warn' opened (built with FAULT=warn)",
	"WARNING: CPU: 0 PID: 171 at /build/driver/src/main.c:140 minilibs_open+0xad/0xd0 [scap]",
	"Modules linked in: scap(OE)",
	"CPU: 0 PID: 171 Comm: scap-open Tainted: G           OE      6.1.0-50-cloud-amd64 #1  Debian 6.1.176-1",
}

func TestSplatLines(t *testing.T) {
	s := SplatLines(warnKmsg, 3)
	if len(s) != 3 || !strings.HasPrefix(s[0], "WARNING: CPU: 0 PID: 171 at ") {
		t.Errorf("kmsg WARN: %q", s)
	}
	console := "[    5.1] agent: cell x\n[    6.2] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n[    6.3] in_atomic(): 1\n"
	if s := SplatLines(strings.Split(console, "\n"), 10); len(s) != 2 || s[0] != "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580" {
		t.Errorf("console BUG: %q", s)
	}
	for _, clean := range [][]string{
		{"scap: loaded", "BUGS: none", "x WARNING: y", "module verification failed: signature and/or required key missing - tainting kernel"},
		nil,
	} {
		if s := SplatLines(clean, 10); s != nil {
			t.Errorf("clean log seen as splat: %q", s)
		}
	}
}

func TestCellConsole(t *testing.T) {
	console := "[ 1.0] boot\nagent: cell a\n[ 2.0] a's line\nagent: cell b\n[ 3.0] b's line\n"
	if c := CellConsole(console, "a"); !strings.Contains(c, "a's line") || strings.Contains(c, "b's") {
		t.Errorf("cell a: %q", c)
	}
	if c := CellConsole(console, "b"); !strings.Contains(c, "b's line") || strings.Contains(c, "a's") {
		t.Errorf("cell b: %q", c)
	}
	if c := CellConsole(console, "c"); c != "" {
		t.Errorf("cell c: %q", c)
	}
}

func TestClassify(t *testing.T) {
	const min = 30
	deadline := errors.New("deadline 90s exceeded")
	splatConsole := "agent: cell w\n[ 3.0] WARNING: CPU: 0 PID: 9 at kernel/x.c:1 f+0x1/0x2\nagent: cell next\n"
	tests := []struct {
		name    string
		rec     *Record
		started bool
		console string
		vmErr   error
		want    string
		reason  string // substring of the reason
	}{
		{"pass", &Record{Events: 200, Capture: 1.5}, true, "", nil, "pass", "200 events in 1.5s"},
		{"pass with load and capture apart", &Record{Events: 30, Opened: true, LoadSeconds: 23.2, Capture: 0.8}, true, "", nil, "pass", "30 events, driver open after 23.2s, capture 0.8s"},
		{"pass at threshold, stopped by the agent", &Record{Events: 30, Exit: 0, TimedOut: true}, true, "", nil, "pass", "30 events"},
		{"pass, stopped, no SIGINT handler", &Record{Events: 30, Exit: -1, Signal: "SIGINT", TimedOut: true}, true, "", nil, "pass", "30 events"},
		{"pass, stopped by timeout(1)", &Record{Events: 30, Exit: 124, TimedOut: true}, true, "", nil, "pass", "30 events"},
		{"too few events", &Record{Events: 12, TimedOut: true, Capture: 20, Opened: true, LoadSeconds: 23}, true, "", nil, "fail/events", "12 events, want >= 30 (stopped after 20s, driver open after 23.0s)"},
		{"summary with zero events", &Record{Events: 0, Exit: 1}, true, "", nil, "fail/events", "0 events, want >= 30 (scap-open exited with status 1)"},
		{"enough events, crashed", &Record{Events: 40, Exit: -1, Signal: "SIGSEGV", Opened: true}, true, "", nil, "fail/exit", "scap-open was killed by SIGSEGV after 40 events"},
		{"enough events, exit 2", &Record{Events: 40, Exit: 2}, true, "", nil, "fail/exit", "exited with status 2 after 40 events"},
		{"enough events, ignored the stop", &Record{Events: 40, Exit: -1, Signal: "SIGKILL", TimedOut: true, Killed: true}, true, "", nil, "fail/exit", "ignored the stop"},
		{"crash after open, no summary", &Record{Events: -1, Exit: -1, Signal: "SIGSEGV", Opened: true, Output: "libbpf: whatever\n"}, true, "", nil, "fail/exit", "killed by SIGSEGV after the driver opened"},
		{"splat from the agent", &Record{Events: 40, Splat: []string{"WARNING: CPU: 0 PID: 1 at x.c:1 f", "Modules linked in: scap"}}, true, "", nil, "fail/warn", "kernel splat during the cell: WARNING: CPU: 0 PID: 1 at x.c:1 f"},
		{"splat in kept kernel lines", &Record{Events: 40, Kmsg: warnKmsg}, true, "", nil, "fail/warn", "WARNING: CPU: 0 PID: 171"},
		{"splat on the cell's console", &Record{Cell: "w", Events: 40}, true, splatConsole, nil, "fail/warn", "WARNING: CPU: 0 PID: 9"},
		{"splat on another cell's console", &Record{Cell: "next2", Events: 40}, true, splatConsole, nil, "pass", "40 events"},
		{"splat with too few events", &Record{Events: 3, Opened: true, Splat: []string{"BUG: scheduling while atomic"}}, true, "", nil, "fail/warn", "BUG: scheduling while atomic"},
		{"module load error", &Record{Load: "finit_module scap.ko: exec format error", Events: -1, Kmsg: []string{"scap: disagrees about version of symbol module_layout", "scap: loading out-of-tree module taints kernel."}}, true, "", nil, "fail/load", "finit_module scap.ko: exec format error: scap: disagrees about version"},
		{"verifier reject", &Record{Exit: 1, Events: -1, Output: verifierOutput7x}, true, "", nil, "fail/load", "verifier rejected prog 'signal_deliver': R9 invalid mem access 'scalar' (signal_deliver.bpf.c:45)"},
		{"verifier reject, legacy loader", &Record{Exit: 1, Events: -1, Output: verifierOutputLegacy}, true, "", nil, "fail/load", "verifier rejected prog 'raw_tracepoint/filler/sys_socket_x'"},
		{"engine does not open", &Record{Exit: 1, Events: -1, Output: "scap-open: cannot open the driver: cannot open /dev/scap0: No such device\nbye\n"}, true, "", nil, "fail/load", "exit 1: scap-open: cannot open the driver"},
		{"BTF", &Record{Exit: 1, Events: -1, Output: "libbpf: failed to find valid kernel BTF\n"}, true, "", nil, "fail/load", "libbpf cannot use the kernel's BTF"},
		{"not open at the load limit", &Record{Events: -1, Exit: -1, Signal: "SIGKILL", NotOpen: "driver not open after 180 s (kernel shows 90 BPF programs, 20 maps loaded, 0 attached, 3 BPF map mappings)", Notes: []string{"attempt 1: driver not open after 90 s"}}, true, "", nil, "error", "driver not open after 180 s"},
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
			notOpen := tc.rec != nil && tc.rec.NotOpen != ""
			if o.Retry() != (o.Status == Error && !notOpen) {
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

// Real load failures of libs 0.20.0: its legacy probe passes the verifier
// on Debian's 6.1.176 but its perf ring double mapping is refused; its
// modern probe hits a CO-RE relocation 7.3 no longer satisfies.
func TestRealV020LoadFailures(t *testing.T) {
	for f, want := range map[string]string{
		"libs-0.20.0-bpf-perf-mmap-6.1.txt": "scap-open exit 1: unable to mmap the perf-buffer for cpu '0': Cannot allocate memory (1)",
		"libs-0.20.0-modern-core-7.3.txt":   "CO-RE relocation failed in prog 't1_clone_x': struct kernfs_node.parent is not in the kernel's BTF",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		exit := 1
		if strings.Contains(f, "modern") {
			exit = 22
		}
		o := Classify(&Record{Exit: exit, Events: -1, Output: string(b)}, true, "", nil, 30)
		if o.String() != "fail/load" || !strings.HasPrefix(o.Reason, want) {
			t.Errorf("%s: %s %q, want fail/load %q", f, o, o.Reason, want)
		}
	}
}

// Real rejects of libs main's modern probe (scap-open's output as the
// agent recorded it): on Debian's 6.12.117 the classic log, on 7.3.4 the
// structured report whose suggestion text ends the log; in both, a line
// of scap-open's stderr lands inside its block-buffered stdout.
func TestRealModernRejects(t *testing.T) {
	for _, f := range []string{"libs-main-modern-reject-6.12.txt", "libs-main-modern-reject-7.3.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		o := Classify(&Record{Exit: 13, Events: -1, Output: string(b), LoadSeconds: 120}, true, "", nil, 30)
		want := "verifier rejected prog 'signal_deliver': R9 invalid mem access 'scalar' (signal_deliver.bpf.c:45)"
		if o.String() != "fail/load" || o.Reason != want {
			t.Errorf("%s: %s %q, want fail/load %q", f, o, o.Reason, want)
		}
		if last := o.Detail[len(o.Detail)-1]; last != "R9 invalid mem access 'scalar'" {
			t.Errorf("%s: evidence ends %q", f, last)
		}
	}
}
