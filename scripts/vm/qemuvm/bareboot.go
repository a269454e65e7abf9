package qemuvm

import (
	"context"
	"fmt"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/qemu"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// bareBootDeadline bounds one bare boot: the same allowance a test VM has
// for everything that is not a cell.
const bareBootDeadline = 120 * time.Second

// BareBoot boots kernel k under qemu to the guest agent with an empty plan,
// so the agent powers off at once: the floor every test VM of that kernel
// pays. dir receives the VM's initramfs and console. It returns qemu's wall
// time in seconds and the accelerator used (Init's recorded decision, or
// cfg.Accel), running Init first when it has not run in cfg.BuildDir.
func BareBoot(ctx context.Context, cfg *config.Config, out *ui.Printer, k kernel.Entry, dir string) (float64, string, error) {
	setup, err := loadSetup(ctx, cfg, out)
	if err != nil {
		return 0, "", err
	}
	vmlinuz := k.Vmlinuz
	acc := setup.AccelFor(k.Arch)
	deadline := bareBootDeadline
	if layout.ArchOf(k.Arch) != layout.HostArch() {
		deadline = time.Duration(float64(deadline) * qemu.ForeignSlowdown)
	}
	res, rep, err := bareBoot(ctx, dir, setup.Agent(k.Arch), k, acc, deadline, false)
	if err != nil {
		return res.Seconds, acc, fmt.Errorf("bare boot of %s: %w", vmlinuz, err)
	}
	if rep.Hello == nil || !rep.Done {
		return res.Seconds, acc, fmt.Errorf("bare boot of %s: the guest agent did not report (console %s/console.log)", vmlinuz, dir)
	}
	return res.Seconds, acc, nil
}
