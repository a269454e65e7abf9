package guest

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Behaviour modes (VM_BEHAVIOUR): after a cell's scap-open check passed,
// libs' drivers_test runs against the cell's driver, with the smoke
// filter or in full; off runs nothing.
const (
	BehaviourOff   = "off"
	BehaviourSmoke = "smoke"
	BehaviourFull  = "full"
)

// BehaviourModes lists the modes, default first.
var BehaviourModes = []string{BehaviourSmoke, BehaviourFull, BehaviourOff}

// smokeTests are the drivers_test tests of the smoke mode: file, process,
// network and exec syscalls, the generic tracepoints and the ring buffer's
// ordering, each present in libs from 0.20.0 to main. The stand-in tree's
// drivers_test has some of the same names, so the one filter picks the
// same kind of tests in both.
var smokeTests = []string{
	// file
	"SyscallEnter.openE", "SyscallEnter.openatE",
	"SyscallExit.openX_success", "SyscallExit.openX_failure", "SyscallExit.openatX_success",
	"SyscallExit.closeX", "SyscallExit.dupX", "SyscallExit.mkdirX", "SyscallExit.unlinkX",
	"SyscallExit.renameX", "SyscallExit.chdirX", "SyscallExit.getcwdX_success", "SyscallExit.mmapX",
	// process
	"SyscallExit.cloneX_father", "SyscallExit.cloneX_child", "SyscallExit.clone3X_father",
	"SyscallExit.clone3X_child", "SyscallExit.forkX_father", "SyscallExit.forkX_child",
	"SyscallExit.killX", "SyscallExit.setuidX",
	// exec
	"SyscallExit.execveX_failure", "SyscallExit.execveatX_failure",
	// network
	"SyscallEnter.connectE_INET_failure", "SyscallExit.socketX", "SyscallExit.bindX_INET",
	"SyscallExit.connectX_INET", "SyscallExit.socketpairX_success", "SyscallExit.sendtoX_empty",
	"SyscallExit.recvfromX_fail",
	// generic tracepoints and the buffer
	"GenericTracepoints.sched_proc_exit_no_children", "GenericTracepoints.sched_switch",
	"GenericTracepoints.signal_deliver", "GenericTracepoints.page_fault_user",
	"Actions.read_in_order_from_buffer",
}

// SmokeFilter is the googletest filter of the smoke mode.
func SmokeFilter() string { return strings.Join(smokeTests, ":") }

// FullExclusions are the tests the full mode leaves out, each because it
// fails or hangs whatever the driver does, and why. Found on libs main
// under TCG (README, Behaviour tests).
var FullExclusions = map[string]string{
	"SyscallExit.process_vm_readvX_success": "races its own child: the SIGUSR2 that ends the child's pause() can arrive before the pause, which then waits forever, and the test with it (seen on a one-CPU guest)",
	"SyscallExit.keyctlX_session_to_parent": "expects KEYCTL_SESSION_TO_PARENT to fail because the caller is multi-threaded, which drivers_test with one engine is not: the call succeeds",
}

// FullFilter is the googletest filter of the full mode: every test but
// FullExclusions.
func FullFilter() string {
	names := make([]string, 0, len(FullExclusions))
	for n := range FullExclusions {
		names = append(names, n)
	}
	slices.Sort(names)
	return "-" + strings.Join(names, ":")
}

// BehaviourRun tells the agent how to run drivers_test for a cell whose
// scap-open check passed.
type BehaviourRun struct {
	Mode string `json:"mode"` // smoke or full
	// Unavailable is set when the host has no drivers_test for the cell
	// (it did not build): the agent reports it as the behaviour's error.
	Unavailable string `json:"unavailable,omitempty"`
	Root        string `json:"root,omitempty"`   // chroot with drivers_test and its libraries
	Binary      string `json:"binary,omitempty"` // drivers_test, inside Root
	// Args select the driver: "-k <module inside Root>" or "-m".
	Args    []string `json:"args,omitempty"`
	Filter  string   `json:"filter,omitempty"` // --gtest_filter; "" runs every test
	Seconds int      `json:"seconds"`          // time limit of the whole run
	// Modules are modules of the kernel's own that some tests need and a
	// normal system loads on demand (overlay, for the exec tests on an
	// overlayfs upper layer), loaded before the run, dependencies first;
	// one already loaded is fine.
	Modules []string `json:"modules,omitempty"`
}

