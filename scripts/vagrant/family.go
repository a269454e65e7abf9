package vagrant

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/grub"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
)

// family is how one kind of guest installs kernel packages and switches
// its default kernel: el7 (rpm, grub2-set-default by menu index) or deb
// (Ubuntu and Debian: GRUB_DEFAULT title path and update-grub).
type family struct {
	Name        string
	PackageExt  string // .rpm or .deb
	GrubCfg     string // the generated menu
	installCmd  func(files []string) string
	mkconfigCmd string
	// defaults are the /etc/default/grub settings Init makes.
	defaults map[string]string
	// setDefault returns the commands that make unameR the default entry,
	// given the current grub.cfg and /etc/default/grub.
	setDefault func(grubCfg, defaults []byte, unameR string) (cmds []string, newDefaults []byte, err error)
}

// Machines are the Vagrantfile's machines: a machine's name is the VM group
// of the grid lines it runs.
var machines = map[string]*family{
	"centos7":      el7,
	"amazonlinux2": el7,
	"ubuntu":       deb,
	"debian":       deb,
}

// Groups lists the VM groups the Vagrant provider has machines for.
func Groups() []string {
	var out []string
	for g := range machines {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

var el7 = &family{
	Name:       "el7",
	PackageExt: ".rpm",
	GrubCfg:    "/boot/grub2/grub.cfg",
	installCmd: func(files []string) string {
		// localinstall resolves the packages' dependencies from the
		// guest's repositories; --nogpgcheck because third-party kernels
		// (elrepo) come without their key installed.
		return "sudo yum -y --nogpgcheck localinstall " + quoteAll(files)
	},
	mkconfigCmd: "sudo grub2-mkconfig -o /boot/grub2/grub.cfg",
	defaults:    map[string]string{"GRUB_DEFAULT": "saved", "GRUB_TIMEOUT": "1"},
	setDefault: func(grubCfg, defaults []byte, unameR string) ([]string, []byte, error) {
		idx, err := grub.El7Default(grubCfg, unameR)
		if err != nil {
			return nil, nil, err
		}
		return []string{"sudo grub2-set-default " + sshx.Quote(idx)}, nil, nil
	},
}

var deb = &family{
	Name:       "deb",
	PackageExt: ".deb",
	GrubCfg:    "/boot/grub/grub.cfg",
	installCmd: func(files []string) string {
		// apt resolves dependencies (initramfs-tools, linux-base) from the
		// guest's sources; when those are unreachable but the
		// dependencies are present, dpkg alone does the job.
		return "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + quoteAll(files) +
			" || sudo env DEBIAN_FRONTEND=noninteractive dpkg -i " + quoteAll(files)
	},
	mkconfigCmd: "sudo update-grub",
	defaults:    map[string]string{"GRUB_TIMEOUT": "1", "GRUB_TIMEOUT_STYLE": "menu"},
	setDefault: func(grubCfg, defaults []byte, unameR string) ([]string, []byte, error) {
		title, err := grub.TitleDefault(grubCfg, unameR)
		if err != nil {
			return nil, nil, err
		}
		return []string{"sudo update-grub"}, grub.SetVar(defaults, "GRUB_DEFAULT", title), nil
	},
}

func quoteAll(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		// apt needs a path, not a bare name, to take a local file.
		if !strings.HasPrefix(f, "/") && !strings.HasPrefix(f, "./") {
			f = "./" + f
		}
		q[i] = sshx.Quote(f)
	}
	return strings.Join(q, " ")
}

// machine is a connected guest of one family.
type machine struct {
	name string
	fam  *family
	ssh  *sshx.Client
}

// readFile returns a file of the guest, read as root.
func (g *machine) readFile(ctx context.Context, p string) ([]byte, error) {
	out, err := g.ssh.Output(ctx, "sudo cat "+sshx.Quote(p))
	return []byte(out), err
}

// writeFile replaces a root-owned file of the guest with data, atomically.
func (g *machine) writeFile(ctx context.Context, p string, data []byte) error {
	tmp := p + ".test-vm"
	var errb strings.Builder
	st, err := g.ssh.Run(ctx, fmt.Sprintf("sudo tee %s >/dev/null && sudo mv -f %s %s", sshx.Quote(tmp), sshx.Quote(tmp), sshx.Quote(p)),
		strings.NewReader(string(data)), nil, &errb)
	if err == nil && st != 0 {
		err = fmt.Errorf("exit status %d: %s", st, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		return fmt.Errorf("%s: write %s: %w", g.name, p, err)
	}
	return nil
}

// setupGrub makes the boot menu usable for switching: the family's
// /etc/default/grub settings (el7 needs GRUB_DEFAULT=saved for
// grub2-set-default, a short visible timeout keeps reboots quick), then
// regenerates grub.cfg.
func (g *machine) setupGrub(ctx context.Context) error {
	defaults, err := g.readFile(ctx, "/etc/default/grub")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(g.fam.defaults))
	for k := range g.fam.defaults {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		defaults = grub.SetVar(defaults, k, g.fam.defaults[k])
	}
	if err := g.writeFile(ctx, "/etc/default/grub", defaults); err != nil {
		return err
	}
	if _, err := g.ssh.Output(ctx, g.fam.mkconfigCmd); err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	return nil
}

// installedKernels lists the kernels the guest's grub menu boots.
func (g *machine) installedKernels(ctx context.Context) ([]string, error) {
	cfg, err := g.readFile(ctx, g.fam.GrubCfg)
	if err != nil {
		return nil, err
	}
	entries, err := grub.Parse(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", g.name, g.fam.GrubCfg, err)
	}
	return grub.Kernels(entries), nil
}

// makeDefault makes unameR the kernel grub boots next and from then on.
func (g *machine) makeDefault(ctx context.Context, unameR string) error {
	cfg, err := g.readFile(ctx, g.fam.GrubCfg)
	if err != nil {
		return err
	}
	defaults, err := g.readFile(ctx, "/etc/default/grub")
	if err != nil {
		return err
	}
	cmds, newDefaults, err := g.fam.setDefault(cfg, defaults, unameR)
	if err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	if newDefaults != nil {
		if err := g.writeFile(ctx, "/etc/default/grub", newDefaults); err != nil {
			return err
		}
	}
	for _, c := range cmds {
		if _, err := g.ssh.Output(ctx, c); err != nil {
			return fmt.Errorf("%s: make %s the default: %w", g.name, unameR, err)
		}
	}
	return nil
}

// install uploads the package files and installs them.
func (g *machine) install(ctx context.Context, dir string, files []string) error {
	var remote []string
	for _, f := range files {
		r := path.Join(dir, path.Base(f))
		if err := g.ssh.Upload(ctx, f, r, 0o644, nil); err != nil {
			return err
		}
		remote = append(remote, r)
	}
	if _, err := g.ssh.Output(ctx, g.fam.installCmd(remote)); err != nil {
		return fmt.Errorf("%s: install %s: %w", g.name, strings.Join(files, ", "), err)
	}
	return nil
}
