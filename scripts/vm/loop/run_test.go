package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// scriptedLane is a Lane whose runs follow a script: each run calls step
// with the run's number and cells and returns what it returns. It stands
// for a provider in the tests of the loop's own logic.
type scriptedLane struct {
	jobs   []Job
	step   func(run int, cells []Cell) ([]Attempt, error)
	runs   int
	order  [][]string // the cells of each run
	closed []bool     // Close's interrupted, per call
}

func (l *scriptedLane) Jobs() []Job { return l.jobs }

func (l *scriptedLane) Run(ctx context.Context, j Job, done func(Attempt)) error {
	l.runs++
	var ids []string
	for _, c := range j.Cells {
		ids = append(ids, c.ID())
	}
	l.order = append(l.order, ids)
	atts, err := l.step(l.runs, j.Cells)
	for _, a := range atts {
		done(a)
	}
	return err
}

func (l *scriptedLane) Close(ctx context.Context, interrupted bool) error {
	l.closed = append(l.closed, interrupted)
	return nil
}

func testCells(t *testing.T, cfgBuild func(string) string, k string, specs ...string) []Cell {
	var cells []Cell
	for _, s := range specs {
		comp, drv, _ := strings.Cut(s, "/")
		c := Cell{Cell: results.Cell{Kernel: k, Compiler: comp, Driver: drv}}
		c.Artifact = cfgBuild(layout.Artifact(comp, k, drv, ""))
		touch(t, c.Artifact)
		cells = append(cells, c)
	}
	return cells
}

func attempt(c Cell, status, kind string, events int, reason string) Attempt {
	return Attempt{Cell: c, Outcome: guest.Outcome{Status: status, Kind: kind, Events: events, Reason: reason},
		Record:  &guest.Record{Events: events, Exit: 0, LoadSeconds: 1.5, Capture: 2.5, Output: "Events correctly captured (SCAP_SUCCESS): 42\n"},
		Seconds: 9, VM: "scripted"}
}

// The loop's own rules, for every provider: an infrastructure error is
// retried up to VM_RETRIES times, after the cells the run never reached;
// a Final one is not; real failures never are; each cell's final attempt
// is recorded with its attempts, times and log, and driver_ok follows the
// latest outcome.
func TestDriveRetriesAndRecords(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_RETRIES": "2"})
	const k = "6.1.0-50-cloud-amd64"
	cells := testCells(t, func(p string) string { return cfg.Path(p) }, k, "gcc-12/kmod", "gcc-14/kmod", "clang-19/bpf", "clang-18/bpf")
	flaky, failing, final, never := cells[0], cells[1], cells[2], cells[3]
	l := &scriptedLane{jobs: []Job{{Name: "j", Kernel: kernel.Entry{UnameR: k}, Cells: cells}}}
	l.step = func(run int, cs []Cell) ([]Attempt, error) {
		var out []Attempt
		for _, c := range cs {
			switch c.ID() {
			case flaky.ID():
				if run < 3 {
					out = append(out, attempt(c, guest.Error, "", -1, "guest lost"))
				} else {
					out = append(out, attempt(c, guest.Pass, "", 42, ""))
				}
			case failing.ID():
				out = append(out, attempt(c, guest.Fail, guest.KindEvents, 3, "3 events"))
			case final.ID():
				a := attempt(c, guest.Error, "", -1, "guest not ready")
				a.Final = true
				out = append(out, a)
			case never.ID():
				// Not reached in the first run: the VM ended before it.
				if run > 1 {
					out = append(out, attempt(c, guest.Pass, "", 42, ""))
				}
			}
		}
		return out, nil
	}
	sum, err := Drive(t.Context(), cfg, ui.Discard(), "scripted", &Session{Parallel: 1, Lanes: []Lane{l}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{flaky.ID(), failing.ID(), final.ID(), never.ID()},
		{never.ID(), flaky.ID()}, // the cell not reached first, the retry last
		{flaky.ID()},
	}
	if got := l.order; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runs %v, want %v", got, want)
	}
	if len(l.closed) != 1 || l.closed[0] {
		t.Errorf("Close calls %v, want one, not interrupted", l.closed)
	}
	if sum.Len() != 4 {
		t.Errorf("summary %+v", sum.List())
	}
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c        Cell
		status   string
		attempts int
	}{{flaky, results.TestPass, 3}, {failing, results.TestFail, 1}, {final, results.TestError, 1}, {never, results.TestPass, 1}} {
		got := rf.Find(tc.c.Kernel, tc.c.Compiler, tc.c.Driver)
		if got == nil || got.Test == nil || got.Test.Status != tc.status || got.Test.Attempts != tc.attempts ||
			got.Test.Provider != "scripted" || got.Test.Seconds != 9 || got.Test.Load != 1.5 || got.Test.Capture != 2.5 {
			t.Errorf("%s: recorded %+v, want %s after %d attempts", tc.c.ID(), got.Test, tc.status, tc.attempts)
			continue
		}
		b, err := os.ReadFile(cfg.Path(got.Test.Log))
		if err != nil || !strings.Contains(string(b), "cell:     "+tc.c.ID()) || !strings.Contains(string(b), "vm:       scripted") ||
			!strings.Contains(string(b), "--- scap-open output\nEvents correctly captured") {
			t.Errorf("%s: log %s: %v\n%s", tc.c.ID(), got.Test.Log, err, b)
		}
	}
	if _, err := os.Stat(cfg.Path(results.DriverOKPath(flaky.Cell))); err != nil {
		t.Errorf("a pass keeps its artifact in driver_ok: %v", err)
	}
	if _, err := os.Stat(cfg.Path(results.DriverOKPath(failing.Cell))); !os.IsNotExist(err) {
		t.Errorf("a failure has no artifact in driver_ok: %v", err)
	}
}