// Behaviour is what drivers_test found for one cell: counts from its
// googletest XML report, the failing tests with the first line of each
// one's first failure, and the counts per test suite.
type Behaviour struct {
	Mode    string  `json:"mode"`
	Passed  int     `json:"passed"`
	Failed  int     `json:"failed"`
	Skipped int     `json:"skipped"`
	Seconds float64 `json:"seconds"`
	// Failing are the failed tests (Suite.Name), in the order they ran.
	Failing []string `json:"failing,omitempty"`
	// Failures is the first googletest failure of each failing test, on
	// one line ("file.cpp:45: Expected equality of these values: ...").
	Failures map[string]string `json:"failures,omitempty"`
	Suites   []SuiteCount      `json:"suites,omitempty"`
	// Error is set when drivers_test could not give an answer: it did not
	// build, did not start, failed in its setup (the driver could not be
	// opened), crashed or hit its time limit before writing its report.
	Error string `json:"error,omitempty"`
	// Unavailable says Error is that the host had no drivers_test for
	// the cell: another VM would not change it.
	Unavailable bool `json:"unavailable,omitempty"`
	// Output is drivers_test's output when Error is set or a test failed
	// (long output keeps head and tail).
	Output string `json:"output,omitempty"`
}

// SuiteCount is one googletest suite's counts.
type SuiteCount struct {
	Name    string `json:"name"`
	Passed  int    `json:"passed"`
	Failed  int    `json:"failed"`
	Skipped int    `json:"skipped"`
}

// Total is the number of tests that ran or were skipped.
func (b *Behaviour) Total() int { return b.Passed + b.Failed + b.Skipped }

// Summary is one line: "3 of 4 passed, 1 failed: SyscallEnter.openatE".
func (b *Behaviour) Summary() string {
	if b.Error != "" {
		return "drivers_test: " + b.Error
	}
	s := fmt.Sprintf("%d of %d passed", b.Passed, b.Total())
	if b.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", b.Skipped)
	}
	if b.Failed > 0 {
		names := b.Failing
		more := ""
		if len(names) > 3 {
			names, more = names[:3], fmt.Sprintf(" and %d more", len(b.Failing)-3)
		}
		s += fmt.Sprintf(", %d failed: %s%s", b.Failed, strings.Join(names, ", "), more)
	}
	return s
}

// gtestXML is the part of googletest's XML report read here; it is the
// same from googletest 1.10 (bullseye) to 1.16.
type gtestXML struct {
	Suites []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name     string `xml:"name,attr"`
			Status   string `xml:"status,attr"` // run, notrun
			Result   string `xml:"result,attr"` // completed, skipped, suppressed (1.11+)
			Failures []struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// ParseGTestXML reads googletest's XML report (--gtest_output=xml:FILE)
// into counts, failing tests and their first failure lines.
func ParseGTestXML(r io.Reader) (*Behaviour, error) {
	var x gtestXML
	if err := xml.NewDecoder(r).Decode(&x); err != nil {
		return nil, fmt.Errorf("googletest report: %w", err)
	}
	b := &Behaviour{}
	for _, s := range x.Suites {
		sc := SuiteCount{Name: s.Name}
		for _, c := range s.Cases {
			name := s.Name + "." + c.Name
			switch {
			case len(c.Failures) > 0:
				sc.Failed++
				b.Failing = append(b.Failing, name)
				if b.Failures == nil {
					b.Failures = map[string]string{}
				}
				msg := c.Failures[0].Message
				if msg == "" {
					msg = c.Failures[0].Text
				}
				b.Failures[name] = FailureLine(msg)
			case c.Skipped != nil || c.Result == "skipped" || c.Result == "suppressed" || c.Status == "notrun":
				sc.Skipped++
			default:
				sc.Passed++
			}
		}
		b.Passed, b.Failed, b.Skipped = b.Passed+sc.Passed, b.Failed+sc.Failed, b.Skipped+sc.Skipped
		if i := slices.IndexFunc(b.Suites, func(o SuiteCount) bool { return o.Name == sc.Name }); i >= 0 {
			b.Suites[i].Passed += sc.Passed
			b.Suites[i].Failed += sc.Failed
			b.Suites[i].Skipped += sc.Skipped
		} else {
			b.Suites = append(b.Suites, sc)
		}
	}
	return b, nil
}

// FailureLine puts a googletest failure message on one line: its location
// ("file.cpp:45"), then what failed, at most 240 characters.
func FailureLine(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	s := parts[0]
	if len(parts) > 1 {
		s += ": " + strings.Join(parts[1:], " ")
	}
	if len(s) > 240 {
		s = s[:237] + "..."
	}
	return s
}
