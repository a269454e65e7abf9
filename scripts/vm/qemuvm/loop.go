package qemuvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// Provider is the qemu provider: every VM boots one kernel directly
// (-kernel, no disk) into an initramfs whose /init is the guest agent,
// runs its plan and powers off; VMs run in parallel, VM_JOBS at a time,
// under KVM when a real boot proves it works, else TCG.
type Provider struct{}

// Name is the VM_PROVIDER value.
func (Provider) Name() string { return "qemu" }

// Init builds the guest agent, checks qemu and decides KVM or TCG by a
// short real boot (recorded in build/accel.json).
func (Provider) Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	_, err := initQemu(ctx, cfg, out)
	return err
}

// Prepare is Init: it is cheap (the agent from Go's build cache, the
// accelerator decision reused for a day on an unchanged host).
func (p Provider) Prepare(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	return p.Init(ctx, cfg, out)
}

// Kernels are the grid's kernels of group ("" for all) whose kernel image
// the kernel stage extracted.
func (Provider) Kernels(cfg *config.Config, out *ui.Printer, m *kernel.Manifest, group string) ([]kernel.Entry, error) {
	var ks []kernel.Entry
	for _, k := range m.Kernels {
		if group != "" && k.VM != group {
			continue
		}
		if k.Error != "" || k.Vmlinuz == "" {
			out.Linef("test: %s: skipped, kernel not available: %s", k.UnameR, k.Error)
			continue
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// Open gives every VM of the loop its own lane (see vmJobs).
func (Provider) Open(ctx context.Context, cfg *config.Config, out *ui.Printer, jobs []loop.Job) (*loop.Session, error) {
	setup, err := loadSetup(ctx, cfg, out)
	if err != nil {
		return nil, err
	}
	r := newRunner(cfg, out, setup)
	s := &loop.Session{Accel: setup.Accel.Accel, Parallel: cfg.Jobs}
	for _, j := range jobs {
		for _, vj := range vmJobs(j.Kernel, j.Cells) {
			s.Lanes = append(s.Lanes, r.lane(vj))
		}
	}
	return s, nil
}

// Cleanup removes what the provider keeps between runs outside results
// and logs: the guest agent, the accel decision and leftover initramfs
// files.
func (Provider) Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	if err := os.RemoveAll(cfg.Path("vm")); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if err := os.RemoveAll(cfg.Path(layout.Accel)); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}

// runner runs the VMs of one loop.
type runner struct {
	cfg   *config.Config
	out   *ui.Printer
	setup *qemuSetup
	// bootTimeout is the part of a VM's deadline that is not per cell:
	// qemu start, kernel boot and unpacking under emulation on a busy host.
	bootTimeout time.Duration
	// cellTimeout is added per cell on top of its load and capture limits
	// (module load, stopping scap-open, kernel log).
	cellTimeout time.Duration
	// hang makes every agent hang before reporting (negative control).
	hang bool
	// qemuBinary replaces qemu.DefaultBinary when set.
	qemuBinary string
}

func newRunner(cfg *config.Config, out *ui.Printer, setup *qemuSetup) *runner {
	return &runner{cfg: cfg, out: out, setup: setup, bootTimeout: 120 * time.Second, cellTimeout: 60 * time.Second}
}

// lane is one VM job: each run of it is a fresh VM (name, name-2, ...).
type lane struct {
	r    *runner
	job  *vmJob
	runs int
}

func (r *runner) lane(j *vmJob) *lane { return &lane{r: r, job: j} }

func (l *lane) Jobs() []loop.Job {
	return []loop.Job{{Name: l.job.Name, Kernel: l.job.Kernel, Cells: l.job.Cells}}
}

func (l *lane) Run(ctx context.Context, j loop.Job, done func(loop.Attempt)) error {
	l.runs++
	name := j.Name
	if l.runs > 1 {
		name = fmt.Sprintf("%s-%d", j.Name, l.runs)
	}
	atts, err := l.r.runVM(ctx, &vmJob{Name: name, Kernel: j.Kernel, Cells: j.Cells})
	for _, a := range atts {
		done(a)
	}
	return err
}

func (l *lane) Close(context.Context, bool) error { return nil }

// runVM boots one VM for job and returns the attempt of every cell it
// started (cells it never started are absent). A VM that never reached the
// agent yields an error outcome for every cell. An error means the VM
// could not even be prepared.
func (r *runner) runVM(ctx context.Context, j *vmJob) ([]loop.Attempt, error) {
	cfg := r.cfg
	logDir := cfg.Path(layout.TestLogDir(j.Kernel.UnameR))
	workDir := cfg.Path("vm", "run", j.Name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(workDir)
	plan, files, err := loop.GuestPlan(cfg, []loop.Job{{Name: j.Name, Kernel: j.Kernel, Cells: j.Cells}}, "/")
	if err != nil {
		return nil, err
	}
	plan.Hang = r.hang
	initrd := filepath.Join(workDir, "initrd.cpio")
	arch := layout.ArchOf(j.Kernel.Arch)
	if r.setup.Agent(arch) == "" {
		return nil, fmt.Errorf("%s: no guest agent for %s (the loop built them for the grid's architectures: is %s the grid the kernel stage read?)", j.Name, arch, cfg.KernelsFile)
	}
	if err := writeInitramfs(initrd, r.setup.Agent(arch), plan, files); err != nil {
		return nil, fmt.Errorf("%s: %w", j.Name, err)
	}
	qc := qemu.Config{
		Binary: r.qemuBinary, Name: j.Name, Arch: arch, Accel: r.setup.AccelFor(arch), Kernel: j.Kernel.Vmlinuz, Initrd: initrd,
		Console: filepath.Join(logDir, j.Name+".console.log"),
		Report:  filepath.Join(workDir, "report.jsonl"),
	}
	if cfg.QemuPrint {
		r.out.Linef("qemu: %s", qemu.CommandLine(qc))
	}
	deadline := r.bootTimeout + time.Duration(len(j.Cells))*loop.CellLimit(cfg, r.cellTimeout)
	if qc.Accel == qemu.TCG && arch != layout.HostArch() {
		// A foreign architecture is emulated instruction by instruction,
		// slower than the host's own under TCG (see qemu.ForeignSlowdown).
		deadline = time.Duration(float64(deadline) * qemu.ForeignSlowdown)
	}
	res, vmErr := qemu.Run(ctx, qc, deadline)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep, err := readReportFile(qc.Report)
	if err != nil {
		return nil, err
	}
	if rep.Garbage > 0 {
		// Keep the raw channel next to the console when something was off.
		_ = loop.CopyFile(qc.Report, filepath.Join(logDir, j.Name+".report.jsonl"))
	}
	consoleB, _ := os.ReadFile(qc.Console)
	console := string(consoleB)
	consoleRel, _ := filepath.Rel(cfg.BuildDir, qc.Console)
	vm := fmt.Sprintf("%.1fs, qemu exit %d", res.Seconds, res.ExitCode)
	if vmErr != nil {
		vm += fmt.Sprintf(", %v", vmErr)
	}

	var out []loop.Attempt
	started := map[string]bool{}
	for _, id := range rep.Started {
		started[id] = true
	}
	anyStarted := false
	for _, c := range j.Cells {
		anyStarted = anyStarted || started[c.ID()]
	}
	for _, c := range j.Cells {
		rec := rep.Results[c.ID()]
		if anyStarted && rec == nil && !started[c.ID()] {
			// Never started because an earlier cell ended the VM: the
			// loop gives it a fresh VM. When no cell started at all,
			// every cell is classified (an attempt each), so a VM that
			// keeps dying before its first cell cannot loop forever.
			continue
		}
		o := guest.Classify(rec, started[c.ID()], console, vmErr, cfg.MinEvents)
		if rep.Hello == nil && vmErr == nil {
			o.Reason = "VM ended before the agent reported: " + o.Reason
		}
		out = append(out, loop.Attempt{Cell: c, Outcome: o, Record: rec, Seconds: res.Seconds, VM: vm, Console: consoleRel})
	}
	return out, nil
}
