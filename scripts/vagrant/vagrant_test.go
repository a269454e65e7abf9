package vagrant

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/grub"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// repoRoot is the directory of the Vagrantfile.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// vagrant runs the vagrant CLI on the project's Vagrantfile with its state
// in a temporary directory; it skips without vagrant.
func vagrant(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("needs vagrant (Debian: apt-get install vagrant)")
	}
	cmd := exec.Command("vagrant", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "VAGRANT_DOTFILE_PATH="+t.TempDir(), "VAGRANT_HOME="+filepath.Join(t.TempDir(), "home"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestVagrantfileValidates(t *testing.T) {
	out, err := vagrant(t, nil, "validate")
	if err != nil || !strings.Contains(out, "validated successfully") {
		t.Fatalf("vagrant validate: %v\n%s", err, out)
	}
	// With the serial console log, in both providers' settings
	// (VirtualBox's validated without asking for the provider, which is
	// not usable here).
	for _, env := range [][]string{
		{"VM_LIBVIRT_DRIVER=qemu", "VM_IP_DEBIAN=none", "VM_MEMORY=1024", "VM_CONSOLE_DIR=" + t.TempDir()},
		{"VM_CONSOLE_DIR=" + t.TempDir(), "VAGRANT_DEFAULT_PROVIDER=libvirt", "VM_HALT_NOW=1"},
	} {
		out, err = vagrant(t, env, "validate")
		if err != nil {
			t.Fatalf("vagrant validate with %v: %v\n%s", env, err, out)
		}
	}
	// Every group the Go side knows is a machine of the Vagrantfile.
	out, err = vagrant(t, nil, "status", "--machine-readable")
	if err != nil {
		t.Fatalf("vagrant status: %v\n%s", err, out)
	}
	for _, g := range Groups() {
		if !strings.Contains(out, ","+g+",") {
			t.Errorf("machine %s missing from vagrant status:\n%s", g, out)
		}
	}
	// Bad settings are errors that name the variable.
	for env, want := range map[string]string{
		"VM_LIBVIRT_DRIVER=xen": `VM_LIBVIRT_DRIVER="xen": want kvm or qemu`,
		"VM_CPUS=two":           `VM_CPUS="two": want a positive whole number`,
		"VM_CONSOLE_DIR=build":  `VM_CONSOLE_DIR="build": want an absolute directory`,
	} {
		out, err := vagrant(t, []string{env}, "validate")
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: err %v, output:\n%s", env, err, out)
		}
	}
}

// A forced halt asks the Vagrantfile to power off at once (vagrant-libvirt
// ignores --force); a plain halt does not.
func TestHaltForce(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "vagrant")
	writeFile(t, bin, "#!/bin/sh\necho \"$* now=$VM_HALT_NOW state=$VAGRANT_DOTFILE_PATH\" >> "+calls+"\n")
	c := &CLI{Bin: bin, Dir: dir, Provider: "libvirt", Env: []string{"VAGRANT_DOTFILE_PATH=/s"}}
	if err := c.Halt(t.Context(), "debian", true); err != nil {
		t.Fatal(err)
	}
	if err := c.Halt(t.Context(), "debian", false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(calls)
	if want := "halt debian --force now=1 state=/s\nhalt debian now= state=/s\n"; string(b) != want {
		t.Errorf("calls %q, want %q", b, want)
	}
}

func TestVagrantfileMissingPlugin(t *testing.T) {
	// With plugins disabled, asking for libvirt names the missing plugin
	// instead of failing on unknown settings.
	out, err := vagrant(t, []string{"VAGRANT_NO_PLUGINS=1", "VAGRANT_DISABLE_PLUGIN_INIT=1", "VAGRANT_DEFAULT_PROVIDER=libvirt"}, "validate")
	if err == nil || !strings.Contains(out, "needs the vagrant-libvirt plugin") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}

func readGrubTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "grub", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFamiliesSetDefault(t *testing.T) {
	cmds, defaults, err := el7.setDefault(readGrubTestdata(t, "el7-grub.cfg"), readGrubTestdata(t, "el7-default-grub"), "5.4.215-1.el7.elrepo.x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cmds, []string{"sudo grub2-set-default 2"}) || defaults != nil {
		t.Errorf("el7: %q, %q", cmds, defaults)
	}

	ubuntuDefaults := readGrubTestdata(t, "ubuntu-default-grub")
	cmds, defaults, err = deb.setDefault(readGrubTestdata(t, "ubuntu-grub.cfg"), ubuntuDefaults, "5.4.0-150-generic")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cmds, []string{"sudo update-grub"}) {
		t.Errorf("ubuntu commands %q", cmds)
	}
	if v, _ := grub.Var(defaults, "GRUB_DEFAULT"); v != "Advanced options for Ubuntu>Ubuntu, with Linux 5.4.0-150-generic" {
		t.Errorf("ubuntu GRUB_DEFAULT = %q", v)
	}

	for _, f := range []*family{el7, deb} {
		_, _, err := f.setDefault(readGrubTestdata(t, "ubuntu-grub.cfg"), ubuntuDefaults, "6.6.6-missing")
		var nf *grub.NotFoundError
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), "not found in grub, consider destroying and rebuilding the VM") {
			t.Errorf("%s: missing kernel: %v", f.Name, err)
		}
	}
}

