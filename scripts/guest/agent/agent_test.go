package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"golang.org/x/sys/unix"
)

// fakeScapOpen writes a shell script that plays scap-open's part for the
// kmod: body runs with $DEV naming a file under a dev/ directory, which the
// agent takes for the kmod's /dev/scap0 once the script holds it open.
func fakeScapOpen(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev", "scap0")
	if err := os.MkdirAll(filepath.Dir(dev), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "scap-open")
	script := "#!/bin/sh\nDEV=" + dev + "\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Script pieces: the summary line of scap-open, and a capture loop that
// stops on SIGINT the way scap-open does (summary, exit 0).
const (
	summary40   = `echo "Events correctly captured (SCAP_SUCCESS): 40"`
	captureLoop = `trap '` + summary40 + `; exit 0' INT
exec 3<"$DEV"
while :; do sleep 0.05; done`
)

// runPlan runs cells through the agent's run mode code (records to a
// buffer, no mounts, no chroot) with the given limits, and returns the
// report and the outcome of every cell.
func runPlan(t *testing.T, load, capture int, cells ...guest.PlanCell) (*guest.Report, map[string]guest.Outcome) {
	t.Helper()
	var buf bytes.Buffer
	plan := &guest.Plan{NumEvents: 30, LoadSeconds: load, TestSeconds: capture, Cells: cells}
	r := newCellRunner(plan, func(rec *guest.Record) {
		if err := guest.Encode(&buf, rec); err != nil {
			t.Error(err)
		}
	})
	// The host's kernel log is not the cells' business here.
	r.stopGrace, r.killWait, r.kmsgDev = time.Second, 5*time.Second, ""
	r.runAll(0)
	rep, err := guest.ReadReport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Hello == nil || len(rep.Started) != len(cells) || rep.Garbage != 0 {
		t.Fatalf("report: hello %+v, started %v, garbage %d", rep.Hello, rep.Started, rep.Garbage)
	}
	out := map[string]guest.Outcome{}
	for _, c := range cells {
		rec := rep.Results[c.ID]
		if rec == nil {
			t.Fatalf("%s: no result", c.ID)
		}
		out[c.ID] = guest.Classify(rec, true, "", nil, 30)
	}
	return rep, out
}

func kmodCell(id, scapOpen string) guest.PlanCell {
	return guest.PlanCell{ID: id, Driver: "kmod", ScapOpen: scapOpen}
}

// A driver that takes longer to open than the capture limit but less than
// the load limit passes, with load and capture timed apart.
func TestSlowOpenWithinLoadLimit(t *testing.T) {
	t.Parallel()
	c := kmodCell("slow", fakeScapOpen(t, "sleep 2\n"+captureLoop))
	rep, o := runPlan(t, 10, 1, c)
	rec := rep.Results["slow"]
	if o["slow"].Status != guest.Pass || !rec.Opened || !rec.TimedOut || rec.Killed || rec.Events != 40 {
		t.Fatalf("%s (%s): %+v", o["slow"], o["slow"].Reason, rec)
	}
	if rec.LoadSeconds < 1.9 || rec.LoadSeconds > 4 || rec.Capture < 0.9 || rec.Capture > 3 {
		t.Errorf("load %.2fs, capture %.2fs; want about 2 and 1", rec.LoadSeconds, rec.Capture)
	}
	if !strings.Contains(o["slow"].Reason, "driver open after") {
		t.Errorf("reason %q", o["slow"].Reason)
	}
}

// A driver that is not open at the load limit is killed, tried once more
// with twice the limit, and then is an error the loop does not retry: never
// a capture failure.
func TestNotOpenIsRetriedOnceThenError(t *testing.T) {
	t.Parallel()
	c := kmodCell("never", fakeScapOpen(t, `trap '`+summary40+`; exit 0' INT
while :; do sleep 0.05; done`))
	start := time.Now()
	rep, o := runPlan(t, 1, 1, c)
	took := time.Since(start)
	rec, out := rep.Results["never"], o["never"]
	if out.Status != guest.Error || out.Retry() || !strings.HasPrefix(out.Reason, "driver not open after 2 s") {
		t.Fatalf("%s retry %v: %q", out, out.Retry(), out.Reason)
	}
	if len(rec.Notes) != 1 || !strings.Contains(rec.Notes[0], "driver not open after 1 s") || rec.Opened || rec.Events != -1 {
		t.Errorf("record %+v", rec)
	}
	if took < 3*time.Second {
		t.Errorf("both attempts took %s, want >= 3 s (1 s + 2 s)", took)
	}
}

// Enough events is not a pass when scap-open crashes or ignores the stop.
func TestUncleanEndsFail(t *testing.T) {
	t.Parallel()
	crash := kmodCell("crash", fakeScapOpen(t, `exec 3<"$DEV"
`+summary40+`
sleep 0.5
kill -SEGV $$`))
	deaf := kmodCell("deaf", fakeScapOpen(t, `trap '`+summary40+`' INT
exec 3<"$DEV"
while :; do sleep 0.05; done`))
	exit3 := kmodCell("exit3", fakeScapOpen(t, `exec 3<"$DEV"
`+summary40+`
sleep 0.5
exit 3`))
	rep, o := runPlan(t, 5, 1, crash, deaf, exit3)
	for id, want := range map[string]string{"crash": "killed by SIGSEGV after 40 events", "deaf": "ignored the stop", "exit3": "exited with status 3"} {
		if o[id].String() != "fail/exit" || !strings.Contains(o[id].Reason, want) {
			t.Errorf("%s: %s %q, want fail/exit with %q (record %+v)", id, o[id], o[id].Reason, want, rep.Results[id])
		}
	}
	if r := rep.Results["deaf"]; !r.Killed || !r.TimedOut || r.Signal != "SIGKILL" {
		t.Errorf("deaf: %+v", r)
	}
}

// scap-open that fails to open the driver: no open seen, exit 1, its
// error as the reason.
func TestEngineFailure(t *testing.T) {
	t.Parallel()
	c := kmodCell("noopen", fakeScapOpen(t, `echo "scap-open: cannot open the driver: cannot open /dev/scap0: No such device" >&2
exit 1`))
	rep, o := runPlan(t, 5, 1, c)
	if o["noopen"].String() != "fail/load" || !strings.Contains(o["noopen"].Reason, "No such device") || rep.Results["noopen"].Opened {
		t.Errorf("%s %q", o["noopen"], o["noopen"].Reason)
	}
}

// The run mode of the binary writes hello, start, result and done records
// to stdout and nothing else, mounts nothing outside the plan's roots and
// does not power anything off.
func TestRunModeBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "agent")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	plan := guest.Plan{NumEvents: 30, LoadSeconds: 5, TestSeconds: 1, Cells: []guest.PlanCell{
		kmodCell("fast", fakeScapOpen(t, `exec 3<"$DEV"
`+summary40)),
		{ID: "odd", Driver: "floppy", ScapOpen: "/bin/true"},
	}}
	pf := filepath.Join(t.TempDir(), "plan.json")
	b, _ := json.Marshal(plan)
	if err := os.WriteFile(pf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "run", pf)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("agent run: %v\n%s", err, stderr.String())
	}
	rep, err := guest.ReadReport(&stdout)
	if err != nil || rep.Garbage != 0 || !rep.Done || rep.Hello == nil || len(rep.Results) != 2 {
		t.Fatalf("report %+v, err %v\nstdout:\n%s", rep, err, stdout.String())
	}
	if o := guest.Classify(rep.Results["fast"], true, "", nil, 30); o.Status != guest.Pass {
		t.Errorf("fast: %s %q", o, o.Reason)
	}
	if o := guest.Classify(rep.Results["odd"], true, "", nil, 30); o.Status != guest.Error || !strings.Contains(o.Reason, "floppy") {
		t.Errorf("odd: %s %q", o, o.Reason)
	}
	if !strings.Contains(stderr.String(), guest.AgentCellLine("fast")) {
		t.Errorf("stderr lacks the cell line: %q", stderr.String())
	}
	// Not PID 1 and no arguments: a usage error, never init mode.
	if err := exec.Command(bin).Run(); err == nil {
		t.Error("agent without arguments outside PID 1 did not fail")
	}
}

