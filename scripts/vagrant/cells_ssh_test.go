package vagrant

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx/sshxtest"
	"github.com/falcosecurity/libs/test/vm/scripts/testplan"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// TestCellsOverSSH runs real cells through the loop's cell runner against
// a real sshd on this host standing in for the guest: uploads, the cell
// script (mounts in scap-open's root, chroot, timeout, markers), parsing,
// classification and the records in results.json. The guest side runs in
// its own mount namespace, so its mounts vanish with it. Only what cannot
// run here is replaced: sudo (the test runs as root), insmod and dmesg (no
// module may be loaded into the host's kernel), and scap-open (a static
// stand-in with the real one's options and summary line).
func TestCellsOverSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cell script mounts and chroots")
	}
	for _, tool := range []string{"unshare", "chroot", "timeout", "mountpoint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	unameB, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	k := kernel.Entry{UnameR: strings.TrimSpace(string(unameB)), VM: "debian"}
	_, btfErr := os.Stat("/sys/kernel/btf/vmlinux")

	// The guest's side: a home directory and the stand-in tools.
	home := t.TempDir()
	bin := t.TempDir()
	writeFile(t, filepath.Join(bin, "sudo"), "#!/bin/sh\nexec \"$@\"\n")
	writeFile(t, filepath.Join(bin, "insmod"), `#!/bin/sh
case "$1" in
*gcc-11*) echo "insmod: ERROR: could not insert module $1: Invalid module format" >&2; exit 1 ;;
esac
echo "$1" >> "$HOME/loaded"
`)
	writeFile(t, filepath.Join(bin, "dmesg"), `#!/bin/sh
[ "$1" = -c ] && exit 0
echo "[   12.345678] scap: disagrees about version of symbol module_layout"
`)
	wrap := filepath.Join(bin, "guest-shell")
	writeFile(t, wrap, "#!/bin/sh\nexport HOME="+home+" PATH="+bin+":$PATH\ncd \"$HOME\" || exit 1\n"+
		"exec unshare --mount --propagation private /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n")
	srv := sshxtest.Start(t, "ForceCommand "+wrap)
	hosts, err := sshx.ParseSSHConfig(srv.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}

	// The host's side: a build directory as the compile stage leaves it.
	build := t.TempDir()
	cfg, err := config.Parse(func(name string) string {
		return map[string]string{
			"VM_BUILD_DIR":    build,
			"VM_COMPILERS":    "gcc-12,gcc-11,clang-14,clang-16,clang-18,clang-19",
			"VM_MIN_EVENTS":   "30",
			"VM_TEST_SECONDS": "20",
		}[name]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	scapOpen := filepath.Join(build, "scap-open")
	buildCmd := exec.Command("go", "build", "-o", scapOpen, "./testdata/scapopen")
	buildCmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := buildCmd.CombinedOutput(); err != nil {
		t.Fatalf("build stand-in scap-open: %v\n%s", err, out)
	}
	// The library closure beside scap-open, here a symlink to the tree
	// as a shared build directory may have it.
	closure := t.TempDir()
	writeFile(t, filepath.Join(closure, "lib", "x86_64-linux-gnu", "libstandin.so.1"), "lib")
	if err := os.Symlink("libstandin.so.1", filepath.Join(closure, "lib", "x86_64-linux-gnu", "libstandin.so")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(closure, scapOpen+".root"); err != nil {
		t.Fatal(err)
	}
	stand, _ := os.ReadFile(scapOpen)
	writeFile(t, filepath.Join(build, "driver/clang-19/modern_bpf/scap-open"), string(stand))
	for comp, content := range map[string]string{"gcc-12": "module", "gcc-11": "module"} {
		writeFile(t, filepath.Join(build, "driver", comp, k.UnameR+".ko"), content)
	}
	for comp, content := range map[string]string{"clang-14": "ok", "clang-16": "few", "clang-18": "unsupported", "clang-19": "reject"} {
		writeFile(t, filepath.Join(build, "driver", comp, k.UnameR+".o"), content)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client, err := sshx.Dial(ctx, hosts[0])
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Log())
	}
	defer client.Close()
	var printed bytes.Buffer
	l := &looper{cfg: cfg, out: ui.New(&printed), provider: "libvirt", group: "debian",
		g: &machine{name: "debian", fam: deb, ssh: client}}

	cells := testplan.For(cfg, k, &results.File{}).Todo
	l.files = placeFiles(cells)
	if err := l.upload(ctx, l.files); err != nil {
		t.Fatal(err)
	}
	for _, c := range orderCells(cells) {
		lost, err := l.runCell(ctx, c)
		if err != nil || lost {
			t.Fatalf("%s: lost %v, err %v\n%s", c.ID(), lost, err, printed.String())
		}
	}

	rf, err := results.Load(cfg.Path("results.json"))
	if err != nil {
		t.Fatal(err)
	}
	modern := "pass"
	if btfErr != nil {
		modern = "skip"
	}
	want := map[string]string{
		"gcc-12/kmod":         "pass",
		"gcc-11/kmod":         "fail/load",
		"clang-14/bpf":        "pass",
		"clang-16/bpf":        "fail/events",
		"clang-18/bpf":        "skip",
		"clang-19/bpf":        "fail/load",
		"clang-19/modern_bpf": modern,
	}
	if len(rf.Cells) != len(want) {
		t.Errorf("%d cells recorded, want %d", len(rf.Cells), len(want))
	}
	for _, c := range rf.Cells {
		key := c.Compiler + "/" + c.Driver
		got := c.Test.Status
		if c.Test.Kind != "" {
			got += "/" + c.Test.Kind
		}
		if got != want[key] {
			t.Errorf("%s: %s (%s), want %s", key, got, c.Test.Reason, want[key])
		}
		if c.Test.Provider != "libvirt" || c.Test.Attempts != 1 || c.Test.Log != filepath.Join("logs", "test", k.UnameR, c.Compiler+"_"+c.Driver+".log") {
			t.Errorf("%s: record %+v", key, c.Test)
		}
		if _, err := os.Stat(cfg.Path(c.Test.Log)); err != nil {
			t.Errorf("%s: log: %v", key, err)
		}
		ok := filepath.Join(build, "driver_ok", c.Compiler, k.UnameR+map[string]string{"kmod": ".ko", "bpf": ".o"}[c.Driver])
		_, err := os.Stat(ok)
		if kept := err == nil; kept != (got == "pass" && c.Driver != "modern_bpf") {
			t.Errorf("%s: driver_ok copy present %v for outcome %s", key, kept, got)
		}
	}
	if c := rf.Find(k.UnameR, "gcc-11", "kmod"); c != nil && !strings.Contains(c.Test.Reason, "module_layout") {
		t.Errorf("load failure reason lacks the kernel's word: %q", c.Test.Reason)
	}
	if c := rf.Find(k.UnameR, "gcc-12", "kmod"); c != nil && c.Test.Events != 30 {
		t.Errorf("events %d, want 30", c.Test.Events)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "loaded")); !strings.Contains(string(b), "test-vm/driver/gcc-12/"+k.UnameR+".ko") {
		t.Errorf("module loaded from %q", b)
	}
	// scap-open's output reached the terminal; the marker lines did not.
	if !strings.Contains(printed.String(), "[SCAP-OPEN]: Hello!") || strings.Contains(printed.String(), marker) {
		t.Errorf("printed output:\n%s", printed.String())
	}
	// The closure is in scap-open's root, symlinks kept.
	if l, err := os.Readlink(filepath.Join(home, "test-vm/roots/0/lib/x86_64-linux-gnu/libstandin.so")); err != nil || l != "libstandin.so.1" {
		t.Errorf("closure in the guest: link %q, %v", l, err)
	}
	// The guest's mounts went away with its namespace.
	if out, _ := exec.Command("sh", "-c", "grep -c "+home+" /proc/mounts").Output(); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("mounts left under %s", home)
	}
}
