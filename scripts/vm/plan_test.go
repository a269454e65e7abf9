package vm

import (
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
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

func TestShuffleIsSeeded(t *testing.T) {
	mk := func() []kernel.Entry {
		var ks []kernel.Entry
		for _, u := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			ks = append(ks, kernel.Entry{UnameR: u})
		}
		return ks
	}
	order := func(seed int64) string {
		ks := mk()
		shuffleKernels(ks, seed)
		s := ""
		for _, k := range ks {
			s += k.UnameR
		}
		return s
	}
	if order(42) != order(42) {
		t.Error("same seed, different order")
	}
	differ := false
	for seed := int64(1); seed < 10; seed++ {
		differ = differ || order(seed) != order(42)
	}
	if !differ {
		t.Error("seeds do not change the order")
	}
}

func TestGuestPlanAndInitramfs(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_MIN_EVENTS": "50", "VM_TEST_SECONDS": "7"})
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
	plan, add, err := guestPlan(cfg, j)
	if err != nil {
		t.Fatal(err)
	}
	if plan.NumEvents != 50 || plan.TestSeconds != 7 || len(plan.Roots) != 2 || plan.Cells[0].Root == plan.Cells[1].Root {
		t.Fatalf("plan %+v", plan)
	}
	if plan.Cells[0].Probe == "" || plan.Cells[0].ScapOpen != "/scap-open" {
		t.Errorf("bpf cell %+v", plan.Cells[0])
	}
	dst := filepath.Join(t.TempDir(), "initrd")
	agent := cfg.Path("agent")
	touch(t, agent)
	if err := writeInitramfs(dst, agent, plan, add); err != nil {
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

func TestProvider(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_PROVIDER": "libvirt"})
	if p := Provider(cfg); p != "libvirt" {
		t.Errorf("explicit provider: %s", p)
	}
	cfg.Provider = "auto"
	t.Setenv("PATH", t.TempDir())
	if p := Provider(cfg); p != "qemu" {
		t.Errorf("auto without vagrant: %s", p)
	}
	bin := t.TempDir()
	touch(t, filepath.Join(bin, "vagrant"))
	touch(t, filepath.Join(bin, "VBoxManage"))
	t.Setenv("PATH", bin)
	if p := Provider(cfg); p != "virtualbox" {
		t.Errorf("auto with vagrant and VirtualBox: %s", p)
	}
}

func TestLoadSetupHonoursAccelOverride(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_ACCEL": "tcg"})
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = root
	// An agent left by an older source must be replaced, not reused.
	touch(t, agentPath(cfg))
	if err := writeJSON(cfg.Path(accelFile), Accel{Accel: "kvm", Reason: "probe", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s, err := loadSetup(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Accel.Accel != "tcg" || s.Agent != agentPath(cfg) {
		t.Errorf("setup %+v", s)
	}
	if f, err := elf.Open(s.Agent); err != nil {
		t.Errorf("stale agent kept: %v", err)
	} else {
		f.Close()
	}
}