// A lane that breaks down keeps what it ran, records its cells that did
// not run as errors naming why, the later jobs' too, and the loop says so;
// a run that reaches none of its cells and reports none cannot loop
// forever.
func TestDriveLaneBreaksDown(t *testing.T) {
	cfg := testConfig(t, nil)
	build := func(p string) string { return cfg.Path(p) }
	a := testCells(t, build, "6.1.0-50-cloud-amd64", "gcc-12/kmod", "clang-19/bpf")
	b := testCells(t, build, "6.12.57+deb13-cloud-amd64", "gcc-14/kmod")
	l := &scriptedLane{jobs: []Job{
		{Name: "first", Kernel: kernel.Entry{UnameR: a[0].Kernel}, Cells: a},
		{Name: "second", Kernel: kernel.Entry{UnameR: b[0].Kernel}, Cells: b},
	}}
	l.step = func(run int, cs []Cell) ([]Attempt, error) {
		return []Attempt{attempt(cs[0], guest.Pass, "", 42, "")}, errors.New("VM debian does not come back")
	}
	empty := &scriptedLane{jobs: []Job{{Name: "empty", Kernel: kernel.Entry{UnameR: "5.10.0-35-cloud-amd64"},
		Cells: testCells(t, build, "5.10.0-35-cloud-amd64", "gcc-10/kmod")}}}
	empty.step = func(int, []Cell) ([]Attempt, error) { return nil, nil }
	_, err := Drive(t.Context(), cfg, ui.Discard(), "scripted", &Session{Parallel: 2, Lanes: []Lane{l, empty}}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "first: VM debian does not come back") {
		t.Errorf("Drive: %v", err)
	}
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c      Cell
		reason string
	}{
		{a[1], "VM debian does not come back"},
		{b[0], "not run: the VM that was to run it broke down on 6.1.0-50-cloud-amd64: VM debian does not come back"},
	} {
		got := rf.Find(tc.c.Kernel, tc.c.Compiler, tc.c.Driver)
		if got == nil || got.Test == nil || got.Test.Status != results.TestError || got.Test.Reason != tc.reason {
			t.Errorf("%s: recorded %+v, want error %q", tc.c.ID(), got.Test, tc.reason)
		}
	}
	if got := rf.Find(a[0].Kernel, a[0].Compiler, a[0].Driver); got == nil || got.Test == nil || got.Test.Status != results.TestPass {
		t.Errorf("%s, which ran before the lane broke down: %+v", a[0].ID(), got)
	}
	c := empty.jobs[0].Cells[0]
	if got := rf.Find(c.Kernel, c.Compiler, c.Driver); got == nil || got.Test == nil || got.Test.Status != results.TestError || empty.runs != 1 {
		t.Errorf("a run that reached nothing: %d runs, recorded %+v", empty.runs, got)
	}
}

// Ctrl-C: Drive returns the context's error, records nothing for the cell
// in flight, and closes the lane as interrupted.
func TestDriveInterrupted(t *testing.T) {
	cfg := testConfig(t, nil)
	cells := testCells(t, func(p string) string { return cfg.Path(p) }, "6.1.0-50-cloud-amd64", "gcc-12/kmod")
	ctx, cancel := context.WithCancel(t.Context())
	l := &scriptedLane{jobs: []Job{{Name: "j", Kernel: kernel.Entry{UnameR: cells[0].Kernel}, Cells: cells}}}
	l.step = func(int, []Cell) ([]Attempt, error) {
		cancel()
		return nil, context.Canceled
	}
	if _, err := Drive(ctx, cfg, ui.Discard(), "scripted", &Session{Parallel: 1, Lanes: []Lane{l}}, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("Drive: %v", err)
	}
	if len(l.closed) != 1 || !l.closed[0] {
		t.Errorf("Close calls %v, want one, interrupted", l.closed)
	}
	rf, _ := results.Load(cfg.Path(layout.Results))
	if got := rf.Find(cells[0].Kernel, "gcc-12", "kmod"); got != nil && got.Test != nil {
		t.Errorf("an interrupted cell was recorded: %+v", got.Test)
	}
}

// A cell's deadline covers its load, the load's retry and the capture,
// and drivers_test with the stop of one at its limit when it runs.
func TestCellLimit(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_LOAD_SECONDS": "90", "VM_TEST_SECONDS": "20", "VM_BEHAVIOUR": "off"})
	if got := CellLimit(cfg, time.Minute); got != 350*time.Second {
		t.Errorf("CellLimit = %s, want 350s (3 x 90 s + 20 s + 60 s)", got)
	}
	cfg = testConfig(t, map[string]string{"VM_LOAD_SECONDS": "90", "VM_TEST_SECONDS": "20", "VM_BEHAVIOUR_SECONDS": "100"})
	if got := CellLimit(cfg, time.Minute); got != 465*time.Second {
		t.Errorf("CellLimit = %s, want 465s (3 x 90 s + 20 s + 60 s + 100 s + 15 s)", got)
	}
}
