package vm

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/initramfs"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/testplan"
)

// cell is one cell to test, with the host files it needs.
type cell = testplan.Cell

// vmJob is one VM: a kernel and the cells it runs, in order.
type vmJob struct {
	Name   string
	Kernel kernel.Entry
	Cells  []cell
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// vmJobs splits a kernel's cells into VMs. Every kmod cell gets a fresh VM:
// a module is never unloaded (a buggy one may not unload, or leave the
// kernel broken). The original rebooted after each kmod instead. Measured
// under TCG with Debian's 6.1 cloud kernel (TestE2EIsolationCost), a fresh
// direct-boot qemu (start to exit) and a reboot inside the same qemu (agent
// to agent) cost about the same, 2.5 s vs 3.9 s on a quiet host and 4.8 s
// vs 4.4 s on a loaded one, since firmware and kernel run again either way;
// fresh VMs need no state kept across a reboot and run in parallel. The
// eBPF cells share one VM: their programs go away when scap-open exits, and
// a cell that panics the kernel sends the cells behind it to a fresh VM.
func vmJobs(k kernel.Entry, cells []cell) []*vmJob {
	var jobs []*vmJob
	var shared *vmJob
	for _, c := range cells {
		if c.Driver == "kmod" {
			jobs = append(jobs, &vmJob{Name: k.UnameR + "-" + c.Compiler + "-kmod", Kernel: k, Cells: []cell{c}})
			continue
		}
		if shared == nil {
			shared = &vmJob{Name: k.UnameR + "-ebpf", Kernel: k}
			jobs = append(jobs, shared)
		}
		shared.Cells = append(shared.Cells, c)
	}
	return jobs
}

// shuffleKernels puts the kernels in the seeded random order of this run,
// so a kernel that breaks the host side does not always hit the same
// neighbours; the seed is printed and VM_SEED repeats it.
func shuffleKernels(ks []kernel.Entry, seed int64) {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>32|1))
	r.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
}

// guestPlan returns the plan of job j and a function that adds the job's
// files (scap-open roots, drivers, the kernel's own modules) to an
// initramfs. Each distinct scap-open (with its library closure) gets its own root
// /roots/<n> where the agent chroots to run it, so closures from different
// builder images never mix.
func guestPlan(cfg *config.Config, j *vmJob) (*guest.Plan, func(*initramfs.Archive) error, error) {
	p := &guest.Plan{NumEvents: cfg.MinEvents, TestSeconds: int(cfg.TestTime.Seconds())}
	roots := map[string]string{} // host scap-open -> guest root
	type file struct{ guest, host string }
	var files []file
	var trees []file
	var modules []file // the kernel's own modules, decompressed when added
	for _, c := range j.Cells {
		root, ok := roots[c.ScapOpen]
		if !ok {
			root = fmt.Sprintf("/roots/%d", len(roots))
			roots[c.ScapOpen] = root
			p.Roots = append(p.Roots, root)
			if exists(c.Root) {
				trees = append(trees, file{root, c.Root})
			}
			files = append(files, file{path.Join(root, "scap-open"), c.ScapOpen})
		}
		pc := guest.PlanCell{ID: c.ID(), Driver: c.Driver, Root: root, ScapOpen: "/scap-open"}
		switch c.Driver {
		case "kmod":
			pc.Module = path.Join("/drivers", c.Compiler, c.Kernel+".ko")
			files = append(files, file{pc.Module, c.Artifact})
			deps, err := moduleDeps(c.Artifact, j.Kernel.ModulesDir)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", c.ID(), err)
			}
			for _, d := range deps {
				g := path.Join("/lib/modules", modName(d)+".ko")
				pc.Deps = append(pc.Deps, g)
				modules = append(modules, file{g, d})
			}
		case "bpf":
			pc.Probe = path.Join("/drivers", c.Compiler, c.Kernel+".o")
			files = append(files, file{path.Join(root, pc.Probe), c.Artifact})
		}
		p.Cells = append(p.Cells, pc)
	}
	add := func(a *initramfs.Archive) error {
		for _, t := range trees {
			if err := a.Tree(t.guest, t.host); err != nil {
				return err
			}
		}
		for _, f := range files {
			if err := a.File(f.guest, f.host); err != nil {
				return err
			}
		}
		for _, m := range modules {
			b, err := readModule(m.host)
			if err != nil {
				return err
			}
			a.Bytes(m.guest, b, 0o644)
		}
		return nil
	}
	return p, add, nil
}

// writeInitramfs writes the initramfs of one VM: the agent as /init, the
// plan, /dev/console for the agent's standard streams, and what add puts in.
func writeInitramfs(dst, agent string, plan *guest.Plan, add func(*initramfs.Archive) error) error {
	a := initramfs.New()
	if err := a.File("/init", agent); err != nil {
		return err
	}
	b, err := json.MarshalIndent(plan, "", " ")
	if err != nil {
		return err
	}
	a.Bytes(guest.PlanPath, b, 0o644)
	a.Dir("/dev", 0o755)
	a.CharDev("/dev/console", 5, 1, 0o600)
	for _, d := range []string{"/proc", "/sys", "/tmp"} {
		a.Dir(d, 0o755)
	}
	if add != nil {
		if err := add(a); err != nil {
			return fmt.Errorf("initramfs %s: %w", dst, err)
		}
	}
	// Uncompressed: under emulation the kernel unpacks a plain cpio faster
	// than it inflates gzip, and the file lives only for one VM.
	return a.Write(dst, false)
}

// logName is a file name for a cell's log: compiler_driver.
func logName(c results.Cell) string {
	return strings.ReplaceAll(c.Compiler+"_"+c.Driver, "/", "_")
}
