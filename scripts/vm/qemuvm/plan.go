package qemuvm

import (
	"encoding/json"
	"fmt"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/initramfs"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// cell is one cell to test, with the host files it needs.
type cell = loop.Cell

// vmJob is one VM: a kernel and the cells it runs, in order.
type vmJob struct {
	Name   string
	Kernel kernel.Entry
	Cells  []cell
}

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
		if c.Driver == layout.Kmod {
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

// writeInitramfs writes the initramfs of one VM: the agent as /init, the
// plan, /dev/console for the agent's standard streams, and the plan's
// files.
func writeInitramfs(dst, agent string, plan *guest.Plan, files []loop.GuestFile) error {
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
	if err := addFiles(a, files); err != nil {
		return fmt.Errorf("initramfs %s: %w", dst, err)
	}
	// Uncompressed: under emulation the kernel unpacks a plain cpio faster
	// than it inflates gzip, and the file lives only for one VM.
	return a.Write(dst, false)
}

// addFiles puts a plan's files into a.
func addFiles(a *initramfs.Archive, files []loop.GuestFile) error {
	for _, f := range files {
		switch {
		case f.Tree:
			if err := a.Tree(f.Guest, f.Host); err != nil {
				return err
			}
		case f.Module:
			b, err := loop.ReadModule(f.Host)
			if err != nil {
				return err
			}
			a.Bytes(f.Guest, b, 0o644)
		default:
			if err := a.File(f.Guest, f.Host); err != nil {
				return err
			}
		}
	}
	return nil
}
