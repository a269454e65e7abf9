package kernel

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/archive/archivetest"
	"github.com/falcosecurity/libs/test/vm/scripts/download"
)

// mountTmpfs mounts a tmpfs of size at dir for the test (root only).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

func grow(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resize the tmpfs: %v %s", err, out)
	}
}

// The disk-full drill: a build directory on a filesystem too small for the
// packages gives a clear error naming the device problem and the kernel,
// leaves no package under its final name and no half-extracted tree, and
// the next run with room completes.
func TestFetchDiskFull(t *testing.T) {
	f := newFixture(t, `{"name": "big", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}`+"\n")
	pkgs := debianKernel("1.2.3-1-cloud-amd64", "1.2", false)
	noise := make([]byte, 3<<20) // incompressible: the package stays 3 MiB
	rand.Read(noise)
	img := "linux-image-1.2.3-1-cloud-amd64"
	pkgs[img] = append(pkgs[img], E{Name: "./lib/modules/1.2.3-1-cloud-amd64/kernel/big.ko", Body: string(noise)})
	dir := t.TempDir()
	for name, entries := range pkgs {
		p := filepath.Join(dir, name+".deb")
		archivetest.WriteDeb(t, p, "", entries) // uncompressed: quick to make
		f.archive.Add(t, "bookworm", name, "1.2.3-1", p)
	}
	f.archive.Publish(t)
	mountTmpfs(t, f.cfg.BuildDir, "2m")

	m, _, err := f.fetch(t)
	if err == nil {
		t.Fatal("a full disk gave no error")
	}
	// Downloads run in parallel: whichever package hit the full disk first
	// is the one named.
	e := m.Kernels[0].Error
	named := false
	for name := range pkgs {
		named = named || strings.Contains(e, name)
	}
	if !strings.Contains(e, "no space left on device") || !named {
		t.Errorf("kernel error should name the full device and the package: %q", e)
	}
	if !strings.Contains(f.out.String(), "no space left on device") {
		t.Errorf("the stage's output does not say the disk is full:\n%s", f.out.String())
	}
	debs, _ := filepath.Glob(f.cfg.Path("kernels", "*.deb"))
	for _, d := range debs {
		want := ""
		if b, err := os.ReadFile(d + ".sha256"); err == nil {
			want = strings.TrimSpace(string(b))
		}
		if got, _ := download.FileSHA256(d); got != want {
			t.Errorf("cache holds a package that does not match its digest: %s", d)
		}
	}
	if left, _ := filepath.Glob(f.cfg.Path("*", ".tmp-*")); len(left) > 0 {
		t.Errorf("half-extracted trees left: %v", left)
	}

	// Room for the packages, not for their extracted trees.
	grow(t, f.cfg.BuildDir, "5m")
	m, _, err = f.fetch(t)
	if e := m.Kernels[0].Error; err == nil || !strings.Contains(e, "no space left on device") {
		t.Errorf("extraction on a full disk: %v %q", err, e)
	}
	if left, _ := filepath.Glob(f.cfg.Path("*", ".tmp-*")); len(left) > 0 {
		t.Errorf("half-extracted trees left: %v", left)
	}
	if trees, _ := filepath.Glob(f.cfg.Path("boot", "*")); len(trees) > 0 {
		t.Errorf("a kernel tree appeared although extraction failed: %v", trees)
	}

	grow(t, f.cfg.BuildDir, "64m")
	m, _, err = f.fetch(t)
	if err != nil || m.Kernels[0].Error != "" {
		t.Fatalf("run with room: %v %q", err, m.Kernels[0].Error)
	}
}