// What the kernel shows decides the open, per driver.
func TestProcViewOpen(t *testing.T) {
	t.Parallel()
	view := func(fds, maps []string) procView {
		var v procView
		for _, f := range fds {
			v.addFD(f)
		}
		for _, m := range maps {
			v.addMapping(m)
		}
		return v
	}
	ringbuf := "7f1c2a000000-7f1c2a001000 rw-s 00000000 00:0f 1052 anon_inode:bpf-map"
	perfRing := "7f1c2b000000-7f1c2b011000 rw-s 00000000 00:0f 1052 anon_inode:[perf_event]"
	loading := []string{"anon_inode:bpf-map", "anon_inode:bpf-prog", "anon_inode:bpf-prog", "/dev/null"}
	attached := append(append([]string{}, loading...), "anon_inode:bpf_link")
	for _, tc := range []struct {
		name, driver string
		fds, maps    []string
		want         bool
	}{
		{"kmod device in a chroot", "kmod", []string{"/dev/null", "/roots/0/dev/scap0"}, nil, true},
		{"kmod not yet", "kmod", []string{"/dev/null", "/roots/0/dev/scap0x"}, nil, false},
		{"modern loading", "modern_bpf", loading, []string{ringbuf}, false},
		{"modern attached, no ring", "modern_bpf", attached, nil, false},
		{"modern open", "modern_bpf", attached, []string{ringbuf}, true},
		{"legacy attached one by one, rings not yet", "bpf", attached, nil, false},
		{"legacy open", "bpf", attached, []string{perfRing, perfRing}, true},
		{"legacy on 4.17-5.6", "bpf", append(loading, "anon_inode:bpf-raw-tracepoint"), []string{perfRing}, true},
		{"legacy needs perf rings, not a bpf map", "bpf", attached, []string{ringbuf}, false},
	} {
		if got := view(tc.fds, tc.maps).open(tc.driver); got != tc.want {
			t.Errorf("%s: open = %v, want %v", tc.name, got, tc.want)
		}
	}
	d := view(loading, []string{ringbuf}).describe("modern_bpf")
	if d != "kernel shows 2 BPF programs, 1 map loaded, 0 attached, 1 BPF map mapping" {
		t.Errorf("describe: %q", d)
	}
}

