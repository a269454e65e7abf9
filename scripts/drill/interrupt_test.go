package drill

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// checkQuickExit fails t when the run outlived mage's window after Ctrl-C
// or mage had to give up waiting for the targets' cleanup.
func checkQuickExit(t *testing.T, r *e2etest.MageRun, took time.Duration) {
	t.Helper()
	if took > e2etest.MageWindow+3*time.Second {
		t.Errorf("%s took %.1fs to end after Ctrl-C", r.Target, took.Seconds())
	}
	if strings.Contains(r.Output(), "cleanup timeout exceeded") {
		t.Errorf("%s: the cleanup did not finish in mage's window:\n%s", r.Target, r.Output())
	}
}

var downloadedRe = regexp.MustCompile(`kernel: \d+ ok, \d+ failed; ([0-9.]+) (KiB|MiB) downloaded`)

// Ctrl-C while the kernel packages download: the stage stops within
// mage's window, no package is under its final name unless whole and
// verified, the partial transfer is kept, and the next run resumes it
// instead of starting over.
func TestDrillInterruptDownload(t *testing.T) {
	// At the mirror's full speed a package can go from 1 MiB to whole
	// between two looks; at 4 MiB/s for all transfers together the 6.1
	// kernel's packages take about ten seconds.
	d := newDrill(t, "download", map[string]string{"VM_DOWNLOAD_RATE": "4M"})
	// The packages are fetched again (the shared cache keeps its copies).
	for _, sub := range []string{"kernels", "headers"} {
		if err := os.RemoveAll(d.path(sub)); err != nil {
			t.Fatal(err)
		}
	}
	r := d.start(t, "kernel")
	var part string
	var partSize int64
	// A partial of some size, so that its resume shows in the numbers.
	r.WaitFor("partial download of 1 MiB", 10*time.Minute, func() bool {
		ps, _ := filepath.Glob(d.path("*", ".partial", "*.part"))
		for _, p := range ps {
			if fi, err := os.Stat(p); err == nil && fi.Size() >= 1<<20 {
				part = p
				return true
			}
		}
		return false
	})
	checkQuickExit(t, r, r.Interrupt())
	d.checkLeftovers(t)
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatalf("the partial download is gone, the next run cannot resume it: %v", err)
	}
	partSize = fi.Size()
	t.Logf("interrupted with %d bytes of %s", partSize, filepath.Base(part))

	out := d.run(t, "kernel", 10*time.Minute)
	m := downloadedRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no download summary in:\n%s", out)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	got := int64(n * 1024)
	if m[2] == "MiB" {
		got = int64(n * 1024 * 1024)
	}
	var total int64
	for _, sub := range []string{"kernels", "headers"} {
		debs, _ := filepath.Glob(d.path(sub, "*.deb"))
		for _, p := range debs {
			if fi, err := os.Stat(p); err == nil {
				total += fi.Size()
			}
		}
	}
	t.Logf("the second run downloaded %s %s of %d bytes", m[1], m[2], total)
	// The summary rounds to 0.1 MiB.
	if got > total-partSize+(1<<20)/10 {
		t.Errorf("the second run downloaded %d bytes of %d: it did not resume the %d bytes it had", got, total, partSize)
	}
	d.checkLeftovers(t)
}

var compiledRe = regexp.MustCompile(`^compile: ok +(\S+) `)

// Ctrl-C while cells compile, once one of them has finished: every
// container of the run is gone within mage's window, no driver is under
// its final name unless whole, and the next run builds only the cells
// that had not finished.
func TestDrillInterruptCompile(t *testing.T) {
	d := newDrill(t, "compile", nil)
	d.run(t, "kernel", 10*time.Minute)
	d.resetCompile(t)

	r := d.start(t, "compile")
	first := compiledRe.FindStringSubmatch(r.WaitLine(compiledRe, 10*time.Minute))[1]
	if len(d.containers(t)) == 0 {
		t.Skipf("every cell finished at once (%s first): nothing in flight to interrupt", first)
	}
	checkQuickExit(t, r, r.Interrupt())
	d.checkLeftovers(t)
	for _, c := range d.cells(t) {
		if c.Compile != nil && c.Compile.Status != results.CompileOK {
			t.Errorf("%s: recorded %s (%s) by an interrupted run", c.ID(), c.Compile.Status, c.Compile.Reason)
		}
	}

	out := d.run(t, "compile", 10*time.Minute)
	if regexp.MustCompile(`(?m)^compile: ok +` + regexp.QuoteMeta(first) + ` `).MatchString(out) {
		t.Errorf("the second run built %s again:\n%s", first, out)
	}
	d.checkLeftovers(t)
	for _, c := range d.cells(t) {
		if c.Compile == nil || c.Compile.Status != results.CompileOK {
			t.Errorf("%s: not built after the second run: %+v", c.ID(), c.Compile)
		}
	}
}

var testedRe = regexp.MustCompile(`^--- (\S+): (PASS|FAIL|SKIP|ERROR)`)

// Ctrl-C while a qemu VM tests a cell, once another cell has its answer:
// no qemu process of the build directory survives, the interrupted cell
// is not recorded as a failure, and the next loop tests only the cells
// without an answer.
func TestDrillInterruptLoop(t *testing.T) {
	// Two kmod cells on one kernel: one VM each, one at a time.
	d := newDrill(t, "loop", map[string]string{"VM_COMPILERS": "gcc-12,gcc-14", "VM_JOBS": "1", "VM_RETEST": "all"})
	d.run(t, "compile", 15*time.Minute)
	if err := os.RemoveAll(d.path("driver_ok")); err != nil {
		t.Fatal(err)
	}

	r := d.start(t, "loop")
	first := testedRe.FindStringSubmatch(r.WaitLine(testedRe, 10*time.Minute))[1]
	r.WaitFor("second VM", 2*time.Minute, func() bool { return len(d.qemus()) > 0 })
	checkQuickExit(t, r, r.Interrupt())
	d.checkLeftovers(t)
	for _, c := range d.cells(t) {
		if c.Test != nil && c.ID() != first && c.Test.Status != results.TestPass && c.Test.Status != results.TestNotRun {
			t.Errorf("%s: recorded %s (%s) by an interrupted loop", c.ID(), c.Test.Status, c.Test.Reason)
		}
	}

	d.env["VM_RETEST"] = "failed"
	out := d.run(t, "loop", 15*time.Minute)
	if regexp.MustCompile(`(?m)^--- ` + regexp.QuoteMeta(first) + `: `).MatchString(out) {
		t.Errorf("the second loop tested %s again:\n%s", first, out)
	}
	d.checkLeftovers(t)
	for _, c := range d.cells(t) {
		if c.Test == nil || c.Test.Status != results.TestPass {
			t.Errorf("%s: no pass after the second loop: %+v", c.ID(), c.Test)
		}
	}
}
