package qemuvm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/grid"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// Accel is the recorded KVM/TCG decision.
type Accel struct {
	Accel   string    `json:"accel"`  // kvm or tcg
	Reason  string    `json:"reason"` // why
	Seconds float64   `json:"probe_seconds,omitempty"`
	Kernel  string    `json:"kernel,omitempty"` // kernel the probe booted
	Time    time.Time `json:"time"`
	// Host is what the decision depends on besides the grid: the host
	// kernel and the qemu version. A probe's decision is reused while the
	// host is the same (reuseAccel).
	Host string `json:"host,omitempty"`
}

// accelReuse is how long a probe's decision is reused on an unchanged
// host: a probe costs its deadline (30 s) on a host where KVM is broken,
// at every init.
const accelReuse = 24 * time.Hour

// reuseAccel returns the recorded probe decision when it was made by a
// real probe on this host (same host kernel, same qemu) less than
// accelReuse ago.
func reuseAccel(prev *Accel, host string, now time.Time) (Accel, bool) {
	if prev == nil || prev.Kernel == "" || prev.Host == "" || prev.Host != host {
		return Accel{}, false
	}
	if age := now.Sub(prev.Time); age < 0 || age > accelReuse {
		return Accel{}, false
	}
	return *prev, true
}

// hostIdentity names what the KVM decision depends on: the host kernel
// release and qemu's version line.
func hostIdentity(qemuVersion string) string {
	var u syscall.Utsname
	release := ""
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		release = string(b)
	}
	return release + " | " + qemuVersion
}

// qemuSetup is what Init found: the agent binary of each architecture of
// the grid and the accelerator of guests of the host's own.
type qemuSetup struct {
	Agents map[string]string
	Accel  Accel
}

// Agent is the guest agent built for arch.
func (s *qemuSetup) Agent(arch string) string { return s.Agents[layout.ArchOf(arch)] }

// AccelFor is the accelerator of a guest of arch: the decision Init made
// for the host's architecture; a foreign one is always emulated (TCG).
func (s *qemuSetup) AccelFor(arch string) string {
	if layout.ArchOf(arch) == layout.HostArch() {
		return s.Accel.Accel
	}
	return qemu.TCG
}

// buildAgents builds the guest agent of the host's architecture (the KVM
// probe boots it) and of every architecture of the grid, and checks each
// one's qemu.
func buildAgents(ctx context.Context, cfg *config.Config, out *ui.Printer, quiet bool) (map[string]string, error) {
	agents := map[string]string{}
	arches := append([]string{layout.HostArch()}, grid.FileArches(cfg.KernelsFile)...)
	for _, arch := range arches {
		if agents[arch] != "" {
			continue
		}
		agent, err := loop.BuildAgent(ctx, cfg, arch)
		if err != nil {
			return nil, err
		}
		agents[arch] = agent
		if quiet {
			continue
		}
		out.Linef("init: guest agent %s", agent)
		bin := qemu.BinaryFor(arch)
		ver, err := exec.CommandContext(ctx, bin, "--version").Output()
		if err != nil {
			return nil, fmt.Errorf("init: %s not usable (apt-get install %s): %w", bin, qemu.PackageFor(arch), err)
		}
		out.Linef("init: %s", strings.SplitN(strings.TrimSpace(string(ver)), "\n", 2)[0])
	}
	return agents, nil
}

func initQemu(ctx context.Context, cfg *config.Config, out *ui.Printer) (*qemuSetup, error) {
	agents, err := buildAgents(ctx, cfg, out, false)
	if err != nil {
		return nil, err
	}
	agent := agents[layout.HostArch()]
	ver, err := exec.CommandContext(ctx, qemu.DefaultBinary, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("init: %s not usable (apt-get install qemu-system-x86): %w", qemu.DefaultBinary, err)
	}
	qemuVersion := strings.SplitN(strings.TrimSpace(string(ver)), "\n", 2)[0]
	host := hostIdentity(qemuVersion)
	if cfg.Accel == "auto" {
		var prev *Accel
		if b, err := os.ReadFile(cfg.Path(layout.Accel)); err == nil && json.Unmarshal(b, &prev) != nil {
			prev = nil
		}
		if acc, ok := reuseAccel(prev, host, time.Now()); ok {
			out.Linef("init: accelerator %s (%s, %s ago on this host; delete %s or set VM_ACCEL to decide again)",
				acc.Accel, acc.Reason, time.Since(acc.Time).Round(time.Minute), cfg.Path(layout.Accel))
			return &qemuSetup{Agents: agents, Accel: acc}, nil
		}
	}
	acc, err := decideAccel(ctx, cfg, agent)
	if err != nil {
		return nil, err
	}
	acc.Host = host
	if err := writeJSON(cfg.Path(layout.Accel), acc); err != nil {
		return nil, err
	}
	out.Linef("init: accelerator %s (%s)", acc.Accel, acc.Reason)
	return &qemuSetup{Agents: agents, Accel: acc}, nil
}

// loadSetup returns the agent and the accelerator Init recorded, running
// Init when the decision is missing. The agent is built again every time
// (Go's build cache makes that a fraction of a second when nothing
// changed), so an agent left by an older source never runs. cfg.Accel
// overrides the recorded decision.
func loadSetup(ctx context.Context, cfg *config.Config, out *ui.Printer) (*qemuSetup, error) {
	var acc Accel
	b, err := os.ReadFile(cfg.Path(layout.Accel))
	if err == nil {
		err = json.Unmarshal(b, &acc)
	}
	if err != nil {
		return initQemu(ctx, cfg, out)
	}
	agents, err := buildAgents(ctx, cfg, out, true)
	if err != nil {
		return nil, err
	}
	if cfg.Accel != "auto" && cfg.Accel != acc.Accel {
		acc = Accel{Accel: cfg.Accel, Reason: "VM_ACCEL=" + cfg.Accel, Time: time.Now()}
	}
	return &qemuSetup{Agents: agents, Accel: acc}, nil
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
			if m.Kernels[i].Error == "" && m.Kernels[i].Vmlinuz != "" && layout.ArchOf(m.Kernels[i].Arch) == layout.HostArch() {
				k = &m.Kernels[i]
				break
			}
		}
	}
	if k == nil {
		return Accel{Accel: qemu.TCG, Reason: "no kernel in the manifest to probe KVM with (run the kernel stage first); /dev/kvm opening is no proof", Time: now}, nil
	}
	dir := cfg.Path("vm", "probe")
	res, rep, err := bareBoot(ctx, dir, agent, *k, qemu.KVM, probeDeadline, false)
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

// bareBoot boots kernel k to the agent (built for k's architecture) with
// an empty plan (or a hanging one): the floor every cell's VM pays, and
// the KVM probe.
func bareBoot(ctx context.Context, dir, agent string, k kernel.Entry, accel string, deadline time.Duration, hang bool) (qemu.Result, *guest.Report, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return qemu.Result{}, nil, err
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(initrd, agent, &guest.Plan{Hang: hang}, nil); err != nil {
		return qemu.Result{}, nil, err
	}
	c := qemu.Config{
		Name: "bare-" + filepath.Base(dir), Arch: k.Arch, Accel: accel, Kernel: k.Vmlinuz, Initrd: initrd,
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
	return fsx.WriteFile(path, append(b, '\n'), 0o644)
}
