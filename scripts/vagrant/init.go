package vagrant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
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
	Machine  string   `json:"machine"`
	Provider string   `json:"provider"`
	Kernels  []string `json:"kernels"` // uname -r of the installed kernels
	// Failed holds, per uname -r, why a kernel of the group is not
	// installed (the installer's words): its cells are errors that say so.
	Failed map[string]string `json:"failed,omitempty"`
	Time   time.Time         `json:"time"`
}

func statePath(cfg *config.Config, group string) string {
	return cfg.Path("vagrant", group+".json")
}

func stateDir(cfg *config.Config) string { return cfg.Path("vagrant", "state") }

// Init (re)creates the VM of every group of the grid that has a Vagrant
// machine, installs the group's kernels in it and sets grub up for
// switching, as the original vm-init did. Groups without a machine are
// named and left to other providers. A kernel that does not install is
// recorded with the installer's words and the group's other kernels are
// installed; only a VM that cannot be prepared at all fails Init.
func Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	cli, err := newCLI(cfg, out)
	if err != nil {
		return err
	}
	groups := groupsOf(m, "")
	if len(groups) == 0 {
		return fmt.Errorf("init: no kernel of the grid is in a Vagrant group (%s)", strings.Join(Groups(), ", "))
	}
	for _, g := range unknownGroups(m) {
		out.Linef("init: no Vagrant machine for VM group %q; its kernels are not tested with provider %s", g, cli.Provider)
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

// Prepare is what a loop needs of Init: each group's VM as an earlier Init
// left it, when that Init prepared it for the group's kernels of this
// grid (its state names each, installed or not) and the VM still exists;
// otherwise Init for that group. The init target always re-creates the
// VMs, as the original vm-init did; re-running a loop does not.
func Prepare(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	cli, err := newCLI(cfg, out)
	if err != nil {
		return err
	}
	groups := groupsOf(m, "")
	if len(groups) == 0 {
		return fmt.Errorf("init: no kernel of the grid is in a Vagrant group (%s)", strings.Join(Groups(), ", "))
	}
	var failed []string
	for _, group := range groups {
		if st, ok := prepared(cfg, m, group); ok {
			out.Linef("init %s: keeping the VM an earlier init prepared at %s with %d kernels (the init target re-creates it)",
				group, st.Time.Local().Format("2006-01-02 15:04"), len(st.Kernels))
			continue
		}
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

// prepared returns the state an earlier Init left for group when it
// covers every kernel of the group in m (installed, or recorded as not
// installable), with the provider cfg selects, and Vagrant still has the
// machine.
func prepared(cfg *config.Config, m *kernel.Manifest, group string) (*stateFile, bool) {
	st, err := readState(cfg, group)
	if err != nil || st.Provider != providerName(cfg) {
		return nil, false
	}
	if _, err := os.Stat(filepath.Join(stateDir(cfg), "machines", group)); err != nil {
		return nil, false
	}
	for _, e := range m.Kernels {
		if e.VM != group || e.Error != "" {
			continue
		}
		if _, failed := st.Failed[e.UnameR]; !failed && !slices.Contains(st.Kernels, e.UnameR) {
			return nil, false
		}
	}
	return st, true
}

// groupKernels are the kernels of group that the kernel stage made ready.
func groupKernels(out *ui.Printer, m *kernel.Manifest, group string) []kernel.Entry {
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
	return entries
}

func initGroup(ctx context.Context, cfg *config.Config, out *ui.Printer, cli *CLI, m *kernel.Manifest, group string) (err error) {
	start := time.Now()
	entries := groupKernels(out, m, group)
	os.Remove(statePath(cfg, group))
	out.Linef("init %s: destroying and creating the VM (provider %s)", group, cli.Provider)
	if err := cli.Destroy(ctx, group); err != nil {
		return err
	}
	// The VM a halt was recorded for is gone: the loop after this init
	// must not halt the new one.
	os.Remove(haltPendingPath(cfg, group))
	defer func() {
		// A VM that was not prepared is useless and holds memory.
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			cli.Destroy(cctx, group)
		}
	}()
	if err := prepareConsole(cfg, group); err != nil {
		return err
	}
	if err := cli.Up(ctx, group); err != nil {
		return err
	}
	g, err := connect(ctx, cli, group, machines[group])
	if err != nil {
		return err
	}
	defer g.ssh.Close()
	st, err := g.installKernels(ctx, out, entries)
	if err != nil {
		return err
	}
	st.Provider, st.Time = cli.Provider, time.Now().UTC()
	if err := writeState(cfg, st); err != nil {
		return err
	}
	out.Linef("init %s: ready with %d kernels in %s: %s", group, len(st.Kernels), time.Since(start).Round(time.Second), strings.Join(st.Kernels, ", "))
	for _, k := range slices.Sorted(maps.Keys(st.Failed)) {
		out.Linef("init %s: kernel %s NOT INSTALLED (its cells will be errors): %s", group, k, st.Failed[k])
	}
	return nil
}

// installKernels installs each kernel of entries in the guest, one
// transaction per kernel, sets grub up and checks that every installed
// kernel is in the menu. A kernel that fails (refused by the installer, or
// installed but missing from the menu) is recorded in the state's Failed
// and the others go on; the error is for a guest that is lost.
func (g *machine) installKernels(ctx context.Context, out *ui.Printer, entries []kernel.Entry) (*stateFile, error) {
	st := &stateFile{Machine: g.name, Failed: map[string]string{}}
	var want []string
	for _, e := range entries {
		var pkgs []string
		for _, p := range e.Kernels {
			if strings.HasSuffix(p, g.fam.PackageExt) {
				pkgs = append(pkgs, p)
			}
		}
		if len(pkgs) == 0 {
			st.Failed[e.UnameR] = fmt.Sprintf("no %s package among the kernel's packages", g.fam.PackageExt)
			continue
		}
		out.Linef("init %s: installing kernel %s (%d packages)", g.name, e.UnameR, len(pkgs))
		err := g.install(ctx, e.UnameR, path.Join(remoteBase, "kernels", e.UnameR), pkgs)
		var ierr *installError
		switch {
		case errors.As(err, &ierr):
			out.Linef("init %s: %v", g.name, err)
			st.Failed[e.UnameR] = strings.Join(ierr.lines, "; ")
		case err != nil:
			return nil, err
		default:
			want = append(want, e.UnameR)
		}
	}
	if err := g.setupGrub(ctx); err != nil {
		return nil, err
	}
	have, err := g.installedKernels(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range want {
		if !slices.Contains(have, k) {
			st.Failed[k] = fmt.Sprintf("installed, but not in %s (menu has: %s)", g.fam.GrubCfg, strings.Join(have, ", "))
			continue
		}
		st.Kernels = append(st.Kernels, k)
	}
	return st, nil
}

// connect waits for the ssh of the machine named name and returns it.
func connect(ctx context.Context, cli lifecycle, name string, fam *family) (*machine, error) {
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

// writeState records what Init made of the group's VM.
func writeState(cfg *config.Config, st *stateFile) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Path("vagrant"), 0o755); err != nil {
		return err
	}
	return fsx.WriteFile(statePath(cfg, st.Machine), append(b, '\n'), 0o644)
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