// inspectProc reads a live process: this test's own.
func TestInspectProcSelf(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	os.MkdirAll(dir, 0o755)
	f, err := os.Create(filepath.Join(dir, "scap3"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := inspectProc(os.Getpid())
	if v.Err != nil || v.ScapDevices < 1 || !v.open("kmod") {
		t.Errorf("own process: %+v", v)
	}
	if v := inspectProc(1 << 30); v.Err == nil || v.open("kmod") {
		t.Errorf("no such process: %+v", v)
	}
}

func TestPollInterval(t *testing.T) {
	cheap := &openWatch{driver: "modern_bpf", links: true}
	scan := &openWatch{driver: "modern_bpf"}
	for el, want := range map[time.Duration]time.Duration{
		0: 10 * time.Millisecond, time.Second: 50 * time.Millisecond, time.Minute: 250 * time.Millisecond,
	} {
		if got := scan.interval(el); got != want {
			t.Errorf("fd scan after %s: every %s, want %s", el, got, want)
		}
		if got := cheap.interval(el); got != 10*time.Millisecond {
			t.Errorf("link IDs after %s: every %s, want 10ms", el, got)
		}
	}
}

// An eBPF driver is open when a BPF link newer than scap-open's start
// exists and its rings are mapped; links that were there before do not
// count.
func TestEBPFOpenByLinkID(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	attached := filepath.Join(dir, "attached")
	c := guest.PlanCell{ID: "modern", Driver: "modern_bpf", ScapOpen: fakeScapOpen(t, `sleep 1.5
touch `+attached+`
trap '`+summary40+`; exit 0' INT
while :; do sleep 0.05; done`)}
	var buf bytes.Buffer
	plan := &guest.Plan{NumEvents: 30, LoadSeconds: 10, TestSeconds: 1, Cells: []guest.PlanCell{c}}
	r := newCellRunner(plan, func(rec *guest.Record) { guest.Encode(&buf, rec) })
	r.btf, r.release, r.kmsgDev = true, "6.1.0", ""
	// Links 3 and 5 exist before; 9 appears when the script attaches.
	r.nextLink = func(after uint32) (uint32, error) {
		for _, id := range []uint32{3, 5} {
			if id > after {
				return id, nil
			}
		}
		if _, err := os.Stat(attached); err == nil && after < 9 {
			return 9, nil
		}
		return 0, nil
	}
	r.view = func(int) procView { return procView{BPFProgs: 4, BPFLinks: 1, MapMappings: 2} }
	r.maps = func(int) procView { return procView{MapMappings: 2} }
	r.runAll(0)
	rep, _ := guest.ReadReport(&buf)
	rec := rep.Results["modern"]
	if rec == nil || !rec.Opened || rec.LoadSeconds < 1.4 || rec.LoadSeconds > 3 || !rec.TimedOut || rec.Events != 40 {
		t.Fatalf("record %+v", rec)
	}
	if o := guest.Classify(rec, true, "", nil, 30); o.Status != guest.Pass {
		t.Errorf("%s %q", o, o.Reason)
	}
	if len(rec.Notes) == 0 || !strings.Contains(rec.Notes[0], "1 attached, 2 BPF map mappings") {
		t.Errorf("notes %q", rec.Notes)
	}
}

// The kernel answers the link query (or refuses it for lack of support or
// privilege); either way the watcher has an answer.
func TestNextLinkID(t *testing.T) {
	id, err := nextLinkID(0)
	if err != nil && err != errNoLinkIDs && err != unix.EPERM {
		t.Fatalf("nextLinkID: %v", err)
	}
	t.Logf("first BPF link on this host: %d (%v)", id, err)
}

// fakeDriversTest writes a script that plays drivers_test: it records its
// arguments in args.txt beside it, writes googletest's report (the one of
// ../testdata/gtest-1.12.xml: two tests failed) where --gtest_output says,
// then runs body.
func fakeDriversTest(t *testing.T, body string) string {
	t.Helper()
	report, err := filepath.Abs("../testdata/gtest-1.12.xml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "drivers_test")
	script := `#!/bin/sh
echo "$@" > ` + filepath.Join(dir, "args.txt") + `
cat /proc/$PPID/comm > ` + filepath.Join(dir, "parent.txt") + `
for a in "$@"; do case "$a" in --gtest_output=xml:*) cp ` + report + ` "${a#--gtest_output=xml:}";; esac; done
` + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// drivers_test runs only after a passing scap-open check, from a shell, with the cell's
// driver and filter; its failing tests make the cell a behaviour failure
// named test by test, a crash or a hang an error, and a missing
// drivers_test an error the loop does not retry.
func TestBehaviourAfterPassingCheck(t *testing.T) {
	t.Parallel()
	passing := fakeScapOpen(t, captureLoop)
	cell := func(id, scapOpen string, b *guest.BehaviourRun) guest.PlanCell {
		c := kmodCell(id, scapOpen)
		c.Behaviour = b
		return c
	}
	fails := fakeDriversTest(t, "echo '[  FAILED  ] SyscallEnter.openatE'; exit 1")
	crash := fakeDriversTest(t, "rm -f \"${3#--gtest_output=xml:}\"; kill -SEGV $$")
	hang := fakeDriversTest(t, "rm -f \"${3#--gtest_output=xml:}\"; while :; do sleep 0.05; done")
	run := func(bin string, secs int) *guest.BehaviourRun {
		return &guest.BehaviourRun{Mode: guest.BehaviourSmoke, Binary: bin, Args: []string{"-k", "/drivers/gcc-12/x.ko"}, Filter: "SyscallEnter.*", Seconds: secs}
	}
	rep, o := runPlan(t, 10, 1,
		cell("fails", passing, run(fails, 30)),
		cell("crash", passing, run(crash, 30)),
		cell("hang", passing, run(hang, 1)),
		cell("missing", passing, &guest.BehaviourRun{Mode: guest.BehaviourSmoke, Unavailable: "clang-19/drivers_test did not build"}),
		cell("checkfails", fakeScapOpen(t, "exit 1"), run(fails, 30)),
	)
	if got := o["fails"]; got.String() != "fail/behaviour" || !strings.Contains(got.Reason, "2 failed: SyscallEnter.openatE, SyscallExit.closeX") {
		t.Errorf("fails: %s %q", got, got.Reason)
	}
	b := rep.Results["fails"].Behaviour
	if b == nil || b.Passed != 1 || b.Skipped != 1 || b.Error != "" || !strings.Contains(b.Output, "[  FAILED  ]") {
		t.Errorf("fails: behaviour %+v", b)
	}
	args, _ := os.ReadFile(filepath.Join(filepath.Dir(fails), "args.txt"))
	if a := string(args); !strings.HasPrefix(a, "-k /drivers/gcc-12/x.ko --gtest_output=xml:/tmp/drivers_test.") || !strings.HasSuffix(a, " --gtest_filter=SyscallEnter.*\n") {
		t.Errorf("drivers_test arguments %q", a)
	}
	// Its parent is a shell of its own (one thread), not the Go agent.
	if parent, _ := os.ReadFile(filepath.Join(filepath.Dir(fails), "parent.txt")); strings.TrimSpace(string(parent)) != "sh" {
		t.Errorf("drivers_test's parent is %q, want sh", parent)
	}
	if got := o["crash"]; got.Status != guest.Error || !strings.Contains(got.Reason, "SIGSEGV") && !strings.Contains(got.Reason, "segmentation") {
		t.Errorf("crash: %s %q", got, got.Reason)
	}
	if got := o["hang"]; got.Status != guest.Error || !strings.Contains(got.Reason, "time limit 1 s reached") {
		t.Errorf("hang: %s %q", got, got.Reason)
	}
	if got := o["missing"]; got.Status != guest.Error || got.Retry() || !strings.Contains(got.Reason, "did not build") {
		t.Errorf("missing: %s retry %v %q", got, got.Retry(), got.Reason)
	}
	if got := rep.Results["checkfails"]; got.Behaviour != nil || o["checkfails"].Status != guest.Fail {
		t.Errorf("a failed scap-open check ran drivers_test: %s %+v", o["checkfails"], got.Behaviour)
	}
}

// The guest's background syscalls run at their pace while drivers_test
// does, and stop with it.
func TestAmbient(t *testing.T) {
	var n atomic.Int64
	saved := ambientCall
	ambientCall = func() { n.Add(1) }
	defer func() { ambientCall = saved }()
	stop := ambient(time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	stop()
	got := n.Load()
	if got < 10 {
		t.Errorf("%d background calls in 100 ms at 1 ms, want at least 10", got)
	}
	time.Sleep(20 * time.Millisecond)
	if after := n.Load(); after != got {
		t.Errorf("%d background calls after stop", after-got)
	}
}

// The pid limit is raised to a live system's, never lowered.
func TestRaisePidMax(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pid_max")
	os.WriteFile(f, []byte("32768\n"), 0o644)
	if err := raisePidMax(f, livePidMax); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "4194304\n" {
		t.Errorf("pid_max = %q", b)
	}
	os.WriteFile(f, []byte("8388608\n"), 0o644)
	if err := raisePidMax(f, livePidMax); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "8388608\n" {
		t.Errorf("pid_max lowered to %q", b)
	}
	if err := raisePidMax(filepath.Join(t.TempDir(), "missing"), livePidMax); err == nil {
		t.Error("no error for a missing file")
	}
}