func TestInstallCommands(t *testing.T) {
	// One apt transaction, and no dpkg -i that would leave a refused set
	// half-installed.
	got := deb.installCmd([]string{"test-vm/kernels/x/linux-image.deb", "test-vm/kernels/x/linux-base.deb"})
	if got != "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades --no-install-recommends ./test-vm/kernels/x/linux-image.deb ./test-vm/kernels/x/linux-base.deb" {
		t.Errorf("deb install: %s", got)
	}
	got = el7.installCmd([]string{"/home/vagrant/k 1.rpm"})
	if got != "sudo yum -y --nogpgcheck localinstall '/home/vagrant/k 1.rpm'" {
		t.Errorf("el7 install: %s", got)
	}
	undo := deb.undoCmd([]string{"linux-image-7.3.4+deb13-cloud-amd64", "linux-base"})
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = strings.NewReader(undo)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(undo, "for p in linux-image-7.3.4+deb13-cloud-amd64 linux-base;") {
		t.Errorf("undo %q: %v %s", undo, err, out)
	}
	for file, want := range map[string]string{
		"/b/kernels/linux-image-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb": "linux-image-7.3.4+deb13-cloud-amd64",
		"linux-base_4.17~bpo13+1_amd64.deb":                                        "linux-base",
		"kernel-3.10.0-1160.el7.x86_64.rpm":                                        "kernel-3.10.0-1160.el7.x86_64",
	} {
		if got := packageName(file); got != want {
			t.Errorf("packageName(%s) = %s, want %s", file, got, want)
		}
	}
}

