package vagrant

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
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
	DefaultGrub string // the settings grub's menu is generated from
	installCmd  func(files []string) string
	// undoCmd, when set, returns the command that removes what a failed
	// install of the named packages left half-installed.
	undoCmd     func(names []string) string
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
	Name:        "el7",
	PackageExt:  ".rpm",
	GrubCfg:     "/boot/grub2/grub.cfg",
	DefaultGrub: "/etc/default/grub",
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
	Name:        "deb",
	PackageExt:  ".deb",
	GrubCfg:     "/boot/grub/grub.cfg",
	DefaultGrub: "/etc/default/grub",
	installCmd: func(files []string) string {
		// One apt transaction for all of a kernel's packages, so that the
		// image's hooks run with its binary, modules and base files in
		// place (in the 7.x packaging they are what put vmlinuz into /boot
		// and the kernel into grub's menu). apt takes helpers the files do
		// not bring from the guest's sources, and refuses a set whose
		// dependencies it cannot satisfy before touching anything; no
		// dpkg -i fallback, which would leave such a set half-installed
		// and make apt refuse every later kernel. Downgrades are allowed:
		// a system has one version of each flavour meta package
		// (linux-image-cloud-amd64), and kernels of older suites bring
		// older ones than the box's; they only select kernels.
		return "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades --no-install-recommends " + quoteAll(files)
	},
	undoCmd: func(names []string) string {
		// A hook that failed leaves its package half-configured: purge the
		// kernel's packages that are not fully installed.
		return "for p in " + strings.Join(quoteEach(names), " ") + "; do " +
			"case \"$(dpkg-query -W -f='${db:Status-Abbrev}' \"$p\" 2>/dev/null)\" in ii*|un*|'') ;; *) echo \"$p\" ;; esac; " +
			"done | xargs -r sudo env DEBIAN_FRONTEND=noninteractive dpkg --purge --force-depends"
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

func quoteEach(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = sshx.Quote(w)
	}
	return q
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

// kernelArgs are the kernel command line settings the guests get. The
// screen stays a console, and ttyS0, the serial port the hypervisor logs
// to a host file, is the last one, so it is /dev/console and gets boot
// messages too. As in the qemu provider an oops is a panic (a cell that
// oopses is fail/panic, not a kernel limping on); a panicked guest
// reboots after 10 s, into grub's default, the kernel under test, so it
// comes back even when no hard reset reaches it.
var kernelArgs = []string{"console=tty0", "console=ttyS0,115200", "oops=panic", "panic=10"}

// withKernelArgs returns a kernel command line (GRUB_CMDLINE_LINUX) with
// its console=, oops= and panic= settings replaced by kernelArgs;
// everything else stays as the box had it.
func withKernelArgs(cmdline string) string {
	var keep []string
	for _, w := range strings.Fields(cmdline) {
		name, _, _ := strings.Cut(w, "=")
		if name != "console" && name != "oops" && name != "panic" {
			keep = append(keep, w)
		}
	}
	return strings.Join(append(keep, kernelArgs...), " ")
}

// grubDefaults returns /etc/default/grub with the family's settings (el7
// needs GRUB_DEFAULT=saved for grub2-set-default, a short visible timeout
// keeps reboots quick) and kernelArgs on the kernel command line.
func (f *family) grubDefaults(defaults []byte) []byte {
	names := make([]string, 0, len(f.defaults))
	for k := range f.defaults {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		defaults = grub.SetVar(defaults, k, f.defaults[k])
	}
	cmdline, _ := grub.Var(defaults, "GRUB_CMDLINE_LINUX")
	return grub.SetVar(defaults, "GRUB_CMDLINE_LINUX", withKernelArgs(cmdline))
}

// setupGrub makes the boot menu usable for switching and the kernels'
// console readable from the host (grubDefaults), then regenerates
// grub.cfg.
func (g *machine) setupGrub(ctx context.Context) error {
	defaults, err := g.readFile(ctx, g.fam.DefaultGrub)
	if err != nil {
		return err
	}
	if err := g.writeFile(ctx, g.fam.DefaultGrub, g.fam.grubDefaults(defaults)); err != nil {
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
	defaults, err := g.readFile(ctx, g.fam.DefaultGrub)
	if err != nil {
		return err
	}
	cmds, newDefaults, err := g.fam.setDefault(cfg, defaults, unameR)
	if err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	if newDefaults != nil {
		if err := g.writeFile(ctx, g.fam.DefaultGrub, newDefaults); err != nil {
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

// installError is a kernel whose packages the guest's installer refused:
// the kernel's own failure, not the VM's.
type installError struct {
	unameR string
	lines  []string // what the installer said that matters
}

func (e *installError) Error() string {
	return fmt.Sprintf("kernel %s could not be installed: %s", e.unameR, strings.Join(e.lines, "; "))
}

// install uploads the package files of kernel unameR into dir and
// installs them in one transaction. The installer refusing them (or the
// upload failing on the guest's side, e.g. a full disk) is an
// *installError, after undoing what a failed install left behind; a lost
// connection is returned as it is, an infrastructure error.
func (g *machine) install(ctx context.Context, unameR, dir string, files []string) error {
	defer g.ssh.Run(context.WithoutCancel(ctx), "rm -rf "+sshx.Quote(dir), nil, nil, nil)
	var remote, names []string
	for _, f := range files {
		r := path.Join(dir, path.Base(f))
		if err := g.ssh.Upload(ctx, f, r, 0o644, nil); err != nil {
			if errors.Is(err, sshx.ErrConnectionLost) || ctx.Err() != nil {
				return fmt.Errorf("%s: install %s: %w", g.name, unameR, err)
			}
			return &installError{unameR: unameR, lines: []string{err.Error()}}
		}
		remote = append(remote, r)
		names = append(names, packageName(f))
	}
	// One stream, so that apt's E: lines (stderr) stay after the unmet
	// dependencies they conclude (stdout).
	var out strings.Builder
	st, err := g.ssh.Run(ctx, g.fam.installCmd(remote)+" 2>&1", nil, &out, &out)
	if err != nil {
		return fmt.Errorf("%s: install %s: %w", g.name, unameR, err)
	}
	if st == 0 {
		return nil
	}
	ierr := &installError{unameR: unameR, lines: installerSays(out.String(), st)}
	if g.fam.undoCmd != nil {
		if _, err := g.ssh.Output(ctx, g.fam.undoCmd(names)); err != nil {
			ierr.lines = append(ierr.lines, fmt.Sprintf("(removing what was half-installed failed: %v)", err))
		}
	}
	return ierr
}

// packageName is the package name of a .deb or .rpm file name as Debian
// and Red Hat name their files (name_version_arch.deb,
// name-version-release.arch.rpm).
func packageName(file string) string {
	base := path.Base(file)
	if name, _, ok := strings.Cut(base, "_"); ok && strings.HasSuffix(base, ".deb") {
		return name
	}
	return strings.TrimSuffix(base, path.Ext(base))
}

// installerLine matches the lines of apt, dpkg and yum output that say why
// an install failed; installerHeader those among them that only announce
// more (apt 3's solver context).
var (
	installerLine   = regexp.MustCompile(`(?i)^E: |^dpkg: |^Error|error|(Pre-?)?Depends: |Requires: |Conflicts: |Breaks: |not installable|broken packages|failed|No space left`)
	installerHeader = regexp.MustCompile(`(?i)may provide additional context:$`)
)

// installerSays keeps, of an installer's output, the last few lines that
// say why it failed (apt's unmet dependencies, its E: lines, dpkg's
// errors), or its last lines when none does.
func installerSays(output string, status int) []string {
	var all, why []string
	for _, l := range strings.Split(output, "\n") {
		l = strings.TrimSpace(strings.TrimRight(l, "\r"))
		if l == "" {
			continue
		}
		all = append(all, l)
		if installerLine.MatchString(l) && !installerHeader.MatchString(l) && !slices.Contains(why, l) {
			why = append(why, l)
		}
	}
	const keep = 6
	if len(why) == 0 {
		why = all
	}
	if len(why) > keep {
		why = why[len(why)-keep:]
	}
	if len(why) == 0 {
		return []string{fmt.Sprintf("installer exit status %d, no output", status)}
	}
	return why
}
