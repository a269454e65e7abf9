package compile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Without the shared scap-open, every compiled kmod and bpf cell is a test
// error naming its log and loses driver_ok; cells that did not compile are
// left alone; the stage's error wraps ErrScapOpen.
func TestRecordNoScapOpen(t *testing.T) {
	dir := t.TempDir()
	rp := filepath.Join(dir, "results.json")
	kmod := CellID{"6.1", "gcc-12", layout.Kmod}
	bpf := CellID{"6.1", "clang-19", layout.BPF}
	failed := CellID{"6.12", "gcc-12", layout.Kmod}
	err := results.Update(rp, func(f *results.File) error {
		f.SetCompile(kmod.Kernel, kmod.Compiler, kmod.Driver, results.Compile{Status: results.CompileOK, Key: "k"})
		f.SetTest(kmod.Kernel, kmod.Compiler, kmod.Driver, results.Test{Status: results.TestPass})
		f.SetCompile(bpf.Kernel, bpf.Compiler, bpf.Driver, results.Compile{Status: results.CompileOK, Key: "b"})
		f.SetCompile(failed.Kernel, failed.Compiler, failed.Driver, results.Compile{Status: results.CompileFail, Key: "f"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "driver_ok", "gcc-12", "6.1.ko"), "ko")
	jobs := []Job{
		{Driver: layout.Kmod, Compiler: "gcc-12", Cells: []CellID{kmod}},
		{Driver: layout.Kmod, Compiler: "gcc-12", Cells: []CellID{failed}},
		{Driver: layout.BPF, Compiler: "clang-19", Cells: []CellID{bpf}},
		{Driver: layout.ScapOpen, Key: "s1", Artifact: layout.ScapOpenBin, Log: layout.ScapOpenLog},
	}
	errs, err := recordNoScapOpen(rp, dir, jobs, map[string]string{"scap-open": "scap_open.c:5:2: error: #error x"}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrScapOpen) ||
		!strings.Contains(errs[0].Error(), filepath.Join(dir, layout.ScapOpenLog)) || !strings.Contains(errs[0].Error(), "2 compiled kmod and bpf cells cannot be tested") {
		t.Fatalf("errors %v", errs)
	}
	f, _ := results.Load(rp)
	for _, id := range []CellID{kmod, bpf} {
		c := f.Find(id.Kernel, id.Compiler, id.Driver)
		if c.Test == nil || c.Test.Status != results.TestError || c.Test.Reason != "scap-open did not build (log logs/compile/scap-open.log): scap_open.c:5:2: error: #error x" {
			t.Errorf("%s: %+v", id, c.Test)
		}
	}
	if c := f.Find(failed.Kernel, failed.Compiler, failed.Driver); c.Test != nil {
		t.Errorf("a cell that did not compile got a test record: %+v", c.Test)
	}
	if _, err := os.Stat(filepath.Join(dir, "driver_ok", "gcc-12", "6.1.ko")); !os.IsNotExist(err) {
		t.Errorf("driver_ok kept: %v", err)
	}

	// Built with this run's key: nothing to record.
	writeFile(t, filepath.Join(dir, layout.ScapOpenBin), "elf")
	writeFile(t, filepath.Join(dir, layout.ScapOpenBin+".key"), "s1\n")
	if errs, err := recordNoScapOpen(rp, dir, jobs, nil, ui.Discard()); err != nil || len(errs) != 0 {
		t.Errorf("scap-open built: %v %v", errs, err)
	}
	// A stale scap-open (another key) is not this run's.
	writeFile(t, filepath.Join(dir, layout.ScapOpenBin+".key"), "s0\n")
	if errs, _ := recordNoScapOpen(rp, dir, jobs, nil, ui.Discard()); len(errs) != 1 || !strings.Contains(errs[0].Error(), "it did not run") {
		t.Errorf("stale scap-open: %v", errs)
	}
	// No compiled cell needs it: said, not an error.
	var out bytes.Buffer
	if errs, _ := recordNoScapOpen(rp, dir, []Job{jobs[1], jobs[3]}, nil, ui.New(&out)); len(errs) != 0 || !strings.Contains(out.String(), "no compiled kmod or bpf cell needs it") {
		t.Errorf("no dependent cell: %v %q", errs, out.String())
	}
}

// A modern_bpf build whose probe built and whose scap-open did not is a
// compiled cell with a test error; a build that failed drops driver_ok.
func TestRecordOutcomes(t *testing.T) {
	dir := t.TempDir()
	rp := filepath.Join(dir, "results.json")
	modern := Job{Driver: layout.ModernBPF, Compiler: "clang-19", Key: "m", Log: "logs/compile/clang-19/modern_bpf.log",
		Cells: []CellID{{"6.1", "clang-19", layout.ModernBPF}, {"6.12", "clang-19", layout.ModernBPF}}}
	o := outcome{compile: results.Compile{Status: results.CompileOK, Key: "m", Log: modern.Log}, scapOpen: "error: x"}
	if err := record(rp, dir, modern, o); err != nil {
		t.Fatal(err)
	}
	f, _ := results.Load(rp)
	for _, id := range modern.Cells {
		c := f.Find(id.Kernel, id.Compiler, id.Driver)
		if c.Compile.Status != results.CompileOK || c.Test == nil || c.Test.Status != results.TestError ||
			c.Test.Reason != "scap-open did not build (log logs/compile/clang-19/modern_bpf.log): error: x" {
			t.Errorf("%s: %+v %+v", id, c.Compile, c.Test)
		}
	}
	bpf := Job{Driver: layout.BPF, Compiler: "clang-19", Key: "b", Cells: []CellID{{"6.1", "clang-19", layout.BPF}}}
	writeFile(t, filepath.Join(dir, "driver_ok", "clang-19", "6.1.o"), "o")
	if err := record(rp, dir, bpf, outcome{compile: results.Compile{Status: results.CompileFail, Key: "b2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "driver_ok", "clang-19", "6.1.o")); !os.IsNotExist(err) {
		t.Errorf("driver_ok of a cell that no longer compiles: %v", err)
	}
}

// A drivers_test kept by the key beside it gets its record back when
// results.json has none (or a stale one); one without its key, or a
// record already right, is left alone.
func TestRestoreKeptBuilds(t *testing.T) {
	dir := t.TempDir()
	j := Job{Driver: layout.DriversTest, Compiler: "clang-19", Key: "k1",
		Artifact: layout.DriversTestBin("clang-19", ""), Log: layout.DriversTestLog("clang-19", "")}
	other := Job{Driver: layout.DriversTest, Compiler: "clang-14", Key: "k2",
		Artifact: layout.DriversTestBin("clang-14", ""), Log: layout.DriversTestLog("clang-14", "")}
	writeFile(t, filepath.Join(dir, j.Artifact), "\x7fELF")
	writeFile(t, filepath.Join(dir, j.Artifact+".key"), "k1\n")
	writeFile(t, filepath.Join(dir, other.Artifact), "\x7fELF") // no key: not kept

	f := &results.File{}
	restoreKeptBuilds(f, dir, []Job{j, other})
	b := f.FindBuild(layout.DriversTest, "clang-19", "")
	if b == nil || b.Status != results.CompileOK || b.Key != "k1" || b.Artifact != j.Artifact || b.Log != j.Log {
		t.Errorf("restored record %+v", b)
	}
	if b := f.FindBuild(layout.DriversTest, "clang-14", ""); b != nil {
		t.Errorf("a drivers_test without its key got a record: %+v", b)
	}

	f = &results.File{}
	f.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-19", Status: results.CompileOK, Key: "k1", Seconds: 345})
	restoreKeptBuilds(f, dir, []Job{j})
	if b := f.FindBuild(layout.DriversTest, "clang-19", ""); b == nil || b.Seconds != 345 {
		t.Errorf("a right record was replaced: %+v", b)
	}
	f.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-19", Status: results.CompileFail, Key: "old"})
	restoreKeptBuilds(f, dir, []Job{j})
	if b := f.FindBuild(layout.DriversTest, "clang-19", ""); b == nil || b.Status != results.CompileOK || b.Key != "k1" {
		t.Errorf("a stale record was kept: %+v", b)
	}
}

// Each architecture has its shared scap-open: one that did not build makes
// errors of its own architecture's cells only.
func TestRecordNoScapOpenPerArch(t *testing.T) {
	dir := t.TempDir()
	rp := filepath.Join(dir, "results.json")
	amd := CellID{"6.1.0-50-cloud-amd64", "gcc-12", layout.Kmod}
	arm := CellID{"6.1.0-50-cloud-arm64", "gcc-12", layout.Kmod}
	err := results.Update(rp, func(f *results.File) error {
		for _, id := range []CellID{amd, arm} {
			f.SetCompile(id.Kernel, id.Compiler, id.Driver, results.Compile{Status: results.CompileOK})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	jobs := []Job{
		{Driver: layout.Kmod, Compiler: "gcc-12", Cells: []CellID{amd}},
		{Driver: layout.Kmod, Compiler: "gcc-12", Arch: layout.Arm64, Cells: []CellID{arm}},
		{Driver: layout.ScapOpen, Key: "s1", Artifact: layout.ScapOpenFor(""), Log: layout.ScapOpenLogFor("")},
		{Driver: layout.ScapOpen, Key: "s2", Arch: layout.Arm64, Artifact: layout.ScapOpenFor(layout.Arm64), Log: layout.ScapOpenLogFor(layout.Arm64)},
	}
	writeFile(t, filepath.Join(dir, "scap-open"), "elf")
	writeFile(t, filepath.Join(dir, "scap-open.key"), "s1\n")
	errs, err := recordNoScapOpen(rp, dir, jobs, map[string]string{"scap-open-arm64": "error: x"}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "scap-open-arm64.log") || !strings.Contains(errs[0].Error(), "1 compiled kmod and bpf cell cannot") {
		t.Fatalf("errors %v", errs)
	}
	f, _ := results.Load(rp)
	if c := f.Find(amd.Kernel, amd.Compiler, amd.Driver); c.Test != nil {
		t.Errorf("the amd64 cell, whose scap-open built, got %+v", c.Test)
	}
	if c := f.Find(arm.Kernel, arm.Compiler, arm.Driver); c.Test == nil || c.Test.Status != results.TestError || !strings.Contains(c.Test.Reason, "logs/compile/scap-open-arm64.log") {
		t.Errorf("the arm64 cell: %+v", c.Test)
	}
}
