package vagrant

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Deadlines of the guest's life cycle. Generous: under emulation (libvirt
// with domain type qemu) a reboot takes minutes; polling returns as soon as
// the guest answers.
const (
	sshTimeout    = 15 * time.Minute
	rebootTimeout = 5 * time.Minute // measured: 31-114 s under TCG on a loaded host
)

// stateFile records what Init installed in a group's VM, so the loop can
// tell a kernel that was never installed from one that does not boot.
type stateFile struct {
	Machine  string    `json:"machine"`
	Provider string    `json:"provider"`
	Kernels  []string  `json:"kernels"` // uname -r of the installed kernels
	Time     time.Time `json:"time"`
}

func statePath(cfg *config.Config, group string) string {
	return cfg.Path("vagrant", group+".json")
}

func stateDir(cfg *config.Config) string { return cfg.Path("vagrant", "state") }

// Init (re)creates the VM of every group of the grid that has a Vagrant
// machine, installs the group's kernels in it and sets grub up for
// switching, as the original vm-init did. Groups without a machine are
// named and left to other providers.
func Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	provider := providerName(cfg)
	cli, err := NewCLI(cfg.Root, stateDir(cfg), provider, out.Writer())
	if err != nil {
		return err
	}
	groups := groupsOf(m, "")
	if len(groups) == 0 {
		return fmt.Errorf("init: no kernel of the grid is in a Vagrant group (%s)", strings.Join(Groups(), ", "))
	}
	for _, g := range unknownGroups(m) {
		out.Linef("init: no Vagrant machine for VM group %q; its kernels are not tested with provider %s", g, provider)
	}
	var failed []string
	for _, group := range groups {
		if err := initGroup(ctx, cfg, out, cli, m, group); err != nil {
			if ctx.Err() != nil {
				return err
			}
			out.Linef("init %s: FAILED: %v", group, err)
			failed = append(failed, group)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("init: VM(s) %s could not be prepared (see above)", strings.Join(failed, ", "))
	}
	return nil
}

func initGroup(ctx context.Context, cfg *config.Config, out *ui.Printer, cli *CLI, m *kernel.Manifest, group string) (err error) {
	fam := machines[group]
	start := time.Now()
	var entries []kernel.Entry
	for _, e := range m.Kernels {
		if e.VM != group {
			continue
		}
		if e.Error != "" {
			out.Linef("init %s: kernel %s skipped: %s", group, e.UnameR, e.Error)
			continue
		}
		entries = append(entries, e)
	}
	if len(entries) > 9 {
		// The original's advice: more than 9-10 kernels in one VM fill
		// /boot and slow every grub update.
		out.Linef("init %s: %d kernels in one VM; more than 9 may not fit in /boot", group, len(entries))
	}
	os.Remove(statePath(cfg, group))
	out.Linef("init %s: destroying and creating the VM (provider %s)", group, cli.Provider)
	if err := cli.Destroy(ctx, group); err != nil {
		return err
	}
	defer func() {
		// A VM that was not prepared is useless and holds memory.
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			cli.Destroy(cctx, group)
		}
	}()
	if err := cli.Up(ctx, group); err != nil {
		return err
	}
	g, err := connect(ctx, cli, group, fam)
	if err != nil {
		return err
	}
	defer g.ssh.Close()

	dir := path.Join(remoteBase, "kernels")
	var want []string
	for _, e := range entries {
		var pkgs []string
		for _, p := range e.Kernels {
			if strings.HasSuffix(p, fam.PackageExt) {
				pkgs = append(pkgs, p)
			}
		}
		if len(pkgs) == 0 {
			out.Linef("init %s: kernel %s has no %s package; skipped", group, e.UnameR, fam.PackageExt)
			continue
		}
		out.Linef("init %s: installing kernel %s (%d packages)", group, e.UnameR, len(pkgs))
		if err := g.install(ctx, path.Join(dir, e.UnameR), pkgs); err != nil {
			return err
		}
		want = append(want, e.UnameR)
	}
	if err := g.setupGrub(ctx); err != nil {
		return err
	}
	have, err := g.installedKernels(ctx)
	if err != nil {
		return err
	}
	for _, k := range want {
		if !slices.Contains(have, k) {
			return fmt.Errorf("kernel %s was installed but is not in %s (menu has: %s)", k, fam.GrubCfg, strings.Join(have, ", "))
		}
	}
	// Free the disk: the packages are installed.
	g.ssh.Output(ctx, "rm -rf "+sshx.Quote(dir))
	st := stateFile{Machine: group, Provider: cli.Provider, Kernels: want, Time: time.Now().UTC()}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(cfg.Path("vagrant"), 0o755); err != nil {
		return err
	}
	if err := results.WriteFileAtomic(statePath(cfg, group), append(b, '\n')); err != nil {
		return err
	}
	out.Linef("init %s: ready with %d kernels in %s: %s", group, len(want), time.Since(start).Round(time.Second), strings.Join(want, ", "))
	return nil
}

// connect waits for the ssh of the machine named name and returns it.
func connect(ctx context.Context, cli *CLI, name string, fam *family) (*machine, error) {
	sc, err := cli.SSHConfig(ctx, name)
	if err != nil {
		return nil, err
	}
	c, err := sshx.New(sc)
	if err != nil {
		return nil, err
	}
	if err := c.WaitReady(ctx, sshTimeout); err != nil {
		return nil, err
	}
	return &machine{name: name, fam: fam, ssh: c}, nil
}

// groupsOf lists the Vagrant groups of the grid's kernels (only group, if
// not ""), in grid order.
func groupsOf(m *kernel.Manifest, group string) []string {
	var out []string
	for _, e := range m.Kernels {
		if machines[e.VM] == nil || (group != "" && e.VM != group) || slices.Contains(out, e.VM) {
			continue
		}
		out = append(out, e.VM)
	}
	return out
}

func unknownGroups(m *kernel.Manifest) []string {
	var out []string
	for _, e := range m.Kernels {
		if machines[e.VM] == nil && !slices.Contains(out, e.VM) {
			out = append(out, e.VM)
		}
	}
	return out
}

func readState(cfg *config.Config, group string) (*stateFile, error) {
	b, err := os.ReadFile(statePath(cfg, group))
	if err != nil {
		return nil, fmt.Errorf("VM %s was not prepared (run init with VM_PROVIDER=%s): %w", group, providerName(cfg), err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath(cfg, group), err)
	}
	return &st, nil
}
