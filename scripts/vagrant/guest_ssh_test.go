package vagrant

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/grub"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx/sshxtest"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// fakeGuest is a real sshd on this host standing in for a guest: commands
// run as root from the login user's home (a temporary directory), in their
// own mount namespace, with stand-in tools first on PATH; sudo runs its
// arguments as they are.
type fakeGuest struct {
	home, bin string
	srv       *sshxtest.Server
	client    *sshx.Client
}

func startFakeGuest(t *testing.T, tools map[string]string) *fakeGuest {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the guest side mounts and runs as root")
	}
	for _, tool := range []string{"unshare", "chroot", "timeout", "mountpoint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	g := &fakeGuest{home: t.TempDir(), bin: t.TempDir()}
	writeFile(t, filepath.Join(g.bin, "sudo"), "#!/bin/sh\nexec \"$@\"\n")
	for name, script := range tools {
		writeFile(t, filepath.Join(g.bin, name), script)
	}
	wrap := filepath.Join(g.bin, "guest-shell")
	writeFile(t, wrap, "#!/bin/sh\nexport HOME="+g.home+" PATH="+g.bin+":$PATH\ncd \"$HOME\" || exit 1\n"+
		"exec unshare --mount --propagation private /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n")
	g.srv = sshxtest.Start(t, "ForceCommand "+wrap)
	hosts, err := sshx.ParseSSHConfig(g.srv.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g.client, err = sshx.Dial(ctx, hosts[0])
	if err != nil {
		t.Fatalf("%v\n%s", err, g.srv.Log())
	}
	t.Cleanup(func() { g.client.Close() })
	return g
}

// fakeVagrant is the VM lifecycle of a fakeGuest: a hard reset stops its
// sshd with every session, as pulling the plug does, and up starts it.
type fakeVagrant struct {
	g         *fakeGuest
	ups, offs int
}

func (f *fakeVagrant) Up(ctx context.Context, machine string) error {
	f.ups++
	f.g.srv.Restart()
	return nil
}

func (f *fakeVagrant) Halt(ctx context.Context, machine string, force bool) error {
	f.offs++
	f.g.srv.Stop()
	return nil
}

func (f *fakeVagrant) SSHConfig(ctx context.Context, machine string) (sshx.Config, error) {
	hosts, err := sshx.ParseSSHConfig(f.g.srv.SSHConfig)
	if err != nil {
		return sshx.Config{}, err
	}
	return hosts[0], nil
}

// Init's kernel installation over ssh, with stand-ins for apt-get (which
// refuses a 7.x image without its linux-base-<abi>, in apt's words),
// update-grub (a menu of what apt-get installed, but for one kernel whose
// hooks "forgot" grub) and dpkg: the kernels that install are recorded,
// each that does not is recorded with the installer's words, what a
// failed install left is purged, and the kernel console goes to ttyS0.
func TestInstallKernelsOverSSH(t *testing.T) {
	g := startFakeGuest(t, map[string]string{
		"apt-get": `#!/bin/sh
# apt-get install -y --no-install-recommends FILE...
for f; do
	case "$f" in -*|install) continue ;; esac
	k=$(basename "$(dirname "$f")")
	case "$(cat "$f")" in
	unsatisfiable)
		echo "Reading package lists..."
		echo "Building dependency tree..."
		echo "The following packages have unmet dependencies:"
		echo " linux-image-$k : Depends: linux-base-$k (= 7.3.4-1~bpo13+1) but it is not installable"
		echo "E: Unable to correct problems, you have held broken packages." >&2
		echo "linux-image-$k" >> "$HOME/half-installed"
		exit 100 ;;
	nomenu) echo "$k" >> "$HOME/no-menu" ;;
	esac
	grep -qx "$k" "$HOME/installed" 2>/dev/null || echo "$k" >> "$HOME/installed"
done
`,
		"update-grub": `#!/bin/sh
: > "$HOME/grub.cfg"
while read -r k; do
	grep -qx "$k" "$HOME/no-menu" 2>/dev/null && continue
	printf "menuentry 'Debian GNU/Linux, with Linux %s' {\n\tlinux /boot/vmlinuz-%s root=LABEL=root ro\n}\n" "$k" "$k" >> "$HOME/grub.cfg"
done < "$HOME/installed"
`,
		"dpkg-query": `#!/bin/sh
# dpkg-query -W -f=FORMAT PACKAGE
for p; do :; done
grep -qx "$p" "$HOME/half-installed" 2>/dev/null && printf 'iU '
exit 0
`,
		"dpkg": "#!/bin/sh\necho \"$@\" >> \"$HOME/dpkg-calls\"\n",
	})
	writeFile(t, filepath.Join(g.home, "default-grub"), "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"console=ttyS0,115200 console=tty0 net.ifnames=0\"\n")
	fam := *deb
	fam.GrubCfg, fam.DefaultGrub = filepath.Join(g.home, "grub.cfg"), filepath.Join(g.home, "default-grub")
	m := &machine{name: "debian", fam: &fam, ssh: g.client}

	pkgs := t.TempDir()
	pkg := func(name, content string) string {
		p := filepath.Join(pkgs, name)
		writeFile(t, p, content)
		return p
	}
	entries := []kernel.Entry{
		{UnameR: "6.1.0-50-cloud-amd64", Kernels: []string{pkg("linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb", "ok")}},
		{UnameR: "7.3.4+deb13-cloud-amd64", Kernels: []string{
			pkg("linux-image-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb", "unsatisfiable"),
			pkg("linux-binary-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb", "ok")}},
		{UnameR: "6.12.117+deb13-cloud-amd64", Kernels: []string{pkg("linux-image-6.12.117+deb13-cloud-amd64_6.12.117-1_amd64.deb", "nomenu")}},
		{UnameR: "3.10.0-1160.el7.x86_64", Kernels: []string{pkg("kernel-3.10.0-1160.el7.x86_64.rpm", "rpm")}},
		{UnameR: "5.10.0-32-cloud-amd64", Kernels: []string{pkg("linux-image-5.10.0-32-cloud-amd64_5.10.223-1_amd64.deb", "ok")}},
	}
	var printed bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := m.installKernels(ctx, ui.New(&printed), entries)
	if err != nil {
		t.Fatalf("%v\n%s", err, printed.String())
	}
	// The kernels before and after the one that failed are installed.
	if want := []string{"6.1.0-50-cloud-amd64", "5.10.0-32-cloud-amd64"}; !slices.Equal(st.Kernels, want) {
		t.Errorf("installed %v, want %v\n%s", st.Kernels, want, printed.String())
	}
	want := map[string]string{
		"7.3.4+deb13-cloud-amd64": "linux-image-7.3.4+deb13-cloud-amd64 : Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1) but it is not installable; " +
			"E: Unable to correct problems, you have held broken packages.",
		"6.12.117+deb13-cloud-amd64": "installed, but not in " + fam.GrubCfg + " (menu has: 6.1.0-50-cloud-amd64, 5.10.0-32-cloud-amd64)",
		"3.10.0-1160.el7.x86_64":     "no .deb package among the kernel's packages",
	}
	for k, w := range want {
		if st.Failed[k] != w {
			t.Errorf("%s: failure %q, want %q", k, st.Failed[k], w)
		}
	}
	if len(st.Failed) != len(want) {
		t.Errorf("failures %v", st.Failed)
	}
	// What the refused install left half-installed was purged, and only
	// that; the uploads are gone.
	if b, _ := os.ReadFile(filepath.Join(g.home, "dpkg-calls")); string(b) != "--purge --force-depends linux-image-7.3.4+deb13-cloud-amd64\n" {
		t.Errorf("dpkg calls %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(g.home, remoteBase, "kernels", "*")); len(left) > 0 {
		t.Errorf("uploads left in the guest: %v", left)
	}
	defaults, _ := os.ReadFile(fam.DefaultGrub)
	if v, _ := grub.Var(defaults, "GRUB_CMDLINE_LINUX"); v != "net.ifnames=0 console=tty0 console=ttyS0,115200 oops=panic panic=10" {
		t.Errorf("kernel command line %q", v)
	}
	if !strings.Contains(printed.String(), "kernel 7.3.4+deb13-cloud-amd64 could not be installed: linux-image-7.3.4+deb13-cloud-amd64 : Depends:") {
		t.Errorf("output does not name the failed kernel:\n%s", printed.String())
	}
}

// A guest lost during a cell, over ssh against the stand-in agent
// (agentStandIn): a module that panics writes a panic report to the serial console log and
// kills the ssh session (as a panicking guest stops answering), one that
// is lost once kills it without a word the first time only, one that is
// lost every time always does. The panic is fail/panic with its lines,
// not retried; the lost-once cell passes on its second attempt; the
// always-lost one is an error after VM_RETRIES extra attempts. Each
// retry follows a hard reset. A panic printed on the console before the
// cells (an earlier boot) belongs to none of them.
func TestLostGuestOverSSH(t *testing.T) {
	consoleFile := filepath.Join(t.TempDir(), "debian.log")
	writeFile(t, consoleFile, "[    1.0] an earlier boot\n"+panicConsole+"[    2.0] rebooted\n")
	g := startFakeGuest(t, nil)
	unameB, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	k := kernel.Entry{UnameR: strings.TrimSpace(string(unameB)), VM: "debian"}
	build := t.TempDir()
	cfg, err := config.Parse(func(name string) string {
		return map[string]string{
			"VM_BUILD_DIR": build, "VM_COMPILERS": "gcc-12,gcc-13,gcc-14", "VM_DRIVERS": "kmod",
			"VM_RETRIES": "2", "VM_MIN_EVENTS": "30", "VM_TEST_SECONDS": "20", "VM_BEHAVIOUR": "off",
		}[name]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(build, "scap-open"), "#!/bin/sh\n")
	for comp, content := range map[string]string{"gcc-12": "panic", "gcc-13": "lost-once", "gcc-14": "lost-always"} {
		writeFile(t, filepath.Join(build, "driver", comp, k.UnameR+".ko"), content)
	}

	var printed bytes.Buffer
	vagrant := &fakeVagrant{g: g}
	l := newLooper(cfg, ui.New(&printed), vagrant, "libvirt", "debian")
	l.g, l.console = &machine{name: "debian", fam: deb, ssh: g.client}, consoleLog{consoleFile}
	cells := loop.PlanKernel(cfg, k, &results.File{}).Todo
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	hostGuest(l, k, cells, agentStandIn(t, consoleFile))
	if err := l.place(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := loop.Drive(ctx, cfg, l.out, "libvirt", &loop.Session{Parallel: 1, Lanes: []loop.Lane{l}}, time.Now()); err != nil {
		t.Fatalf("%v\n%s", err, printed.String())
	}

	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for comp, w := range map[string]struct {
		status   string
		attempts int
		reason   string
	}{
		"gcc-12": {"fail/panic", 1, "kernel oops/panic: [   41.203344] BUG: kernel NULL pointer dereference, address: 0000000000000008"},
		"gcc-13": {"pass", 2, "40 events"},
		"gcc-14": {"error", 3, "connection lost"},
	} {
		c := rf.Find(k.UnameR, comp, "kmod")
		if c == nil || c.Test == nil {
			t.Errorf("%s: not recorded", comp)
			continue
		}
		if got := status(c.Test); got != w.status || c.Test.Attempts != w.attempts || !strings.Contains(c.Test.Reason, w.reason) {
			t.Errorf("%s: %s after %d attempts (%s), want %s after %d with %q", comp, got, c.Test.Attempts, c.Test.Reason, w.status, w.attempts, w.reason)
		}
		if strings.Contains(c.Test.Reason, "earlier boot") {
			t.Errorf("%s: reason from an earlier boot: %s", comp, c.Test.Reason)
		}
	}
	// The panic cell's log holds the console it saw.
	if c := rf.Find(k.UnameR, "gcc-12", "kmod"); c != nil && c.Test != nil {
		b, _ := os.ReadFile(cfg.Path(c.Test.Log))
		if !strings.Contains(string(b), "--- serial console during the cell\n[   41.112233] scap: loading out-of-tree module") || strings.Contains(string(b), "an earlier boot") {
			t.Errorf("panic cell log:\n%s", b)
		}
	}
	// One hard reset before each cell or retry that follows a lost
	// guest (after the panic, lost-once's first attempt, lost-always's
	// first two), and one to leave the guest answering after the last.
	if vagrant.ups != 5 || vagrant.offs != 5 {
		t.Errorf("%d hard resets, %d ups; want 5 each\n%s", vagrant.offs, vagrant.ups, printed.String())
	}
}
