package report

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// The JUnit XML model, as CI systems (Jenkins, GitLab, GitHub actions
// reporters) read it: one suite per stage, one test case per cell.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string          `xml:"name,attr"`
	Tests     int             `xml:"tests,attr"`
	Failures  int             `xml:"failures,attr"`
	Errors    int             `xml:"errors,attr"`
	Skipped   int             `xml:"skipped,attr"`
	Time      string          `xml:"time,attr"`
	Timestamp string          `xml:"timestamp,attr,omitempty"`
	Props     *junitProps     `xml:"properties,omitempty"`
	Cases     []junitTestcase `xml:"testcase"`
	seconds   float64
}

type junitProps struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitTestcase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnit renders the results as JUnit XML: a "compile" and a "test" suite,
// each with one test case per cell named compiler/kernel/driver. Compile
// failures and failed tests are failures; infra errors are errors, and so
// is a cell whose scap-open did not build (it has no answer, and a CI must
// not read it as a skip); skips and cells not compiled or not tested yet
// are skipped. In a grid of several architectures every class name says
// the cell's: compile.arm64.kmod.
func JUnit(f *results.File) ([]byte, error) {
	compile := junitSuite{Name: "compile"}
	test := junitSuite{Name: "test"}
	behaviour := junitSuite{Name: "behaviour"}
	g := NewGrid(f)
	withArch := func(c results.Cell, tc junitTestcase) junitTestcase {
		if g.MultiArch() {
			kind, driver, _ := strings.Cut(tc.Classname, ".")
			tc.Classname = kind + "." + g.Arch(c.Kernel) + "." + driver
		}
		return tc
	}
	for _, c := range f.Sorted() {
		tc, secs := compileCase(c)
		compile.add(withArch(c, tc), secs)
		tc, secs = testCase(c)
		test.add(withArch(c, tc), secs)
		for i, tc := range behaviourCases(c) {
			tc = withArch(c, tc)
			secs := 0.0
			if i == 0 {
				secs = c.Test.Behaviour.Seconds // the whole run, on its first suite
				tc.Time = seconds(secs)
			}
			behaviour.add(tc, secs)
		}
	}
	root := junitSuites{Name: "driver compatibility"}
	suites := []*junitSuite{&compile, &test}
	if behaviour.Tests > 0 {
		suites = append(suites, &behaviour)
	}
	for _, s := range suites {
		s.Time = seconds(s.seconds)
		if !f.Run.Time.IsZero() {
			s.Timestamp = f.Run.Time.UTC().Format("2006-01-02T15:04:05")
		}
		s.Props = runProps(f.Run)
		root.Tests += s.Tests
		root.Failures += s.Failures
		root.Errors += s.Errors
		root.Skipped += s.Skipped
		root.Suites = append(root.Suites, *s)
	}
	root.Time = seconds(compile.seconds + test.seconds + behaviour.seconds)
	out, err := xml.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode JUnit XML: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

func runProps(r results.Run) *junitProps {
	var p junitProps
	add := func(name, v string) {
		if v != "" {
			p.Props = append(p.Props, junitProp{name, v})
		}
	}
	add("tree", r.Tree)
	add("source", r.Source)
	add("source_hash", r.SourceHash)
	add("provider", r.Provider)
	add("accel", r.Accel)
	if len(p.Props) == 0 {
		return nil
	}
	return &p
}

func (s *junitSuite) add(tc junitTestcase, secs float64) {
	s.Tests++
	s.seconds += secs
	switch {
	case tc.Failure != nil:
		s.Failures++
	case tc.Error != nil:
		s.Errors++
	case tc.Skipped != nil:
		s.Skipped++
	}
	s.Cases = append(s.Cases, tc)
}

func seconds(s float64) string { return fmt.Sprintf("%.3f", s) }

func compileCase(c results.Cell) (junitTestcase, float64) {
	tc := junitTestcase{Classname: "compile." + c.Driver, Name: c.ID(), Time: seconds(0)}
	cp := c.Compile
	if cp == nil {
		tc.Skipped = &junitSkipped{Message: "not compiled yet"}
		return tc, 0
	}
	tc.Time = seconds(cp.Seconds)
	switch cp.Status {
	case results.CompileFail:
		tc.Failure = &junitProblem{Message: orDefault(cp.Reason, "compile failed"), Type: "compile", Text: logLine(cp.Log)}
	case results.CompileSkip:
		tc.Skipped = &junitSkipped{Message: orDefault(cp.Reason, "skipped")}
	case results.CompileError:
		tc.Error = &junitProblem{Message: orDefault(cp.Reason, "infra error"), Type: "infra", Text: logLine(cp.Log)}
	}
	if cp.Log != "" && tc.Failure == nil && tc.Error == nil {
		tc.SystemOut = logLine(cp.Log)
	}
	return tc, cp.Seconds
}

func testCase(c results.Cell) (junitTestcase, float64) {
	tc := junitTestcase{Classname: "test." + c.Driver, Name: c.ID(), Time: seconds(0)}
	switch {
	case c.Compile != nil && c.Compile.Status == results.CompileFail:
		tc.Skipped = &junitSkipped{Message: "not compiled"}
		return tc, 0
	case c.Compile != nil && c.Compile.Status == results.CompileError:
		tc.Skipped = &junitSkipped{Message: "not compiled: infra error"}
		return tc, 0
	case c.Compile != nil && c.Compile.Status == results.CompileSkip:
		tc.Skipped = &junitSkipped{Message: orDefault(c.Compile.Reason, "compile skipped")}
		return tc, 0
	case c.Test == nil:
		tc.Skipped = &junitSkipped{Message: "not tested yet"}
		return tc, 0
	}
	t := c.Test
	tc.Time = seconds(t.Seconds)
	detail := fmt.Sprintf("events: %d, attempts: %d", t.Events, t.Attempts)
	if l := logLine(t.Log); l != "" {
		detail += "\n" + l
	}
	switch t.Status {
	case results.TestFail:
		tc.Failure = &junitProblem{Message: orDefault(t.Reason, "test failed"), Type: orDefault(t.Kind, "fail"), Text: detail}
	case results.TestError:
		tc.Error = &junitProblem{Message: orDefault(t.Reason, "infra error"), Type: "infra", Text: detail}
	case results.TestSkip:
		tc.Skipped = &junitSkipped{Message: orDefault(t.Reason, "skipped")}
	case results.TestNotRun:
		tc.Skipped = &junitSkipped{Message: orDefault(t.Reason, "not run")}
	default:
		tc.SystemOut = detail
	}
	return tc, t.Seconds
}

// behaviourCases are the test cases of a cell's drivers_test run: one per
// googletest suite (SyscallExit, GenericTracepoints, ...), failed when a
// test of it failed, the failing tests and their first failure lines in
// its text; or one error when drivers_test gave no answer. One case per
// suite rather than per test: a full run is about 470 tests per cell, and
// a CI's test view drowns in that many passing rows per kernel, while the
// names that matter are all in the failures.
func behaviourCases(c results.Cell) []junitTestcase {
	if c.Test == nil || c.Test.Behaviour == nil {
		return nil
	}
	b := c.Test.Behaviour
	class := "behaviour." + c.Driver
	if b.Error != "" {
		return []junitTestcase{{Classname: class, Name: c.ID(), Time: seconds(b.Seconds),
			Error: &junitProblem{Message: "drivers_test: " + b.Error, Type: "infra", Text: logLine(c.Test.Log)}}}
	}
	var out []junitTestcase
	for _, s := range b.Suites {
		tc := junitTestcase{Classname: class, Name: c.ID() + " " + s.Name, Time: seconds(0)}
		total := s.Passed + s.Failed + s.Skipped
		switch {
		case s.Failed > 0:
			var lines []string
			for _, name := range b.Failing {
				if strings.HasPrefix(name, s.Name+".") {
					lines = append(lines, name+": "+b.Failures[name])
				}
			}
			if l := logLine(c.Test.Log); l != "" {
				lines = append(lines, l)
			}
			tc.Failure = &junitProblem{Message: fmt.Sprintf("%d of %d %s tests failed (%s)", s.Failed, total, s.Name, b.Mode),
				Type: "behaviour", Text: strings.Join(lines, "\n")}
		case s.Passed == 0 && s.Skipped > 0:
			tc.Skipped = &junitSkipped{Message: fmt.Sprintf("%d %s tests skipped", s.Skipped, s.Name)}
		default:
			tc.SystemOut = fmt.Sprintf("%d of %d passed, %d skipped (%s)", s.Passed, total, s.Skipped, b.Mode)
		}
		out = append(out, tc)
	}
	return out
}

func logLine(path string) string {
	if path == "" {
		return ""
	}
	return "log: " + path
}

func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return def
}
