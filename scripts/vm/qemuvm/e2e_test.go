package qemuvm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/report"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// k61 and k612 are the CI grid's kernels (testdata/grids/ci.txt follows
// Debian's current 6.1 and 6.12): e2eSetup reads them from the manifest.
var k61, k612 string

// e2eEnv is the environment of the end-to-end tests: the shared end-to-end
// configuration (CI grid, stand-in tree) with qemu and the compilers that
// match the CI kernels.
func e2eEnv(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	all := map[string]string{"VM_PROVIDER": "qemu", "VM_COMPILERS": "gcc-12,gcc-14,clang-19"}
	for k, v := range env {
		all[k] = v
	}
	return e2etest.Config(t, all)
}

// e2eSetup fetches the CI grid's kernels (cached), builds the agent and
// loads (or, the first time, decides) the accelerator.
func e2eSetup(t *testing.T, env map[string]string) (*config.Config, *kernel.Manifest, *qemuSetup) {
	t.Helper()
	cfg := e2eEnv(t, env)
	out := ui.New(os.Stderr)
	if err := kernel.Fetch(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range m.Kernels {
		if k.Error != "" || k.Vmlinuz == "" {
			t.Fatalf("kernel %s not usable: %s", k.UnameR, k.Error)
		}
	}
	k61, k612 = e2etest.CIKernels(t, cfg.BuildDir)
	// The accelerator decided once in the shared build dir is reused (a
	// failing KVM probe costs its whole deadline); TestE2EAccelProbe runs
	// the probe itself.
	setup, err := loadSetup(t.Context(), cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, m, setup
}

func entry(t *testing.T, m *kernel.Manifest, uname string) kernel.Entry {
	t.Helper()
	for _, k := range m.Kernels {
		if k.UnameR == uname {
			return k
		}
	}
	t.Fatalf("kernel %s not in the manifest", uname)
	return kernel.Entry{}
}

// ourQemus lists running qemu processes whose -name starts with prefix.
func ourQemus(prefix string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-name" && strings.HasPrefix(args[i+1], prefix) && strings.Contains(args[0], "qemu") {
				found = append(found, filepath.Base(filepath.Dir(p))+" "+args[i+1])
			}
		}
	}
	return found
}

func bareFloor(t *testing.T, setup *qemuSetup, k kernel.Entry) float64 {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bare")
	res, rep, err := bareBoot(t.Context(), dir, setup.Agent(k.Arch), k, setup.AccelFor(k.Arch), 3*time.Minute, false)
	if err != nil {
		console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		t.Fatalf("%s: bare boot: %v\nconsole:\n%s", k.UnameR, err, console)
	}
	if rep.Hello == nil || rep.Hello.Uname != k.UnameR || !rep.Done {
		t.Fatalf("%s: bare boot report %+v", k.UnameR, rep)
	}
	return res.Seconds
}

// TestE2EBareBoot boots every kernel to the agent with an empty plan: the
// floor every test VM pays.
func TestE2EBareBoot(t *testing.T) {
	_, m, setup := e2eSetup(t, nil)
	for _, k := range m.Kernels {
		t.Logf("%s: bare boot to the agent and power-off: %.2fs (%s)", k.UnameR, bareFloor(t, setup, k), setup.Accel.Accel)
	}
}

