package vagrant

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// Provider is the Vagrant provider, with VirtualBox or libvirt
// (Hypervisor): one long-lived VM per VM group of the grid (the
// Vagrantfile's machines), with the group's kernels installed by Init,
// switched through grub and rebooted into; cells run over ssh.
type Provider struct {
	Hypervisor string // virtualbox or libvirt, the VM_PROVIDER value
}

// Name is the VM_PROVIDER value.
func (p Provider) Name() string { return p.Hypervisor }

// Init is the package's Init.
func (Provider) Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	return Init(ctx, cfg, out)
}

// Prepare is the package's Prepare: the VMs an earlier init prepared
// for these kernels are kept.
func (Provider) Prepare(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	return Prepare(ctx, cfg, out)
}

// Kernels are the grid's kernels of group ("" for every group with a
// Vagrant machine) that the kernel stage fetched.
func (Provider) Kernels(cfg *config.Config, out *ui.Printer, m *kernel.Manifest, group string) ([]kernel.Entry, error) {
	if group != "" && machines[group] == nil {
		return nil, fmt.Errorf("loop: no Vagrant machine for VM group %q (machines: %s)", group, strings.Join(Groups(), ", "))
	}
	groups := groupsOf(m, group)
	if len(groups) == 0 {
		want := group
		if want == "" {
			want = strings.Join(Groups(), ", ")
		}
		out.Linef("loop: no kernel of the grid is in a Vagrant group (%s); nothing to test", want)
	}
	var ks []kernel.Entry
	for _, k := range m.Kernels {
		if !slices.Contains(groups, k.VM) {
			continue
		}
		if k.Error != "" {
			out.Linef("test: %s: skipped, kernel not available: %s", k.UnameR, k.Error)
			continue
		}
		if layout.ArchOf(k.Arch) != layout.Amd64 {
			out.Linef("test: %s: not tested, an %s kernel: the Vagrant boxes are amd64; VM_PROVIDER=qemu tests it under emulation", k.UnameR, k.Arch)
			continue
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// Open makes one lane per VM group: its kernels in the loop's order, each
// kernel's cells kmod first (see orderCells). The groups' VMs run one
// after the other, as in the original.
func (p Provider) Open(ctx context.Context, cfg *config.Config, out *ui.Printer, jobs []loop.Job) (*loop.Session, error) {
	cli, err := newCLI(cfg, out)
	if err != nil {
		return nil, err
	}
	s := &loop.Session{Parallel: 1}
	lanes := map[string]*looper{}
	for _, j := range jobs {
		l := lanes[j.Kernel.VM]
		if l == nil {
			l = newLooper(cfg, out, cli, cli.Provider, j.Kernel.VM)
			lanes[j.Kernel.VM] = l
			s.Lanes = append(s.Lanes, l)
		}
		j.Cells = orderCells(j.Cells)
		l.jobs = append(l.jobs, j)
	}
	return s, nil
}

// Cleanup is the package's Cleanup.
func (Provider) Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	return Cleanup(ctx, cfg, out)
}

// Cleanup destroys every VM that Init created (those with Vagrant state in
// the build directory) and removes that state. Without vagrant installed
// or any state there is nothing to do.
func Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	if _, err := os.Stat(stateDir(cfg)); err != nil {
		return nil
	}
	if _, err := exec.LookPath("vagrant"); err != nil {
		out.Linef("cleanup: vagrant state in %s but no vagrant on PATH; VMs (if any) are left alone", stateDir(cfg))
		return nil
	}
	cli, err := newCLI(cfg, out)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range Groups() {
		if _, err := os.Stat(stateDir(cfg) + "/machines/" + m); err != nil {
			continue
		}
		out.Linef("cleanup: destroying VM %s", m)
		if err := cli.Destroy(ctx, m); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup: %w", errors.Join(errs...))
	}
	if err := os.RemoveAll(cfg.Path("vagrant")); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}

// newCLI is the CLI of the build directory's VMs: Vagrant's state in the
// build directory, the provider cfg selects, and the console directory
// the Vagrantfile logs the machines' serial consoles into.
func newCLI(cfg *config.Config, out *ui.Printer) (*CLI, error) {
	cli, err := NewCLI(cfg.Root, stateDir(cfg), providerName(cfg), out.Writer())
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(consoleDir(cfg))
	if err != nil {
		return nil, err
	}
	cli.Env = append(cli.Env, "VM_CONSOLE_DIR="+dir)
	return cli, nil
}
