package guest

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/gtest-1.12.xml is the report Debian's googletest 1.12 wrote for
// a small program of ours: a failed EXPECT_EQ, a pass, a GTEST_SKIP and a
// failed ASSERT_TRUE with a message, in three suites.
func TestParseGTestXML(t *testing.T) {
	f, err := os.Open("testdata/gtest-1.12.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := ParseGTestXML(f)
	if err != nil {
		t.Fatal(err)
	}
	if b.Passed != 1 || b.Failed != 2 || b.Skipped != 1 {
		t.Errorf("passed %d, failed %d, skipped %d; want 1, 2, 1", b.Passed, b.Failed, b.Skipped)
	}
	if want := []string{"SyscallEnter.openatE", "SyscallExit.closeX"}; !slices.Equal(b.Failing, want) {
		t.Errorf("failing %v, want %v", b.Failing, want)
	}
	if got, want := b.Failures["SyscallEnter.openatE"], "t.cpp:2: Expected equality of these values: got Which is: -99 want Which is: -100"; got != want {
		t.Errorf("first failure line\n got %q\nwant %q", got, want)
	}
	if got := b.Failures["SyscallExit.closeX"]; !strings.HasPrefix(got, "t.cpp:5: Value of: false") || !strings.HasSuffix(got, "no event") {
		t.Errorf("closeX failure line %q", got)
	}
	want := []SuiteCount{{"SyscallEnter", 1, 1, 0}, {"GenericTracepoints", 0, 0, 1}, {"SyscallExit", 0, 1, 0}}
	if !slices.Equal(b.Suites, want) {
		t.Errorf("suites %v, want %v", b.Suites, want)
	}
	if s := b.Summary(); s != "1 of 4 passed, 1 skipped, 2 failed: SyscallEnter.openatE, SyscallExit.closeX" {
		t.Errorf("summary %q", s)
	}
}

func TestParseGTestXMLRejectsNonXML(t *testing.T) {
	if _, err := ParseGTestXML(strings.NewReader("Segmentation fault\n")); err == nil {
		t.Error("no error for a report that is not XML")
	}
}

// The smoke filter is about thirty exact test names, no wildcards, no
// duplicates, and it selects the stand-in's tests of the same names.
func TestSmokeFilter(t *testing.T) {
	names := strings.Split(SmokeFilter(), ":")
	if len(names) < 25 || len(names) > 40 {
		t.Errorf("%d tests in the smoke filter, want about 30", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if strings.ContainsAny(n, "*?-") || !strings.Contains(n, ".") || seen[n] {
			t.Errorf("bad or repeated filter entry %q", n)
		}
		seen[n] = true
	}
	for _, n := range []string{"SyscallEnter.openE", "SyscallEnter.openatE", "SyscallEnter.connectE_INET_failure"} {
		if !seen[n] {
			t.Errorf("%s (a stand-in test) is not in the smoke filter", n)
		}
	}
}

// A cell whose scap-open check passed takes drivers_test's answer: failing
// tests are a behaviour failure naming them; no answer is an error (retried
// unless there is no drivers_test at all); a pass stays a pass.
func TestClassifyWithBehaviour(t *testing.T) {
	pass := func(b *Behaviour) *Record {
		return &Record{Type: TypeResult, Cell: "c", Exit: 0, Events: 40, Opened: true, Behaviour: b}
	}
	ok := &Behaviour{Mode: BehaviourSmoke, Passed: 3, Suites: []SuiteCount{{"SyscallEnter", 3, 0, 0}}}
	bad := &Behaviour{Mode: BehaviourSmoke, Passed: 2, Failed: 1, Failing: []string{"SyscallEnter.openatE"},
		Failures: map[string]string{"SyscallEnter.openatE": "drivers_test.cpp:80: Expected equality of these values: ev->arg0 Which is: 18446744073709551517 want Which is: 18446744073709551516"}}
	for _, c := range []struct {
		name    string
		b       *Behaviour
		want    string
		reason  string
		retried bool
	}{
		{"no behaviour asked", nil, "pass", "40 events", false},
		{"behaviour passed", ok, "pass", "behaviour 3 of 3 passed", false},
		{"a test failed", bad, "fail/behaviour", "behaviour: 2 of 3 passed, 1 failed: SyscallEnter.openatE", false},
		{"drivers_test crashed", &Behaviour{Mode: BehaviourSmoke, Error: "no report: drivers_test was killed by SIGSEGV"}, "error", "behaviour unknown, drivers_test: no report", false},
		{"no drivers_test", &Behaviour{Mode: BehaviourSmoke, Error: "clang-19/drivers_test did not build", Unavailable: true}, "error", "did not build", true},
		{"no test matched", &Behaviour{Mode: BehaviourSmoke}, "error", "ran no test", false},
	} {
		o := Classify(pass(c.b), true, "", nil, 30)
		if o.String() != c.want || !strings.Contains(o.Reason, c.reason) || o.Retried != c.retried {
			t.Errorf("%s: %s %q retried %v; want %s, reason with %q, retried %v", c.name, o, o.Reason, o.Retried, c.want, c.reason, c.retried)
		}
		if c.b == bad && (len(o.Detail) != 1 || !strings.Contains(o.Detail[0], "ev->arg0")) {
			t.Errorf("%s: detail %q does not name the failing test's first line", c.name, o.Detail)
		}
	}
	// A cell that failed its scap-open check keeps that failure.
	rec := pass(bad)
	rec.Events = 3
	if o := Classify(rec, true, "", nil, 30); o.Kind != KindEvents {
		t.Errorf("too few events with a failing behaviour: %s, want fail/events", o)
	}
}

func TestScapOpenPassed(t *testing.T) {
	good := Record{Exit: 0, Events: 30}
	if !ScapOpenPassed(&good, 30) {
		t.Error("a clean run with enough events did not pass")
	}
	for name, r := range map[string]Record{
		"few events": {Exit: 0, Events: 29},
		"splat":      {Exit: 0, Events: 30, Splat: []string{"WARNING: CPU: 0 PID: 1 at x"}},
		"crash":      {Exit: -1, Signal: "SIGSEGV", Events: 30},
		"killed":     {Exit: 0, Events: 30, TimedOut: true, Killed: true},
		"not open":   {Events: -1, NotOpen: "driver not open after 240 s"},
	} {
		if ScapOpenPassed(&r, 30) {
			t.Errorf("%s: passed", name)
		}
	}
}

// The full mode runs every test but the documented exclusions.
func TestFullFilter(t *testing.T) {
	f := FullFilter()
	if !strings.HasPrefix(f, "-") || strings.Count(f, ":") != len(FullExclusions)-1 {
		t.Errorf("full filter %q", f)
	}
	for name, why := range FullExclusions {
		if !strings.Contains(f, name) || why == "" {
			t.Errorf("%s: in filter %v, reason %q", name, strings.Contains(f, name), why)
		}
	}
}
