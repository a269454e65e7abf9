// Package vm is the VM test stage: it boots each kernel of the grid, loads
// each compiled driver, runs scap-open and records the classified outcome
// of every cell in results.json. The loop is package loop, once for every
// provider; a provider (a package of its own behind loop.Provider) boots
// kernels and runs cells: qemu (direct kernel boot with the guest agent,
// package qemuvm) or Vagrant with VirtualBox or libvirt (package vagrant).
package vm

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vagrant"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/qemuvm"
)

// Providers are the providers VM_PROVIDER names (config.Providers lists
// the same names, and "auto"). A new provider is a package implementing
// loop.Provider and one line here.
var Providers = []loop.Provider{
	qemuvm.Provider{},
	vagrant.Provider{Hypervisor: "virtualbox"},
	vagrant.Provider{Hypervisor: "libvirt"},
}

// Provider resolves cfg.Provider: "auto" is Vagrant + VirtualBox when both
// vagrant and VBoxManage are on PATH, else qemu.
func Provider(cfg *config.Config) (loop.Provider, error) {
	name := cfg.Provider
	if name == "auto" {
		name = "qemu"
		_, errV := exec.LookPath("vagrant")
		_, errB := exec.LookPath("VBoxManage")
		if errV == nil && errB == nil {
			name = "virtualbox"
		}
	}
	var names []string
	for _, p := range Providers {
		if p.Name() == name {
			return p, nil
		}
		names = append(names, p.Name())
	}
	return nil, fmt.Errorf("VM_PROVIDER=%s: no such provider (providers: %s)", name, strings.Join(names, ", "))
}

// Init prepares the provider of the run (for qemu: build the guest agent,
// check qemu and decide KVM or TCG by a short real boot, recorded in
// build/accel.json).
func Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	p, err := Provider(cfg)
	if err != nil {
		return err
	}
	return p.Init(ctx, cfg, out)
}

// Prepare is what a loop needs of Init: for qemu the same, for Vagrant
// the VMs an earlier init prepared for these kernels are kept, so that
// re-running a loop does not re-create them (as with the original suite).
func Prepare(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	p, err := Provider(cfg)
	if err != nil {
		return err
	}
	return p.Prepare(ctx, cfg, out)
}

// Loop tests the compiled drivers on the kernels of the grid whose VM group
// is group ("" for all) and merges the outcomes into results.json.
func Loop(ctx context.Context, cfg *config.Config, out *ui.Printer, group string) error {
	p, err := Provider(cfg)
	if err != nil {
		return err
	}
	return loop.Run(ctx, cfg, out, p, group)
}

// Cleanup removes what every provider keeps between runs outside results
// and logs (Vagrant VMs Init created, the guest agent, the accel decision).
func Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	var errs []error
	for _, p := range Providers {
		errs = append(errs, p.Cleanup(ctx, cfg, out))
	}
	return errors.Join(errs...)
}
