package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2.5, 9, 2.1, 2.3, 2.2}, 2.3},
	} {
		in := slices.Clone(tc.in)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("Median reordered its input: %v", in)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is a number")
	}
}

func TestFraction(t *testing.T) {
	if got := Fraction(30, 50); got != 0.6 {
		t.Errorf("Fraction(30, 50) = %v", got)
	}
	for _, c := range [][2]float64{{1, 0}, {1, -2}, {math.NaN(), 1}, {1, math.NaN()}} {
		if !math.IsNaN(Fraction(c[0], c[1])) {
			t.Errorf("Fraction(%v, %v) is a number", c[0], c[1])
		}
	}
}

func TestGoals(t *testing.T) {
	for _, tc := range []struct {
		g    Goal
		v    float64
		met  bool
		text string
	}{
		{GoalColdRatio, 0.6, true, "<= 0.6x"},
		{GoalColdRatio, 0.61, false, "<= 0.6x"},
		{GoalWarm, 1.99, true, "< 2%"},
		{GoalWarm, 2, false, "< 2%"},
		{GoalCellFloor, 1.5, true, "<= 1.5x"},
		{GoalCellFloor, 3.2, false, "<= 1.5x"},
		{GoalCellFloor, math.NaN(), false, "<= 1.5x"},
	} {
		if got := tc.g.Met(tc.v); got != tc.met {
			t.Errorf("%s met by %v: %v, want %v", tc.g, tc.v, got, tc.met)
		}
		if tc.g.String() != tc.text {
			t.Errorf("goal text %q, want %q", tc.g.String(), tc.text)
		}
	}
	f := Figure{Value: math.NaN()}
	f.Judge(GoalWarm)
	if f.Met != nil || f.Goal != "< 2%" {
		t.Errorf("figure without a value judged: met %v goal %q", f.Met, f.Goal)
	}
	f.Value = 0.5
	f.Judge(GoalWarm)
	if f.Met == nil || !*f.Met {
		t.Errorf("0.5%% does not meet < 2%%: %v", f.Met)
	}
}

func sampleReport() *Report {
	r := &Report{
		Schema: SchemaVersion, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), CPUs: 2, Accel: "tcg",
		Grid: "testdata/grids/ci.txt", Kernels: []string{"6.1.0-50-cloud-amd64"},
		Compilers: []string{"gcc-12"}, Drivers: []string{"kmod"}, Source: "testdata/minilibs",
		Load: []float64{5.5, 6.25},
	}
	met := true
	r.Figures = []Figure{
		{Group: GroupCompileCold, Name: "compile cold, jobs=1", Value: 40.25, Unit: Seconds, Runs: 1},
		{Group: GroupCompileCold, Name: "cold jobs=2 / jobs=1", Value: 0.55, Unit: Ratio, Runs: 1, Goal: "<= 0.6x", Met: &met},
		{Group: GroupCompileWarm, Name: "warm / cold", Value: 1.2, Unit: Percent, Runs: 1, Goal: "< 2%", Met: &met},
		{Group: GroupBoot, Name: "boot floor 6.1.0-50-cloud-amd64", Value: 2.1, Unit: Seconds, Runs: 5},
		{Group: GroupLoop, Name: "loop, jobs=1", Value: math.NaN(), Unit: Seconds, Runs: 1, Error: "no compiled grid to test"},
		{Group: GroupMemory, Name: "peak RSS, mage process", Value: 61, Unit: MiB, Runs: 1},
	}
	for i := range r.Figures {
		r.Figures[i].CPUs, r.Figures[i].Accel = 2, "tcg"
	}
	return r
}

func TestReportJSON(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), ReportFile)
	if err := r.Write(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The shape other tools read: top-level fields and one object per figure.
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "time", "cpus", "accel", "grid", "kernels", "compilers", "drivers", "source", "loadavg_1min", "figures"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("bench.json has no %q", k)
		}
	}
	figs := raw["figures"].([]any)
	first := figs[0].(map[string]any)
	for _, k := range []string{"group", "name", "value", "unit", "runs", "cpus", "accel"} {
		if _, ok := first[k]; !ok {
			t.Errorf("figure has no %q: %v", k, first)
		}
	}
	if first["value"] != 40.25 || first["accel"] != "tcg" || first["cpus"] != 2.0 {
		t.Errorf("first figure: %v", first)
	}
	if _, ok := first["met"]; ok {
		t.Errorf("a figure without a goal has met: %v", first)
	}
	if figs[1].(map[string]any)["met"] != true {
		t.Errorf("ratio figure: %v", figs[1])
	}
	loop := figs[4].(map[string]any)
	if v, ok := loop["value"]; !ok || v != nil || loop["error"] != "no compiled grid to test" {
		t.Errorf("failed figure: %v", loop)
	}

	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Figures) != len(r.Figures) || back.Figures[0].Value != 40.25 || !math.IsNaN(back.Figures[4].Value) || *back.Figures[2].Met != true {
		t.Errorf("round trip: %+v", back.Figures)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temp files left beside the report: %v", entries)
	}
}

func TestCheckNamesMissingGroups(t *testing.T) {
	r := sampleReport()
	if err := r.Check(); err != nil {
		t.Errorf("complete report: %v", err)
	}
	r.Figures = slices.DeleteFunc(r.Figures, func(f Figure) bool { return f.Group == GroupBoot || f.Group == GroupMemory })
	err := r.Check()
	if err == nil || !strings.Contains(err.Error(), "boot, memory") {
		t.Errorf("missing groups: %v", err)
	}
}

