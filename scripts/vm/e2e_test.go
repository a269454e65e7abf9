package vm

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
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
	res, rep, err := bareBoot(t.Context(), dir, setup.Agent, k.Vmlinuz, setup.Accel.Accel, 3*time.Minute, false)
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
	var r *runner
	for _, jobs := range []int{2, 1} {
		cfg.Jobs = jobs
		r = newRunner(cfg, out, setup)
		start := time.Now()
		if err := r.loop(t.Context(), m, ""); err != nil {
			t.Fatal(err)
		}
		times[jobs] = time.Since(start)
	}
	rf, err := results.Load(cfg.Path("results.json"))
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
		case c.Test.Status != results.TestPass || c.Test.Events < 30 || c.Test.Attempts != 1:
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
		}
	}
	for _, c := range rf.Cells {
		if c.Test != nil && c.Test.Status == results.TestError {
			t.Errorf("%s: infra error: %s", c.ID(), c.Test.Reason)
		}
	}
	// Overhead: a kmod VM's wall time minus scap-open's capture time,
	// against the bare boot of the same kernel.
	for _, o := range r.summary {
		if o.Cell.Driver != "kmod" || o.Outcome.Status != guest.Pass {
			continue
		}
		f := floor[o.Cell.Kernel]
		t.Logf("%s: VM %.2fs, capture %.2fs, overhead %.2fs = %.2fx the bare boot (%.2fs)",
			o.Cell.ID(), o.Seconds, o.Capture, o.Seconds-o.Capture, (o.Seconds-o.Capture)/f, f)
	}
	t.Logf("loop over %d kernels (%d cells): VM_JOBS=1 %s, VM_JOBS=2 %s", len(m.Kernels), len(r.summary), times[1].Round(100*time.Millisecond), times[2].Round(100*time.Millisecond))

	// A re-run keeps every pass and boots nothing.
	cfg.RetestAll = false
	r = newRunner(cfg, ui.Discard(), setup)
	if err := r.loop(t.Context(), m, ""); err != nil {
		t.Fatal(err)
	}
	for _, o := range r.summary {
		if o.Outcome.Status == guest.Pass {
			t.Errorf("re-run tested %s again although it passed", o.Cell.ID())
		}
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
func runCells(t *testing.T, cfg *config.Config, setup *qemuSetup, k kernel.Entry, name string, cells []cell, tweak func(*runner)) map[string]cellOutcome {
	t.Helper()
	c := *cfg
	c.BuildDir = t.TempDir()
	r := newRunner(&c, ui.New(os.Stderr), setup)
	if tweak != nil {
		tweak(r)
	}
	bar := r.out.Progress("test", "cells", int64(len(cells)))
	defer bar.Done()
	if err := r.runJob(t.Context(), &vmJob{Name: name, Kernel: k, Cells: cells}, bar); err != nil {
		t.Fatal(err)
	}
	got := map[string]cellOutcome{}
	for _, o := range r.summary {
		got[o.Cell.ID()] = o
	}
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
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_TEST_SECONDS": "1", "VM_RETRIES": "2"})
	k := entry(t, m, k61)
	agentCell := negativeCell(k, "clang-19", "modern_bpf", setup.Agent, setup.Agent)
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
// negative-control variants) into a build dir of its own that shares the
// kernel stage's manifest, and returns a config on it.
func faultBuild(t *testing.T, cfg *config.Config, fault, compilers, drivers string) *config.Config {
	t.Helper()
	tree := filepath.Join(cfg.BuildDir, "vm-faults", fault, "src")
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
			nb := bytes.Replace(b, []byte(`set(MINILIBS_FAULT "none" CACHE`), []byte(fmt.Sprintf(`set(MINILIBS_FAULT "%s" CACHE`, fault)), 1)
			if bytes.Equal(nb, b) {
				return fmt.Errorf("%s: MINILIBS_FAULT default not found", p)
			}
			b = nb
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	fc := *cfg
	fc.BuildDir = filepath.Join(cfg.BuildDir, "vm-faults", fault, "build")
	fc.LibsDir, fc.StandIn = tree, false
	fc.Compilers, fc.Drivers = strings.Split(compilers, ","), strings.Split(drivers, ",")
	if err := os.MkdirAll(fc.BuildDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(cfg.Path(kernel.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fc.Path(kernel.ManifestFile), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := compile.Run(t.Context(), &fc, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	return &fc
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
// with the verifier's last lines.
func TestE2EVerifierReject(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_COMPILERS": "clang-19"})
	fc := faultBuild(t, cfg, "verifier", "clang-19", "bpf,modern_bpf")
	k := entry(t, m, k61)
	cells := []cell{
		negativeCell(k, "clang-19", "bpf", fc.Path("driver", "clang-19", k61+".o"), fc.Path("scap-open")),
		negativeCell(k, "clang-19", "modern_bpf", fc.Path("driver", "clang-19", "modern_bpf", "scap-open"), fc.Path("driver", "clang-19", "modern_bpf", "scap-open")),
	}
	got := runCells(t, fc, setup, k, "neg-verifier", cells, nil)
	for _, c := range cells {
		o := got[c.ID()]
		if o.Outcome.String() != "fail/load" || o.Attempts != 1 || !strings.HasPrefix(o.Outcome.Reason, "verifier: ") ||
			len(o.Outcome.Detail) == 0 || !strings.HasPrefix(o.Outcome.Detail[len(o.Outcome.Detail)-1], "processed ") {
			t.Errorf("%s: %s attempts %d: %s", c.ID(), o.Outcome, o.Attempts, o.Outcome.Reason)
			continue
		}
		t.Logf("%s: %s\n%s", c.ID(), o.Outcome.Reason, strings.Join(o.Outcome.Detail, "\n"))
	}
}

// TestE2EAccelProbe runs the KVM decision for real: whatever it decides,
// the decided accelerator must boot a kernel.
func TestE2EAccelProbe(t *testing.T) {
	cfg, m, setup := e2eSetup(t, map[string]string{"VM_ACCEL": "auto"})
	acc, err := decideAccel(context.Background(), cfg, setup.Agent)
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
	if err := writeInitramfs(initrd, setup.Agent, &guest.Plan{Reboot: true}, nil); err != nil {
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
	cfg, m, setup := e2eSetup(t, nil)
	if err := compile.Run(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	// A private build dir with copies of the artifacts, so the processes of
	// this loop can be told apart by path.
	c := *cfg
	c.BuildDir = t.TempDir()
	c.RetestAll = true
	for _, p := range []string{"driver", "scap-open", "scap-open.root"} {
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
	go func() { done <- newRunner(&c, ui.New(os.Stderr), setup).loop(ctx, m, "") }()
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