// What apt says when a 7.x image comes without the packages it depends on
// (apt 2.6's words): the unmet dependencies and the verdict, not the
// progress lines.
func TestInstallerSays(t *testing.T) {
	const aptOut = `Reading package lists...
Building dependency tree...
Reading state information...
Note, selecting 'linux-image-7.3.4+deb13-cloud-amd64' instead of './test-vm/kernels/7.3.4+deb13-cloud-amd64/linux-image-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb'
Some packages could not be installed. This may mean that you have
requested an impossible situation or if you are using the unstable
distribution that some required packages have not yet been created
or been moved out of Incoming.
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 linux-image-7.3.4+deb13-cloud-amd64 : PreDepends: linux-base (>= 4.17~) but it is not going to be installed
                                       Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1) but it is not installable
E: Unable to correct problems, you have held broken packages.
`
	want := []string{
		"linux-image-7.3.4+deb13-cloud-amd64 : PreDepends: linux-base (>= 4.17~) but it is not going to be installed",
		"Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1) but it is not installable",
		"E: Unable to correct problems, you have held broken packages.",
	}
	if got := installerSays(aptOut, 100); !slices.Equal(got, want) {
		t.Errorf("apt:\n got %q\nwant %q", got, want)
	}
	// trixie's apt 3 adds its solver's view after an announcing E: line.
	const apt3Out = `Solving dependencies...
The following packages have unmet dependencies:
 linux-image-9.9.9-noinst-cloud-amd64 : Depends: linux-base-9.9.9-noinst-cloud-amd64 (= 1.0-1) but it is not installable
E: Unable to correct problems, you have held broken packages.
E: The following information from --solver 3.0 may provide additional context:
   Unable to satisfy dependencies. Reached two conflicting decisions:
   1. linux-image-9.9.9-noinst-cloud-amd64:amd64=1.0-1 is selected for install
   2. linux-image-9.9.9-noinst-cloud-amd64:amd64 Depends linux-base-9.9.9-noinst-cloud-amd64 (= 1.0-1)
      but none of the choices are installable:
      [no choices]
`
	want = []string{
		"linux-image-9.9.9-noinst-cloud-amd64 : Depends: linux-base-9.9.9-noinst-cloud-amd64 (= 1.0-1) but it is not installable",
		"E: Unable to correct problems, you have held broken packages.",
	}
	if got := installerSays(apt3Out, 100); !slices.Equal(got, want) {
		t.Errorf("apt 3:\n got %q\nwant %q", got, want)
	}
	const dpkgOut = `(Reading database ... 25431 files and directories currently installed.)
Preparing to unpack .../linux-image-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb ...
Unpacking linux-image-7.3.4+deb13-cloud-amd64 (7.3.4-1~bpo13+1) ...
Setting up linux-image-7.3.4+deb13-cloud-amd64 (7.3.4-1~bpo13+1) ...
update-initramfs: Generating /boot/initrd.img-7.3.4+deb13-cloud-amd64
W: No zstd in /usr/bin:/sbin:/bin, using gzip
run-parts: /etc/kernel/postinst.d/initramfs-tools exited with return code 1
dpkg: error processing package linux-image-7.3.4+deb13-cloud-amd64 (--configure):
 installed linux-image-7.3.4+deb13-cloud-amd64 package post-installation script subprocess returned error exit status 1
Errors were encountered while processing:
 linux-image-7.3.4+deb13-cloud-amd64
E: Sub-process /usr/bin/dpkg returned an error code (1)
`
	got := installerSays(dpkgOut, 100)
	if len(got) == 0 || got[len(got)-1] != "E: Sub-process /usr/bin/dpkg returned an error code (1)" || !slices.Contains(got, "dpkg: error processing package linux-image-7.3.4+deb13-cloud-amd64 (--configure):") {
		t.Errorf("dpkg: %q", got)
	}
	// Nothing that looks like a reason: the last lines, or the status.
	if got := installerSays("a\nb\n", 1); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("plain: %q", got)
	}
	if got := installerSays("", 100); !slices.Equal(got, []string{"installer exit status 100, no output"}) {
		t.Errorf("silent: %q", got)
	}
}

// The grub defaults Init writes put the kernel's console on the serial
// port the hypervisor logs, make an oops a panic and a panic a reboot,
// keep the screen console and every other argument of the box, and keep
// the family's menu settings.
func TestGrubDefaultsSerialConsole(t *testing.T) {
	for _, tc := range []struct {
		fam      *family
		file     string
		cmdline  string
		settings map[string]string
	}{
		{deb, "ubuntu-default-grub", "console=tty0 console=ttyS0,115200 oops=panic panic=10", map[string]string{"GRUB_TIMEOUT": "1", "GRUB_TIMEOUT_STYLE": "menu",
			"GRUB_CMDLINE_LINUX_DEFAULT": " net.ifnames=0 biosdevname=0 quiet"}},
		{el7, "el7-default-grub", "no_timer_check net.ifnames=0 biosdevname=0 elevator=noop crashkernel=auto console=tty0 console=ttyS0,115200 oops=panic panic=10",
			map[string]string{"GRUB_DEFAULT": "saved", "GRUB_TIMEOUT": "1"}},
	} {
		got := tc.fam.grubDefaults(readGrubTestdata(t, tc.file))
		if v, _ := grub.Var(got, "GRUB_CMDLINE_LINUX"); v != tc.cmdline {
			t.Errorf("%s: GRUB_CMDLINE_LINUX=%q, want %q", tc.file, v, tc.cmdline)
		}
		for k, want := range tc.settings {
			if v, _ := grub.Var(got, k); v != want {
				t.Errorf("%s: %s=%q, want %q", tc.file, k, v, want)
			}
		}
		// Written twice (init run again), it stays the same.
		if again := tc.fam.grubDefaults(got); !bytes.Equal(again, got) {
			t.Errorf("%s: not stable:\n%s\n---\n%s", tc.file, got, again)
		}
	}
}