func TestTable(t *testing.T) {
	tab := sampleReport().Table()
	lines := strings.Split(tab, "\n")
	if !strings.Contains(lines[0], "2 CPUs") || !strings.Contains(lines[0], "accel tcg") || !strings.Contains(lines[0], "load average 5.5 at start, 6.2 at end") {
		t.Errorf("header: %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "GROUP") {
		t.Errorf("column header: %q", lines[1])
	}
	want := map[string][]string{
		"compile cold, jobs=1": {"40.2 s", "-"},
		"cold jobs=2 / jobs=1": {"0.55 x", "<= 0.6x", "met"},
		"warm / cold":          {"1.20 %", "< 2%", "met"},
		"boot floor":           {"2.1 s", " 5 "},
		"loop, jobs=1":         {"error"},
		"peak RSS":             {"61 MiB"},
	}
	for name, parts := range want {
		var line string
		for _, l := range lines {
			if strings.Contains(l, name) && !strings.HasPrefix(l, "error:") {
				line = l
			}
		}
		for _, p := range parts {
			if !strings.Contains(line, p) {
				t.Errorf("row %q lacks %q: %q", name, p, line)
			}
		}
	}
	if !strings.Contains(tab, "error: loop, jobs=1: no compiled grid to test") {
		t.Errorf("the failed figure's error is not shown:\n%s", tab)
	}
	// Columns line up: VALUE is right-aligned to the same end everywhere.
	end := strings.Index(lines[1], "VALUE") + len("VALUE")
	for _, l := range lines[2:7] {
		if l[end-1] == ' ' {
			t.Errorf("value column misaligned:\n%s\n%s", lines[1], l)
		}
	}
}

func TestVMCosts(t *testing.T) {
	test := func(secs, capture float64) *results.Test {
		return &results.Test{Status: results.TestPass, Seconds: secs, Capture: capture, Provider: "qemu"}
	}
	cells := []results.Cell{
		{Kernel: "a", Compiler: "gcc-12", Driver: "kmod", Test: test(10, 2)},
		{Kernel: "a", Compiler: "gcc-14", Driver: "kmod", Test: test(12, 3)},
		// Two eBPF cells share one VM of 30 s.
		{Kernel: "a", Compiler: "clang-14", Driver: "bpf", Test: test(30, 4)},
		{Kernel: "a", Compiler: "clang-19", Driver: "modern_bpf", Test: test(30, 6)},
		// Never reached scap-open: not a VM cost.
		{Kernel: "b", Compiler: "gcc-12", Driver: "kmod", Test: &results.Test{Status: results.TestFail, Seconds: 5, Provider: "qemu"}},
		{Kernel: "b", Compiler: "gcc-14", Driver: "kmod"},
	}
	got := VMCosts(cells)
	if want := []float64{8, 9, 20}; !slices.Equal(got["a"], want) {
		t.Errorf("kernel a: %v, want %v", got["a"], want)
	}
	if _, ok := got["b"]; ok {
		t.Errorf("kernel b has costs: %v", got["b"])
	}
	if n := len(testedCells(cells)); n != 5 {
		t.Errorf("tested cells: %d, want 5", n)
	}
}

func TestParseStatus(t *testing.T) {
	st := parseStatus("Name:\tqemu-system-x86\nUmask:\t0022\nState:\tS (sleeping)\nPPid:\t4242\nVmPeak:\t 1234 kB\nVmHWM:\t  187392 kB\nVmRSS:\t  180000 kB\n")
	if st.Name != "qemu-system-x86" || st.PPid != 4242 || st.VmHWMKB != 187392 {
		t.Errorf("parsed %+v", st)
	}
}

func TestSelfPeakRSS(t *testing.T) {
	before, err := selfPeakRSS()
	if err != nil || before <= 0 {
		t.Fatalf("peak RSS %d, %v", before, err)
	}
	// Far more than the whole peak so far: pages the heap already holds
	// (freed by earlier tests) can absorb part of it, never all.
	size := int(before)<<10 + 64<<20
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = 1
	}
	after, _ := selfPeakRSS()
	if after < before+32<<10 {
		t.Errorf("peak RSS %d KiB after touching %d MiB (was %d KiB)", after, size>>20, before)
	}
	_ = buf[len(buf)-1]
}

func TestLinkTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(src, "headers", "a.deb"), "a")
	write(filepath.Join(src, "apt", "bookworm", "Packages.xz"), "idx")
	write(filepath.Join(src, "apt", "bookworm", ".tmp-partial"), "x")
	write(filepath.Join(src, "other", "b"), "b")
	write(filepath.Join(dst, "headers", "a.deb"), "mine")
	n, err := linkTree(src, dst, "headers", "kernels", "apt")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("linked %d files, want 1", n)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "headers", "a.deb")); string(b) != "mine" {
		t.Errorf("an existing file was replaced: %q", b)
	}
	si, _ := os.Stat(filepath.Join(src, "apt", "bookworm", "Packages.xz"))
	di, err := os.Stat(filepath.Join(dst, "apt", "bookworm", "Packages.xz"))
	if err != nil || !os.SameFile(si, di) {
		t.Errorf("index not hard-linked: %v", err)
	}
	for _, p := range []string{"apt/bookworm/.tmp-partial", "other/b"} {
		if _, err := os.Stat(filepath.Join(dst, p)); err == nil {
			t.Errorf("%s was linked", p)
		}
	}
}

func TestSortKeepsMeasurementOrder(t *testing.T) {
	r := &Report{Figures: []Figure{
		{Group: GroupLoop, Name: "l1"}, {Group: GroupBoot, Name: "b1"}, {Group: GroupMemory, Name: "m"},
		{Group: GroupBoot, Name: "b2"}, {Group: GroupCompileCold, Name: "c"},
	}}
	r.Sort()
	var names []string
	for _, f := range r.Figures {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "c,b1,b2,l1,m" {
		t.Errorf("order %s", got)
	}
}
