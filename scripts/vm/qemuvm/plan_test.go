package qemuvm

import (
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

func testConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	build := t.TempDir()
	cfg, err := config.Parse(func(k string) string {
		if k == "VM_BUILD_DIR" {
			return build
		}
		return env[k]
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(p), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestVMJobsIsolateEveryKmod(t *testing.T) {
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64"}
	mk := func(comp, drv string) cell {
		return cell{Cell: results.Cell{Kernel: k.UnameR, Compiler: comp, Driver: drv}}
	}
	jobs := vmJobs(k, []cell{mk("gcc-12", "kmod"), mk("clang-19", "bpf"), mk("gcc-14", "kmod"), mk("clang-19", "modern_bpf")})
	if len(jobs) != 3 {
		t.Fatalf("%d VMs, want 3", len(jobs))
	}
	names := map[string]int{}
	for _, j := range jobs {
		names[j.Name] = len(j.Cells)
		kmods := 0
		for _, c := range j.Cells {
			if c.Driver == "kmod" {
				kmods++
			}
		}
		if kmods > 0 && len(j.Cells) != 1 {
			t.Errorf("%s: a kmod shares its VM: %d cells", j.Name, len(j.Cells))
		}
	}
	if names[k.UnameR+"-ebpf"] != 2 {
		t.Errorf("eBPF cells not in one VM: %v", names)
	}
}

func TestGuestPlanAndInitramfs(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_MIN_EVENTS": "50", "VM_TEST_SECONDS": "7", "VM_LOAD_SECONDS": "40"})
	k := kernel.Entry{UnameR: "6.12.117+deb13-cloud-amd64"}
	scap := cfg.Path("scap-open")
	modern := cfg.Path("driver", "clang-19", "modern_bpf", "scap-open")
	touch(t, scap)
	touch(t, filepath.Join(scap+".root", "lib", "x86_64-linux-gnu", "libc.so.6"))
	if err := os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(scap+".root", "lib", "ld.so")); err != nil {
		t.Fatal(err)
	}
	touch(t, modern)
	touch(t, cfg.Path("driver", "clang-19", k.UnameR+".o"))
	j := &vmJob{Name: "x", Kernel: k, Cells: []cell{
		{Cell: results.Cell{Kernel: k.UnameR, Compiler: "clang-19", Driver: "bpf"}, Artifact: cfg.Path("driver", "clang-19", k.UnameR+".o"), ScapOpen: scap, Root: scap + ".root"},
		{Cell: results.Cell{Kernel: k.UnameR, Compiler: "clang-19", Driver: "modern_bpf"}, Artifact: modern, ScapOpen: modern, Root: modern + ".root"},
	}}
	plan, files, err := loop.GuestPlan(cfg, []loop.Job{{Name: j.Name, Kernel: j.Kernel, Cells: j.Cells}}, "/")
	if err != nil {
		t.Fatal(err)
	}
	if plan.NumEvents != 50 || plan.TestSeconds != 7 || plan.LoadSeconds != 40 || len(plan.Roots) != 2 || plan.Cells[0].Root == plan.Cells[1].Root {
		t.Fatalf("plan %+v", plan)
	}
	if plan.Cells[0].Probe == "" || plan.Cells[0].ScapOpen != "/scap-open" {
		t.Errorf("bpf cell %+v", plan.Cells[0])
	}
	dst := filepath.Join(t.TempDir(), "initrd")
	agent := cfg.Path("agent")
	touch(t, agent)
	if err := writeInitramfs(dst, agent, plan, files); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]cpio.FileMode{}
	var planBytes []byte
	r := cpio.NewReader(f)
	for {
		h, err := r.Next()
		if err != nil {
			break
		}
		got[h.Name] = h.Mode
		if h.Name == "plan.json" {
			planBytes = make([]byte, h.Size)
			if _, err := r.Read(planBytes); err != nil {
				t.Fatal(err)
			}
		}
	}
	r0, r1 := plan.Cells[0].Root[1:], plan.Cells[1].Root[1:]
	for _, p := range []string{"init", "plan.json", "dev/console", "proc", "sys",
		r0 + "/scap-open", r0 + "/lib/x86_64-linux-gnu/libc.so.6", r0 + "/lib/ld.so", r0 + plan.Cells[0].Probe,
		r1 + "/scap-open"} {
		if _, ok := got[p]; !ok {
			t.Errorf("initramfs lacks %s", p)
		}
	}
	var back guest.Plan
	if err := json.Unmarshal(planBytes, &back); err != nil || len(back.Cells) != 2 {
		t.Errorf("plan in initramfs: %v %+v", err, back)
	}
}

func TestLoadSetupHonoursAccelOverride(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_ACCEL": "tcg"})
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = root
	// An agent left by an older source must be replaced, not reused.
	touch(t, loop.AgentPath(cfg, ""))
	if err := writeJSON(cfg.Path(layout.Accel), Accel{Accel: "kvm", Reason: "probe", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s, err := loadSetup(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Accel.Accel != "tcg" || s.Agent("") != loop.AgentPath(cfg, "") {
		t.Errorf("setup %+v", s)
	}
	if f, err := elf.Open(s.Agent("")); err != nil {
		t.Errorf("stale agent kept: %v", err)
	} else {
		f.Close()
	}
}

func TestReuseAccel(t *testing.T) {
	now := time.Now()
	probe := Accel{Accel: "tcg", Reason: "KVM probe boot of 6.1 failed", Kernel: "6.1", Time: now.Add(-time.Hour), Host: "6.1.0 | QEMU 7.2"}
	if got, ok := reuseAccel(&probe, "6.1.0 | QEMU 7.2", now); !ok || got.Accel != "tcg" {
		t.Errorf("a probe an hour old on the same host was not reused: %+v %v", got, ok)
	}
	for name, c := range map[string]struct {
		prev *Accel
		host string
		now  time.Time
	}{
		"nothing recorded":             {nil, probe.Host, now},
		"other host kernel":            {&probe, "6.12.0 | QEMU 7.2", now},
		"other qemu":                   {&probe, "6.1.0 | QEMU 8.0", now},
		"too old":                      {&probe, probe.Host, now.Add(accelReuse)},
		"from the future":              {&probe, probe.Host, now.Add(-2 * time.Hour)},
		"not a probe (setting)":        {&Accel{Accel: "kvm", Reason: "VM_ACCEL=kvm", Time: now, Host: probe.Host}, probe.Host, now},
		"recorded by an older version": {&Accel{Accel: "tcg", Kernel: "6.1", Time: now}, probe.Host, now},
	} {
		if got, ok := reuseAccel(c.prev, c.host, c.now); ok {
			t.Errorf("%s: reused %+v", name, got)
		}
	}
	if h := hostIdentity("QEMU 7.2"); !strings.HasSuffix(h, " | QEMU 7.2") || strings.HasPrefix(h, " |") {
		t.Errorf("host identity %q lacks the host kernel or qemu", h)
	}
}
