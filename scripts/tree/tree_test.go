package tree

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRemoveDetachesMounts mounts a tmpfs and a bind mount of a
// directory holding a "host" file inside a tree, and checks that Remove
// removes the tree without deleting the bind-mounted host file.
func TestRemoveDetachesMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	tree := filepath.Join(t.TempDir(), "build")
	host := t.TempDir()
	precious := filepath.Join(host, "precious")
	os.WriteFile(precious, []byte("x"), 0o644)
	bind := filepath.Join(tree, "rootfs", "dev")
	tmp := filepath.Join(tree, "rootfs", "proc")
	for _, d := range []string{bind, tmp} {
		os.MkdirAll(d, 0o755)
	}
	if err := syscall.Mount(host, bind, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount not permitted here: %v", err)
	}
	if err := syscall.Mount("tmpfs", tmp, "tmpfs", 0, ""); err != nil {
		syscall.Unmount(bind, syscall.MNT_DETACH)
		t.Skipf("tmpfs mount not permitted here: %v", err)
	}
	if err := Remove(tree); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Errorf("tree still there: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("the bind-mounted host file was deleted: %v", err)
	}
	if out, _ := exec.Command("grep", tree, "/proc/self/mounts").Output(); len(out) > 0 {
		t.Errorf("mounts left: %s", out)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b/c`); got != "/a b/c" {
		t.Errorf("got %q", got)
	}
}
