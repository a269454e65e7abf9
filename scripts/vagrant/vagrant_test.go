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
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/testplan"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
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
	out, err = vagrant(t, []string{"VM_LIBVIRT_DRIVER=qemu", "VM_IP_DEBIAN=none", "VM_MEMORY=1024"}, "validate")
	if err != nil {
		t.Fatalf("vagrant validate with settings: %v\n%s", err, out)
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
	} {
		out, err := vagrant(t, []string{env}, "validate")
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: err %v, output:\n%s", env, err, out)
		}
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
	got := deb.installCmd([]string{"test-vm/kernels/x/linux-image.deb"})
	if !strings.Contains(got, "apt-get install -y --no-install-recommends ./test-vm/kernels/x/linux-image.deb") || !strings.Contains(got, "|| sudo env DEBIAN_FRONTEND=noninteractive dpkg -i") {
		t.Errorf("deb install: %s", got)
	}
	got = el7.installCmd([]string{"/home/vagrant/k 1.rpm"})
	if got != "sudo yum -y --nogpgcheck localinstall '/home/vagrant/k 1.rpm'" {
		t.Errorf("el7 install: %s", got)
	}
}

func TestParseCell(t *testing.T) {
	for name, tc := range map[string]struct {
		output string
		want   string
		reason string
	}{
		"pass": {
			output: marker + "uname 6.1.0-50-cloud-amd64\n[SCAP-OPEN]: Hello!\nEvents correctly captured (SCAP_SUCCESS): 595\n" + marker + "exit 0\n" + marker + "capture 2.5\n",
			want:   "pass", reason: "595 events",
		},
		"newer wording, too few": {
			output: marker + "uname k\nNumber of `SCAP_SUCCESS` (events correctly captured): 12\n" + marker + "exit 124\n",
			want:   "fail/events", reason: "12 events, want >= 30",
		},
		"load failure": {
			output: marker + "uname k\n" + marker + "load insmod: ERROR: could not insert module: Invalid module format\n" + marker + "kmsg scap: disagrees about version of symbol module_layout\n",
			want:   "fail/load", reason: "disagrees about version",
		},
		"unsupported": {
			output: marker + "uname k\nnot supported\n" + marker + "exit 95\n",
			want:   "skip", reason: "exit 95",
		},
		"no BTF": {
			output: marker + "uname k\n" + marker + "skip modern_bpf needs BTF: /sys/kernel/btf/vmlinux missing\n",
			want:   "skip", reason: "needs BTF",
		},
		"verifier": {
			output: marker + "uname k\nlibbpf: prog 'x': BPF program load failed: Permission denied\nerror\n" + marker + "exit 1\n",
			want:   "fail/load", reason: "BPF program load failed",
		},
		"scap-open missing": {
			output: marker + "uname k\nchroot: failed to run command '/scap-open': No such file or directory\n" + marker + "exit 127\n",
			want:   "error", reason: "could not be started (exit 127)",
		},
		"script cut short": {
			output: marker + "uname k\n[SCAP-OPEN]: Hello!\n",
			want:   "error", reason: "without reporting",
		},
	} {
		rec, _ := parseCell(tc.output)
		o := guest.Classify(rec, true, "", nil, 30)
		if o.String() != tc.want || !strings.Contains(o.Reason, tc.reason) {
			t.Errorf("%s: %s (%s), want %s with %q", name, o, o.Reason, tc.want, tc.reason)
		}
	}
	if _, uname := parseCell(marker + "uname 5.10.0-32-cloud-amd64\n"); uname != "5.10.0-32-cloud-amd64" {
		t.Errorf("uname %q", uname)
	}
}

func TestCellScriptsAreValidShell(t *testing.T) {
	for _, d := range config.Drivers {
		c := cell{Cell: results.Cell{Kernel: "6.1.0-50-cloud-amd64", Compiler: "gcc-12", Driver: d}}
		script := cellScript(c, "test-vm/roots/0", 30, 20)
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s\n%s", d, err, out, script)
		}
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
	p := testplan.For(cfg, k, rf)
	cells, kept := p.Todo, p.Kept
	var ids []string
	for _, c := range orderCells(cells) {
		ids = append(ids, c.Compiler+"/"+c.Driver)
	}
	// gcc-11 failed to compile, clang-14 bpf passed before: neither runs.
	if want := []string{"gcc-12/kmod", "clang-14/modern_bpf"}; !slices.Equal(ids, want) || kept != 1 {
		t.Errorf("cells %v kept %d, want %v kept 1", ids, kept, want)
	}
	gf := placeFiles(cells)
	if gf.Trees["test-vm/roots/0"] != filepath.Join(build, "scap-open.root") || len(gf.Roots) != 2 {
		t.Errorf("placement %+v", gf)
	}
	if gf.Files["test-vm/driver/gcc-12/"+k.UnameR+".ko"] == "" {
		t.Errorf("module not placed: %+v", gf.Files)
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
		return map[string]string{"VM_BUILD_DIR": build, "VM_PROVIDER": "libvirt"}[k]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	m := kernel.Manifest{Schema: 1, Kernels: []kernel.Entry{{Name: "k", VM: "debian", UnameR: "6.1.0-50-cloud-amd64"}}}
	b, _ := json.Marshal(m)
	writeFile(t, filepath.Join(build, kernel.ManifestFile), string(b))

	err = Loop(t.Context(), cfg, ui.Discard(), "fedora")
	if err == nil || !strings.Contains(err.Error(), `no Vagrant machine for VM group "fedora"`) {
		t.Errorf("unknown group: %v", err)
	}
	// A VM that init never prepared is named, with what to run.
	err = Loop(t.Context(), cfg, ui.Discard(), "debian")
	if err == nil || !strings.Contains(err.Error(), "VM debian was not prepared (run init with VM_PROVIDER=libvirt)") {
		t.Errorf("no init: %v", err)
	}
	rf, err := results.Load(cfg.Path("results.json"))
	if err != nil || rf.Run.Provider != "libvirt" || rf.Run.Seed == 0 {
		t.Errorf("run record %+v, %v", rf.Run, err)
	}
}