// TestE2ELoop is the acceptance run: compile the stand-in drivers for the
// CI grid, test them all in VMs, check each matching cell passes with
// enough events, that passes are kept on a re-run, and report the per-cell
// overhead against a bare boot and the loop time with one and two VMs.
func TestE2ELoop(t *testing.T) {
	cfg, m, setup := e2eSetup(t, nil)
	out := ui.New(os.Stderr)
	if err := compile.Run(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	floor := map[string]float64{}
	for _, k := range m.Kernels {
		floor[k.UnameR] = bareFloor(t, setup, k)
	}

	cfg.RetestAll = true
	times := map[int]time.Duration{}
	for _, jobs := range []int{2, 1} {
		cfg.Jobs = jobs
		start := time.Now()
		if err := loop.Run(t.Context(), cfg, out, Provider{}, ""); err != nil {
			t.Fatal(err)
		}
		times[jobs] = time.Since(start)
	}
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []results.Cell{
		{Kernel: k61, Compiler: "gcc-12", Driver: "kmod"},
		{Kernel: k612, Compiler: "gcc-14", Driver: "kmod"},
		{Kernel: k61, Compiler: "clang-19", Driver: "bpf"},
		{Kernel: k612, Compiler: "clang-19", Driver: "bpf"},
		{Kernel: k61, Compiler: "clang-19", Driver: "modern_bpf"},
		{Kernel: k612, Compiler: "clang-19", Driver: "modern_bpf"},
	} {
		c := rf.Find(want.Kernel, want.Compiler, want.Driver)
		switch {
		case c == nil || c.Test == nil:
			t.Errorf("%s: not tested: %+v", want.ID(), c)
		case c.Test.Status != results.TestPass || c.Test.Events < 30 || c.Test.Attempts != 1 || c.Test.Provider != "qemu":
			t.Errorf("%s: %+v", want.ID(), *c.Test)
		case want.Driver != "modern_bpf":
			ext := map[string]string{"kmod": ".ko", "bpf": ".o"}[want.Driver]
			if _, err := os.Stat(cfg.Path("driver_ok", want.Compiler, want.Kernel+ext)); err != nil {
				t.Errorf("%s: passing artifact not kept: %v", want.ID(), err)
			}
		}
		if c != nil && c.Test != nil {
			if b, err := os.ReadFile(cfg.Path(c.Test.Log)); err != nil || !bytes.Contains(b, []byte("captured")) {
				t.Errorf("%s: log %s lacks scap-open's output (%v)", want.ID(), c.Test.Log, err)
			}
			// The stand-in's drivers_test, smoke filter: three of its
			// four tests, on the kmod and the modern probe.
			b := c.Test.Behaviour
			switch {
			case want.Driver == "bpf" && b != nil:
				t.Errorf("%s: behaviour tests ran for bpf: %+v", want.ID(), b)
			case want.Driver != "bpf" && (b == nil || b.Mode != "smoke" || b.Passed != 3 || b.Failed != 0 || b.Error != ""):
				t.Errorf("%s: behaviour %+v, want smoke with 3 passed", want.ID(), b)
			case b != nil:
				t.Logf("%s: behaviour %d passed in %.1fs", want.ID(), b.Passed, b.Seconds)
			}
		}
	}
	tested := 0
	for _, c := range rf.Cells {
		if c.Test == nil {
			continue
		}
		tested++
		if c.Test.Status == results.TestError {
			t.Errorf("%s: infra error: %s", c.ID(), c.Test.Reason)
		}
		// Overhead: a kmod VM's wall time minus scap-open's run (load
		// and capture), against the bare boot of the same kernel.
		if c.Driver == "kmod" && c.Test.Status == results.TestPass {
			f, run := floor[c.Kernel], c.Test.Load+c.Test.Capture
			t.Logf("%s: VM %.2fs, scap-open %.2fs (load %.2fs, capture %.2fs), overhead %.2fs = %.2fx the bare boot (%.2fs)",
				c.ID(), c.Test.Seconds, run, c.Test.Load, c.Test.Capture, c.Test.Seconds-run, (c.Test.Seconds-run)/f, f)
		}
	}
	t.Logf("loop over %d kernels (%d cells): VM_JOBS=1 %s, VM_JOBS=2 %s", len(m.Kernels), tested, times[1].Round(100*time.Millisecond), times[2].Round(100*time.Millisecond))

	// A re-run keeps every pass and boots nothing.
	cfg.RetestAll = false
	before, err := os.ReadFile(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := loop.Run(t.Context(), cfg, ui.New(&buf), Provider{}, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "nothing to test") {
		t.Errorf("re-run tested cells that passed:\n%s", buf.String())
	}
	after, _ := os.ReadFile(cfg.Path(layout.Results))
	if !bytes.Equal(before, after) {
		t.Errorf("a re-run that tests nothing changed results.json")
	}
}

// negativeCell returns a cell of kernel k with the given artifact.
func negativeCell(k kernel.Entry, compiler, driver, artifact, scapOpen string) cell {
	return cell{
		Cell:     results.Cell{Kernel: k.UnameR, Compiler: compiler, Driver: driver},
		Artifact: artifact, ScapOpen: scapOpen, Root: scapOpen + ".root",
	}
}

// runCells runs cells as one VM job (with the retry and fresh-VM logic of
// the loop) in a private build dir and returns the outcomes by cell ID.
func runCells(t *testing.T, cfg *config.Config, setup *qemuSetup, k kernel.Entry, name string, cells []cell, tweak func(*runner)) map[string]loop.Outcome {
	t.Helper()
	c := *cfg
	c.BuildDir = t.TempDir()
	r := newRunner(&c, ui.New(os.Stderr), setup)
	if tweak != nil {
		tweak(r)
	}
	got := drive(t, r, &vmJob{Name: name, Kernel: k, Cells: cells})
	if left := ourQemus(name); len(left) > 0 {
		t.Errorf("qemu processes left: %v", left)
	}
	return got
}

// TestE2EWrongKernelModule: a module built for 6.1 loaded on 6.12 fails to
// load, with the kernel's own reason.
func TestE2EWrongKernelModule(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_COMPILERS": "gcc-12", "VM_DRIVERS": "kmod"})
	if err := compile.Run(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	ko := cfg.Path("driver", "gcc-12", k61+".ko")
	c := negativeCell(entry(t, m, k612), "gcc-12", "kmod", ko, cfg.Path("scap-open"))
	got := runCells(t, cfg, setup, entry(t, m, k612), "neg-wrong-kernel", []cell{c}, nil)
	o := got[c.ID()]
	if o.Outcome.String() != "fail/load" || o.Attempts != 1 || !strings.Contains(o.Outcome.Reason, "finit_module") ||
		!strings.Contains(o.Outcome.Reason, "module") || len(o.Outcome.Detail) == 0 {
		t.Fatalf("got %s attempts %d: %q %q", o.Outcome, o.Attempts, o.Outcome.Reason, o.Outcome.Detail)
	}
	t.Logf("reason: %s", o.Outcome.Reason)
}

// TestE2EAgentNeverReports: an agent that hangs yields error after the
// deadline, is retried cfg.Retries times, and leaves no qemu behind.
func TestE2EAgentNeverReports(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_TEST_SECONDS": "1", "VM_LOAD_SECONDS": "1", "VM_RETRIES": "2"})
	k := entry(t, m, k61)
	agentCell := negativeCell(k, "clang-19", "modern_bpf", setup.Agent(k.Arch), setup.Agent(k.Arch))
	start := time.Now()
	got := runCells(t, cfg, setup, k, "neg-hang", []cell{agentCell}, func(r *runner) {
		r.hang, r.bootTimeout, r.cellTimeout = true, 20*time.Second, 0
	})
	o := got[agentCell.ID()]
	if o.Outcome.Status != guest.Error || o.Attempts != 3 || !strings.Contains(o.Outcome.Reason, "deadline") {
		t.Fatalf("got %s attempts %d: %s", o.Outcome, o.Attempts, o.Outcome.Reason)
	}
	t.Logf("%s after %d attempts in %s: %s", o.Outcome, o.Attempts, time.Since(start).Round(time.Second), o.Outcome.Reason)
}

// faultBuild compiles the stand-in tree with MINILIBS_FAULT=fault (its
// negative-control variants) and the other CMake cache defaults in extra
// ("MINILIBS_OPEN_DELAY=8") into a build dir of its own that shares the
// kernel stage's manifest, and returns a config on it.
func faultBuild(t *testing.T, cfg *config.Config, fault, compilers, drivers string, extra ...string) *config.Config {
	t.Helper()
	variant := strings.Join(append([]string{fault}, extra...), "-")
	tree := filepath.Join(cfg.BuildDir, "vm-faults", variant, "src")
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	standIn := filepath.Join(cfg.Root, config.StandInDir)
	err := filepath.WalkDir(standIn, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(standIn, p)
		dst := filepath.Join(tree, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "CMakeLists.txt" {
			// The compile stage passes no extra cmake options: make the
			// fault the tree's default instead.
			for _, kv := range append([]string{"MINILIBS_FAULT=" + fault}, extra...) {
				name, val, _ := strings.Cut(kv, "=")
				re := regexp.MustCompile(`set\(` + name + ` "[^"]*" CACHE`)
				if !re.Match(b) {
					return fmt.Errorf("%s: %s default not found", p, name)
				}
				b = re.ReplaceAll(b, []byte(fmt.Sprintf(`set(%s "%s" CACHE`, name, val)))
			}
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	fc := *cfg
	fc.BuildDir = filepath.Join(cfg.BuildDir, "vm-faults", variant, "build")
	fc.LibsDir, fc.StandIn = tree, false
	fc.Compilers, fc.Drivers = strings.Split(compilers, ","), strings.Split(drivers, ",")
	if err := os.MkdirAll(fc.BuildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(cfg.Path(layout.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fc.Path(layout.Manifest), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := compile.Run(t.Context(), &fc, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	return &fc
}

// TestE2EBehaviourFault: the stand-in variant whose drivers record a wrong
// argument for openat still passes scap-open's check, and drivers_test
// names the test that catches it, through the whole loop: results.json,
// Markdown and JUnit.
func TestE2EBehaviourFault(t *testing.T) {
	cfg, _, _ := e2eSetup(t, map[string]string{"VM_COMPILERS": "gcc-12,clang-19", "VM_DRIVERS": "kmod,modern_bpf"})
	fc := faultBuild(t, cfg, "behaviour", "gcc-12,clang-19", "kmod,modern_bpf")
	fc.RetestAll = true
	var out bytes.Buffer
	err := loop.Run(t.Context(), fc, ui.New(io.MultiWriter(os.Stderr, &out)), Provider{}, "")
	if err != nil {
		t.Fatal(err)
	}
	rf, err := results.Load(fc.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []results.Cell{
		{Kernel: k61, Compiler: "gcc-12", Driver: "kmod"},
		{Kernel: k612, Compiler: "clang-19", Driver: "modern_bpf"},
	} {
		c := rf.Find(want.Kernel, want.Compiler, want.Driver)
		if c == nil || c.Test == nil || c.Test.Behaviour == nil {
			t.Fatalf("%s: no behaviour record: %+v", want.ID(), c)
		}
		tst, b := c.Test, c.Test.Behaviour
		if tst.Status != results.TestFail || tst.Kind != results.KindBehaviour || tst.Events < 30 ||
			!slices.Equal(b.Failing, []string{"SyscallEnter.openatE"}) || b.Passed != 2 || !strings.Contains(b.Failures["SyscallEnter.openatE"], "arg0") {
			t.Errorf("%s: %s/%s %q, behaviour %+v", want.ID(), tst.Status, tst.Kind, tst.Reason, b)
			continue
		}
		t.Logf("%s: %s: %s", want.ID(), tst.Reason, b.Failures["SyscallEnter.openatE"])
	}
	if err := report.Write(t.Context(), fc, ui.Discard()); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(fc.Path(report.MarkdownMD))
	junit, _ := os.ReadFile(fc.Path(report.JUnitXML))
	if !bytes.Contains(md, []byte("🟠")) || !bytes.Contains(md, []byte("`SyscallEnter.openatE`: `")) {
		t.Errorf("Markdown does not show the wrong events and the failing test:\n%s", md)
	}
	if !bytes.Contains(junit, []byte(`<testsuite name="behaviour"`)) || !bytes.Contains(junit, []byte("SyscallEnter.openatE: ")) {
		t.Errorf("JUnit has no behaviour failure naming the test:\n%s", junit)
	}
}

// TestE2EPanicModule: the stand-in module variant that panics on load gives
// fail/panic with the oops lines, and the cells queued behind it in the same
// VM job still run (in a fresh VM) and pass.
func TestE2EPanicModule(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_COMPILERS": "gcc-12,clang-19"})
	fc := faultBuild(t, cfg, "panic", "gcc-12", "kmod")
	if err := compile.Run(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	k := entry(t, m, k61)
	bad := negativeCell(k, "gcc-12", "kmod", fc.Path("driver", "gcc-12", k61+".ko"), cfg.Path("scap-open"))
	good := negativeCell(k, "clang-19", "modern_bpf", cfg.Path("driver", "clang-19", "modern_bpf", "scap-open"), cfg.Path("driver", "clang-19", "modern_bpf", "scap-open"))
	bpf := negativeCell(k, "clang-19", "bpf", cfg.Path("driver", "clang-19", k61+".o"), cfg.Path("scap-open"))
	got := runCells(t, cfg, setup, k, "neg-panic", []cell{bad, good, bpf}, nil)
	o := got[bad.ID()]
	if o.Outcome.String() != "fail/panic" || o.Attempts != 1 || len(o.Outcome.Detail) < 3 {
		t.Fatalf("panic module: %s attempts %d: %s %q", o.Outcome, o.Attempts, o.Outcome.Reason, o.Outcome.Detail)
	}
	t.Logf("panic: %s\n%s", o.Outcome.Reason, strings.Join(o.Outcome.Detail, "\n"))
	for _, c := range []cell{good, bpf} {
		if o := got[c.ID()]; o.Outcome.Status != guest.Pass || o.Attempts != 1 {
			t.Errorf("%s after the panic: %s attempts %d: %s", c.ID(), o.Outcome, o.Attempts, o.Outcome.Reason)
		}
	}
}

// TestE2EVerifierReject: eBPF objects the verifier rejects give fail/load
// with a reason that names the program and the verifier's own error line.
func TestE2EVerifierReject(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_COMPILERS": "clang-19"})
	fc := faultBuild(t, cfg, "verifier", "clang-19", "bpf,modern_bpf")
	k := entry(t, m, k61)
	cells := []cell{
		negativeCell(k, "clang-19", "bpf", fc.Path("driver", "clang-19", k61+".o"), fc.Path("scap-open")),
		negativeCell(k, "clang-19", "modern_bpf", fc.Path("driver", "clang-19", "modern_bpf", "scap-open"), fc.Path("driver", "clang-19", "modern_bpf", "scap-open")),
	}
	got := runCells(t, fc, setup, k, "neg-verifier", cells, nil)
	prog := map[string]string{"bpf": "minilibs_sys_enter", "modern_bpf": "minilibs_modern_sys_enter"}
	for _, c := range cells {
		o := got[c.ID()]
		want := fmt.Sprintf("verifier rejected prog '%s': R0 invalid mem access 'map_value_or_null'", prog[c.Driver])
		if o.Outcome.String() != "fail/load" || o.Attempts != 1 || !strings.HasPrefix(o.Outcome.Reason, want) ||
			len(o.Outcome.Detail) == 0 || o.Outcome.Detail[len(o.Outcome.Detail)-1] != "R0 invalid mem access 'map_value_or_null'" {
			t.Errorf("%s: %s attempts %d: %q, want fail/load %q...\n%s", c.ID(), o.Outcome, o.Attempts, o.Outcome.Reason, want, strings.Join(o.Outcome.Detail, "\n"))
			continue
		}
		t.Logf("%s: %s\n%s", c.ID(), o.Outcome.Reason, strings.Join(o.Outcome.Detail, "\n"))
	}
}

// TestE2ESlowOpen: drivers that take longer to open than VM_TEST_SECONDS
// pass when they open within VM_LOAD_SECONDS, load and capture timed apart;
// one still not open at twice the load limit is an error, retried inside
// the guest only, never a capture failure.
func TestE2ESlowOpen(t *testing.T) {
	const delay = 8 // seconds the slowopen stand-in takes to open
	// 300 events keep the stand-in capturing for a fraction of a second
	// after it attached (30 can take a few milliseconds), so the agent
	// sees the driver open and times load and capture apart.
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_COMPILERS": "clang-19", "VM_TEST_SECONDS": "5", "VM_LOAD_SECONDS": "20", "VM_MIN_EVENTS": "300"})
	fc := faultBuild(t, cfg, "slowopen", "clang-19", "bpf,modern_bpf", fmt.Sprintf("MINILIBS_OPEN_DELAY=%d", delay))
	k := entry(t, m, k61)
	modern := negativeCell(k, "clang-19", "modern_bpf", fc.Path("driver", "clang-19", "modern_bpf", "scap-open"), fc.Path("driver", "clang-19", "modern_bpf", "scap-open"))
	bpf := negativeCell(k, "clang-19", "bpf", fc.Path("driver", "clang-19", k61+".o"), fc.Path("scap-open"))

	got := runCells(t, fc, setup, k, "slow-open", []cell{modern, bpf}, nil)
	for _, c := range []cell{modern, bpf} {
		o := got[c.ID()]
		if o.Outcome.Status != guest.Pass || o.Attempts != 1 || o.Load < delay || o.Load > 3*delay ||
			!strings.Contains(o.Outcome.Reason, "driver open after") {
			t.Errorf("%s: %s attempts %d, load %.1fs capture %.1fs: %s", c.ID(), o.Outcome, o.Attempts, o.Load, o.Capture, o.Outcome.Reason)
			continue
		}
		t.Logf("%s: %s", c.ID(), o.Outcome.Reason)
	}

	short := *fc
	short.LoadTime = 3 * time.Second
	start := time.Now()
	got = runCells(t, &short, setup, k, "slow-open-limit", []cell{modern}, nil)
	o := got[modern.ID()]
	if o.Outcome.Status != guest.Error || o.Attempts != 1 || !strings.HasPrefix(o.Outcome.Reason, "driver not open after 6 s") {
		t.Fatalf("%s: %s attempts %d: %q", modern.ID(), o.Outcome, o.Attempts, o.Outcome.Reason)
	}
	t.Logf("%s in %s: %s", o.Outcome, time.Since(start).Round(time.Second), o.Outcome.Reason)
}

// TestE2EWarnModule: a module that makes the kernel WARN while it captures
// enough events is fail/warn with the WARN's first line.
func TestE2EWarnModule(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_COMPILERS": "gcc-12", "VM_DRIVERS": "kmod"})
	fc := faultBuild(t, cfg, "warn", "gcc-12", "kmod")
	k := entry(t, m, k61)
	c := negativeCell(k, "gcc-12", "kmod", fc.Path("driver", "gcc-12", k61+".ko"), fc.Path("scap-open"))
	got := runCells(t, fc, setup, k, "neg-warn", []cell{c}, nil)
	o := got[c.ID()]
	if o.Outcome.String() != "fail/warn" || o.Attempts != 1 || o.Outcome.Events < 30 ||
		!strings.HasPrefix(o.Outcome.Reason, "kernel splat during the cell: WARNING: ") || !strings.Contains(o.Outcome.Reason, "minilibs_open") {
		t.Fatalf("%s attempts %d events %d: %q\n%s", o.Outcome, o.Attempts, o.Outcome.Events, o.Outcome.Reason, strings.Join(o.Outcome.Detail, "\n"))
	}
	t.Logf("%s: %s", o.Outcome, o.Outcome.Reason)
}

// TestE2EAccelProbe runs the KVM decision for real: whatever it decides,
// the decided accelerator must boot a kernel.
func TestE2EAccelProbe(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_ACCEL": "auto"})
	acc, err := decideAccel(context.Background(), cfg, setup.Agent(layout.HostArch()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("decision: %s (%s)", acc.Accel, acc.Reason)
	setup.Accel = acc
	bareFloor(t, setup, m.Kernels[0])
}

// TestE2EIsolationCost measures the two ways to give every kmod cell a
// clean kernel: a fresh qemu per cell (start, boot, power off) against a
// guest that reboots in the same qemu (the original's reboot after every
// kmod), timed hello to hello on the report channel.
func TestE2EIsolationCost(t *testing.T) {
	_, m, setup := e2eSetup(t, nil)
	k := entry(t, m, k61)
	const n = 4
	var fresh float64
	for i := 0; i < n; i++ {
		fresh += bareFloor(t, setup, k)
	}
	fresh /= n

	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(initrd, setup.Agent(layout.HostArch()), &guest.Plan{Reboot: true}, nil); err != nil {
		t.Fatal(err)
	}
	qc := qemu.Config{Name: "iso-reboot", Accel: setup.Accel.Accel, Kernel: k.Vmlinuz, Initrd: initrd,
		Console: filepath.Join(dir, "console.log"), Report: filepath.Join(dir, "report.jsonl"), AllowReboot: true}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := qemu.Run(ctx, qc, 5*time.Minute); done <- err }()
	var hellos []time.Time
	for len(hellos) < n+1 {
		select {
		case err := <-done:
			t.Fatalf("rebooting VM ended after %d boots: %v", len(hellos), err)
		case <-time.After(20 * time.Millisecond):
		}
		b, _ := os.ReadFile(qc.Report)
		for c := bytes.Count(b, []byte(`"type":"hello"`)); len(hellos) < c; {
			hellos = append(hellos, time.Now())
		}
	}
	cancel()
	<-done
	reboot := hellos[n].Sub(hellos[0]).Seconds() / n
	t.Logf("%s: fresh VM per cell %.2fs (qemu start to exit, mean of %d); reboot in the same VM %.2fs (hello to hello, mean of %d); first boot %.2fs",
		k.UnameR, fresh, n, reboot, n, hellos[0].Sub(start).Seconds())
	if left := ourQemus("iso-reboot"); len(left) > 0 {
		t.Errorf("qemu left: %v", left)
	}
}

// TestE2ELoopCancel cancels a loop while its VMs run (Ctrl-C): the loop
// returns at once, no qemu of it survives and no initramfs is left.
func TestE2ELoopCancel(t *testing.T) {
	cfg, _, _ := e2eSetup(t, nil)
	if err := compile.Run(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	// A private build dir with copies of the artifacts, so the processes of
	// this loop can be told apart by path.
	c := *cfg
	c.BuildDir = t.TempDir()
	c.RetestAll = true
	for _, p := range []string{"driver", "scap-open", "scap-open.root", layout.Manifest, layout.Accel, layout.Results} {
		if b, err := exec.Command("cp", "-a", cfg.Path(p), c.Path(p)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v: %s", p, err, b)
		}
	}
	ours := func() []string {
		var found []string
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range dirs {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "qemu") && strings.Contains(string(b), c.BuildDir) {
				found = append(found, p)
			}
		}
		return found
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx, &c, ui.New(os.Stderr), Provider{}, "") }()
	deadline := time.Now().Add(2 * time.Minute)
	for len(ours()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no VM started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("cancelled loop returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("loop did not return after cancel")
	}
	if left := ours(); len(left) > 0 {
		t.Errorf("qemu left after cancel: %v", left)
	}
	if runs, _ := filepath.Glob(c.Path("vm", "run", "*")); len(runs) > 0 {
		t.Errorf("initramfs left after cancel: %v", runs)
	}
}
