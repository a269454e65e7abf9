// Package vm is the VM test stage: it boots each kernel of the grid, loads
// each compiled driver, runs scap-open and records the classified outcome
// of every cell in results.json. Init and Loop dispatch on the provider:
// qemu (direct kernel boot with our guest agent, this package) or Vagrant
// (VirtualBox or libvirt, package vagrant).
package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vagrant"
)

// Provider resolves cfg.Provider: "auto" is Vagrant + VirtualBox when both
// vagrant and VBoxManage are on PATH, else qemu.
func Provider(cfg *config.Config) string {
	if cfg.Provider != "auto" {
		return cfg.Provider
	}
	_, errV := exec.LookPath("vagrant")
	_, errB := exec.LookPath("VBoxManage")
	if errV == nil && errB == nil {
		return "virtualbox"
	}
	return "qemu"
}

// vagrantProvider is what this stage needs of the Vagrant provider.
type vagrantProvider interface {
	Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error
	Loop(ctx context.Context, cfg *config.Config, out *ui.Printer, group string) error
}

// vagrantStage returns the Vagrant provider (virtualbox, libvirt).
func vagrantStage() vagrantProvider { return vagrant.Provider{} }

// Init prepares the VM stage. qemu: build the guest agent, check qemu and
// decide KVM or TCG by a short real boot (recorded in build/accel.json).
func Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	switch p := Provider(cfg); p {
	case "qemu":
		_, err := initQemu(ctx, cfg, out)
		return err
	default:
		return vagrantStage().Init(ctx, cfg, out)
	}
}

// Loop tests the compiled drivers on the kernels of the grid whose VM group
// is group ("" for all) and merges the outcomes into results.json.
func Loop(ctx context.Context, cfg *config.Config, out *ui.Printer, group string) error {
	switch p := Provider(cfg); p {
	case "qemu":
		return loopQemu(ctx, cfg, out, group)
	default:
		return vagrantStage().Loop(ctx, cfg, out, group)
	}
}

// Cleanup destroys the Vagrant VMs Init created, if any, and removes what
// the qemu provider keeps between runs outside results and logs: the guest
// agent, the accel decision and leftover initramfs files.
func Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	vErr := vagrant.Cleanup(ctx, cfg, out)
	if err := os.RemoveAll(cfg.Path("vm")); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if err := os.RemoveAll(cfg.Path(accelFile)); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return vErr
}
