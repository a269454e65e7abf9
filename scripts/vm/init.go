package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// accelFile records the KVM/TCG decision, relative to the build directory.
const accelFile = "accel.json"

// agentPackage is the guest agent's import path, relative to the module.
const agentPackage = "./scripts/guest/agent"

// Accel is the recorded KVM/TCG decision.
type Accel struct {
	Accel   string    `json:"accel"`  // kvm or tcg
	Reason  string    `json:"reason"` // why
	Seconds float64   `json:"probe_seconds,omitempty"`
	Kernel  string    `json:"kernel,omitempty"` // kernel the probe booted
	Time    time.Time `json:"time"`
}

// qemuSetup is what Init found: the agent binary and the accelerator.
type qemuSetup struct {
	Agent string
	Accel Accel
}

func agentPath(cfg *config.Config) string { return cfg.Path("vm", "agent") }

func initQemu(ctx context.Context, cfg *config.Config, out *ui.Printer) (*qemuSetup, error) {
	agent, err := buildAgent(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out.Linef("init: guest agent %s", agent)
	ver, err := exec.CommandContext(ctx, qemu.DefaultBinary, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("init: %s not usable (apt-get install qemu-system-x86): %w", qemu.DefaultBinary, err)
	}
	out.Linef("init: %s", strings.SplitN(strings.TrimSpace(string(ver)), "\n", 2)[0])
	acc, err := decideAccel(ctx, cfg, agent)
	if err != nil {
		return nil, err
	}
	if err := writeJSON(cfg.Path(accelFile), acc); err != nil {
		return nil, err
	}
	out.Linef("init: accelerator %s (%s)", acc.Accel, acc.Reason)
	return &qemuSetup{Agent: agent, Accel: acc}, nil
}

// loadSetup returns the agent and the accelerator Init recorded, running
// Init when the decision is missing. The agent is built again every time
// (Go's build cache makes that a fraction of a second when nothing
// changed), so an agent left by an older source never runs. cfg.Accel
// overrides the recorded decision.
func loadSetup(ctx context.Context, cfg *config.Config, out *ui.Printer) (*qemuSetup, error) {
	var acc Accel
	b, err := os.ReadFile(cfg.Path(accelFile))
	if err == nil {
		err = json.Unmarshal(b, &acc)
	}
	if err != nil {
		return initQemu(ctx, cfg, out)
	}
	agent, err := buildAgent(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Accel != "auto" && cfg.Accel != acc.Accel {
		acc = Accel{Accel: cfg.Accel, Reason: "VM_ACCEL=" + cfg.Accel, Time: time.Now()}
	}
	return &qemuSetup{Agent: agent, Accel: acc}, nil
}

// buildAgent compiles the guest agent as a static linux/amd64 binary.
func buildAgent(ctx context.Context, cfg *config.Config) (string, error) {
	dst := agentPath(cfg)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := dst + ".tmp"
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", tmp, agentPackage)
	cmd.Dir = cfg.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guest agent (%s in %s): %w\n%s", agentPackage, cfg.Root, err, b)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// probeDeadline bounds the KVM probe boot: under working KVM a kernel boots
// to the agent in about a second; where KVM is broken the guest hangs.
const probeDeadline = 30 * time.Second

// decideAccel picks kvm or tcg. Opening /dev/kvm proves nothing (on some
// hosts it opens and guests hang), so the decision is a real boot of a
// kernel of the grid under KVM that must reach the agent in time.
func decideAccel(ctx context.Context, cfg *config.Config, agent string) (Accel, error) {
	now := time.Now()
	if cfg.Accel != "auto" {
		return Accel{Accel: cfg.Accel, Reason: "VM_ACCEL=" + cfg.Accel, Time: now}, nil
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		return Accel{Accel: qemu.TCG, Reason: fmt.Sprintf("no usable /dev/kvm: %v", err), Time: now}, nil
	} else {
		f.Close()
	}
	var k *kernel.Entry
	if m, err := kernel.LoadManifest(cfg.BuildDir); err == nil {
		for i := range m.Kernels {
			if m.Kernels[i].Error == "" && m.Kernels[i].Vmlinuz != "" {
				k = &m.Kernels[i]
				break
			}
		}
	}
	if k == nil {
		return Accel{Accel: qemu.TCG, Reason: "no kernel in the manifest to probe KVM with (run the kernel stage first); /dev/kvm opening is no proof", Time: now}, nil
	}
	dir := cfg.Path("vm", "probe")
	res, rep, err := bareBoot(ctx, dir, agent, k.Vmlinuz, qemu.KVM, probeDeadline, false)
	defer os.RemoveAll(dir)
	if ctx.Err() != nil {
		return Accel{}, ctx.Err()
	}
	if err == nil && rep.Hello != nil && rep.Done {
		return Accel{Accel: qemu.KVM, Reason: fmt.Sprintf("KVM probe boot of %s reached the agent in %.1fs", k.UnameR, res.Seconds), Seconds: res.Seconds, Kernel: k.UnameR, Time: now}, nil
	}
	why := "no report from the agent"
	if err != nil {
		why = err.Error()
	}
	return Accel{Accel: qemu.TCG, Reason: fmt.Sprintf("KVM probe boot of %s failed (%s)", k.UnameR, why), Seconds: res.Seconds, Kernel: k.UnameR, Time: now}, nil
}

// bareBoot boots vmlinuz to the agent with an empty plan (or a hanging
// one): the floor every cell's VM pays, and the KVM probe.
func bareBoot(ctx context.Context, dir, agent, vmlinuz, accel string, deadline time.Duration, hang bool) (qemu.Result, *guest.Report, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return qemu.Result{}, nil, err
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(initrd, agent, &guest.Plan{Hang: hang}, nil); err != nil {
		return qemu.Result{}, nil, err
	}
	c := qemu.Config{
		Name: "bare-" + filepath.Base(dir), Accel: accel, Kernel: vmlinuz, Initrd: initrd,
		Console: filepath.Join(dir, "console.log"), Report: filepath.Join(dir, "report.jsonl"),
	}
	res, err := qemu.Run(ctx, c, deadline)
	rep, rerr := readReportFile(c.Report)
	if err == nil {
		err = rerr
	}
	return res, rep, err
}

func readReportFile(path string) (*guest.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return &guest.Report{Results: map[string]*guest.Record{}}, nil
		}
		return nil, err
	}
	defer f.Close()
	return guest.ReadReport(f)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return results.WriteFileAtomic(path, append(b, '\n'))
}