// A kernel Init could not install makes its cells errors that carry the
// installer's words; one it never tried says to run init again.
func TestStateRecordsInstallFailures(t *testing.T) {
	cfg, err := config.Parse(func(k string) string { return map[string]string{"VM_BUILD_DIR": t.TempDir()}[k] }, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	why := "linux-image-7.3.4+deb13-cloud-amd64 : Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1) but it is not installable"
	if err := writeState(cfg, &stateFile{Machine: "debian", Kernels: []string{"5.10.0-32-cloud-amd64"}, Failed: map[string]string{"7.3.4+deb13-cloud-amd64": why}}); err != nil {
		t.Fatal(err)
	}
	st, err := readState(cfg, "debian")
	if err != nil {
		t.Fatal(err)
	}
	if got := notInstalled(st, "7.3.4+deb13-cloud-amd64"); got != "kernel 7.3.4+deb13-cloud-amd64 could not be installed in VM debian: "+why {
		t.Errorf("failed kernel: %s", got)
	}
	if got := notInstalled(st, "6.1.0-50-cloud-amd64"); got != "kernel 6.1.0-50-cloud-amd64 is not installed in VM debian (run init again)" {
		t.Errorf("unknown kernel: %s", got)
	}
}

func TestPlanAndOrderCells(t *testing.T) {
	build := t.TempDir()
	cfg, err := config.Parse(func(k string) string {
		return map[string]string{"VM_BUILD_DIR": build, "VM_COMPILERS": "gcc-12,gcc-11,clang-14"}[k]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64", VM: "debian"}
	for _, f := range []string{
		"scap-open", "driver/gcc-12/" + k.UnameR + ".ko", "driver/gcc-11/" + k.UnameR + ".ko",
		"driver/clang-14/" + k.UnameR + ".o", "driver/clang-14/modern_bpf/scap-open",
	} {
		writeFile(t, filepath.Join(build, f), "x")
	}
	os.MkdirAll(filepath.Join(build, "scap-open.root", "lib"), 0o755)
	rf := &results.File{}
	rf.SetCompile(k.UnameR, "gcc-11", "kmod", results.Compile{Status: results.CompileFail})
	rf.SetTest(k.UnameR, "clang-14", "bpf", results.Test{Status: results.TestPass})
	p := loop.PlanKernel(cfg, k, rf)
	cells, kept := p.Todo, p.Kept
	var ids []string
	for _, c := range orderCells(cells) {
		ids = append(ids, c.Compiler+"/"+c.Driver)
	}
	// gcc-11 failed to compile, clang-14 bpf passed before: neither runs.
	if want := []string{"gcc-12/kmod", "clang-14/modern_bpf"}; !slices.Equal(ids, want) || kept != 1 {
		t.Errorf("cells %v kept %d, want %v kept 1", ids, kept, want)
	}
	// Every cell's files under the home's test-vm, each scap-open in a
	// root of its own with its closure.
	plan, files, err := loop.GuestPlan(cfg, []loop.Job{{Name: k.UnameR, Kernel: k, Cells: cells}}, remoteBase)
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]string{}
	for _, f := range files {
		placed[f.Guest] = f.Host
	}
	if placed["test-vm/roots/0"] != filepath.Join(build, "scap-open.root") || len(plan.Roots) != 2 ||
		placed["test-vm/drivers/gcc-12/"+k.UnameR+".ko"] != filepath.Join(build, "driver/gcc-12/"+k.UnameR+".ko") ||
		placed["test-vm/roots/1/scap-open"] != filepath.Join(build, "driver/clang-14/modern_bpf/scap-open") {
		t.Errorf("placement %v, roots %v", placed, plan.Roots)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestWriteBootCode(t *testing.T) {
	raw := filepath.Join(t.TempDir(), "disk.raw")
	disk := make([]byte, 1<<20)
	for i := 0x1b8; i < 512; i++ {
		disk[i] = byte(i) // disk signature, partition table, 0x55aa
	}
	if err := os.WriteFile(raw, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := bytes.Repeat([]byte{0xb0}, 512)
	core := bytes.Repeat([]byte{0xc0}, 3*512+17)
	if err := writeBootCode(raw, boot, core, 2048*512); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(raw)
	if !bytes.Equal(got[:440], boot[:440]) {
		t.Error("boot code not in the MBR")
	}
	if !bytes.Equal(got[0x1b8:512], disk[0x1b8:512]) {
		t.Error("partition table changed")
	}
	if !bytes.Equal(got[512:512+len(core)], core) || got[512+len(core)] != 0 {
		t.Error("core image not at sector 1")
	}
	if err := writeBootCode(raw, boot, make([]byte, 2048*512), 2048*512); err == nil {
		t.Error("a core image larger than the gap was accepted")
	}
}

func TestLoopErrors(t *testing.T) {
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("needs vagrant (Debian: apt-get install vagrant)")
	}
	build := t.TempDir()
	cfg, err := config.Parse(func(k string) string {
		return map[string]string{"VM_BUILD_DIR": build, "VM_PROVIDER": "libvirt", "VM_COMPILERS": "gcc-12", "VM_DRIVERS": "kmod"}[k]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	const k = "6.1.0-50-cloud-amd64"
	m := kernel.Manifest{Schema: 1, Kernels: []kernel.Entry{{Name: "k", VM: "debian", UnameR: k}}}
	b, _ := json.Marshal(m)
	writeFile(t, filepath.Join(build, layout.Manifest), string(b))
	writeFile(t, filepath.Join(build, "scap-open"), "x")
	writeFile(t, filepath.Join(build, "driver", "gcc-12", k+".ko"), "x")
	p := Provider{Hypervisor: "libvirt"}

	err = loop.Run(t.Context(), cfg, ui.Discard(), p, "fedora")
	if err == nil || !strings.Contains(err.Error(), `no Vagrant machine for VM group "fedora"`) {
		t.Errorf("unknown group: %v", err)
	}
	// A VM that init never prepared is named, with what to run, in the
	// loop's error and in its cells.
	err = loop.Run(t.Context(), cfg, ui.Discard(), p, "debian")
	const want = "VM debian was not prepared (run init with VM_PROVIDER=libvirt)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("no init: %v", err)
	}
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil || rf.Run.Provider != "libvirt" || rf.Run.Seed == 0 {
		t.Errorf("run record %+v, %v", rf.Run, err)
	}
	if c := rf.Find(k, "gcc-12", "kmod"); c == nil || c.Test == nil || c.Test.Status != results.TestError || !strings.Contains(c.Test.Reason, want) {
		t.Errorf("cell of a VM never prepared: %+v", c)
	}
}

// A loop keeps the VM an earlier init prepared when that init covered
// every kernel of the group (installed or recorded as not installable),
// with the same provider, and Vagrant still has the machine; anything else
// makes it initialise the group again.
func TestPrepared(t *testing.T) {
	cfg, err := config.Parse(func(k string) string {
		return map[string]string{"VM_BUILD_DIR": t.TempDir(), "VM_PROVIDER": "libvirt"}[k]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	m := &kernel.Manifest{Kernels: []kernel.Entry{
		{VM: "debian", UnameR: "6.1.0-50-cloud-amd64"},
		{VM: "debian", UnameR: "7.3.4+deb13-cloud-amd64"},
		{VM: "debian", UnameR: "5.10.0-35-cloud-amd64", Error: "not downloaded"},
		{VM: "centos7", UnameR: "3.10.0-1160.el7.x86_64"},
	}}
	st := &stateFile{Machine: "debian", Provider: "libvirt", Kernels: []string{"6.1.0-50-cloud-amd64"},
		Failed: map[string]string{"7.3.4+deb13-cloud-amd64": "not installable"}}
	if err := writeState(cfg, st); err != nil {
		t.Fatal(err)
	}
	if _, ok := prepared(cfg, m, "debian"); ok {
		t.Error("kept a VM Vagrant no longer has")
	}
	writeFile(t, filepath.Join(stateDir(cfg), "machines", "debian", "libvirt", "id"), "uuid")
	if got, ok := prepared(cfg, m, "debian"); !ok || got.Kernels[0] != "6.1.0-50-cloud-amd64" {
		t.Errorf("not kept: %+v", got)
	}
	m.Kernels = append(m.Kernels, kernel.Entry{VM: "debian", UnameR: "6.12.57+deb13-cloud-amd64"})
	if _, ok := prepared(cfg, m, "debian"); ok {
		t.Error("kept a VM without a kernel the grid gained")
	}
	m.Kernels = m.Kernels[:len(m.Kernels)-1]
	cfg.Provider = "virtualbox"
	if _, ok := prepared(cfg, m, "debian"); ok {
		t.Error("kept a libvirt VM for VirtualBox")
	}
	if _, ok := prepared(cfg, m, "centos7"); ok {
		t.Error("kept a VM that was never prepared")
	}
}
