package vagrant

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Provider is the Vagrant provider as the VM stage dispatches to it: its
// methods are Init and Loop.
type Provider struct{}

// Init is the package's Init.
func (Provider) Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	return Init(ctx, cfg, out)
}

// Loop is the package's Loop.
func (Provider) Loop(ctx context.Context, cfg *config.Config, out *ui.Printer, group string) error {
	return Loop(ctx, cfg, out, group)
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
	cli, err := NewCLI(cfg.Root, stateDir(cfg), providerName(cfg), out.Writer())
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
