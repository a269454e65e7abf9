package vagrant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/tree"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Box describes a minimal Debian box for vagrant-libvirt, built locally
// (no box registry is needed): debootstrap, a disk image with an MBR
// partition table and grub in it, so that the guest switches kernels with
// grub exactly as the centos7 and ubuntu boxes do.
type Box struct {
	Name      string // Vagrant box name, e.g. test-vm/debian-trixie
	Suite     string // Debian suite, e.g. trixie
	Mirror    string // Debian archive URL
	Dir       string // work directory; the box file is Dir/<suite>.box
	SizeGiB   int    // disk size
	PublicKey string // authorized_keys line of user vagrant (Vagrant's insecure key)
}

// boxPackages are what the box needs beyond minbase: an init, a kernel to
// boot first, grub's tools (grub-pc itself would try to install to a disk
// at package time), ssh and sudo for Vagrant, and what kernel packages need
// to install.
var boxPackages = []string{
	"systemd-sysv", "udev", "dbus", "linux-image-cloud-amd64", "grub-pc-bin", "grub2-common",
	"openssh-server", "sudo", "kmod", "initramfs-tools", "iproute2", "procps", "zstd",
}

// File is the box file Build writes.
func (b Box) File() string { return filepath.Join(b.Dir, b.Suite+".box") }

// key identifies the box's inputs; a box built from the same inputs is
// reused.
func (b Box) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n%s\n%s\n", b.Name, b.Suite, b.Mirror, b.SizeGiB, b.PublicKey, strings.Join(boxPackages, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Build writes the box file unless one from the same inputs exists, and
// returns its path. It needs root (debootstrap, chroot) and debootstrap,
// mkfs.ext4, sfdisk and qemu-img on the host.
func (b Box) Build(ctx context.Context, out *ui.Printer) (string, error) {
	stamp := b.File() + ".key"
	if k, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(k)) == b.key() {
		if _, err := os.Stat(b.File()); err == nil {
			return b.File(), nil
		}
	}
	for _, tool := range []string{"debootstrap", "mkfs.ext4", "sfdisk", "qemu-img", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("build box %s: needs %s on PATH: %w", b.Name, tool, err)
		}
	}
	start := time.Now()
	work := filepath.Join(b.Dir, b.Suite+".work")
	// debootstrap and the chroot steps mount /proc (and more) in the
	// rootfs; a run killed mid-way leaves them mounted.
	if err := tree.Remove(work); err != nil {
		return "", err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	defer tree.Remove(work)
	rootfs := filepath.Join(work, "rootfs")

	out.Linef("box %s: debootstrap %s from %s", b.Name, b.Suite, b.Mirror)
	if err := run(ctx, "", "debootstrap", "--variant=minbase", "--include="+strings.Join(boxPackages, ","), b.Suite, rootfs, b.Mirror); err != nil {
		return "", fmt.Errorf("build box %s: %w", b.Name, err)
	}
	release, err := b.configure(ctx, rootfs)
	if err != nil {
		return "", fmt.Errorf("build box %s: %w", b.Name, err)
	}
	out.Linef("box %s: disk image (kernel %s)", b.Name, release)
	raw := filepath.Join(work, "disk.raw")
	if err := b.disk(ctx, rootfs, raw); err != nil {
		return "", fmt.Errorf("build box %s: %w", b.Name, err)
	}
	img := filepath.Join(work, "box.img")
	if err := run(ctx, "", "qemu-img", "convert", "-O", "qcow2", raw, img); err != nil {
		return "", fmt.Errorf("build box %s: %w", b.Name, err)
	}
	if err := b.pack(img, b.File()); err != nil {
		return "", fmt.Errorf("build box %s: %w", b.Name, err)
	}
	if err := os.WriteFile(stamp, []byte(b.key()+"\n"), 0o644); err != nil {
		return "", err
	}
	out.Linef("box %s: built %s in %s", b.Name, b.File(), time.Since(start).Round(time.Second))
	return b.File(), nil
}

// configure makes the debootstrapped tree a Vagrant box: user vagrant with
// the insecure key and password-less sudo, DHCP on every ethernet link,
// the root filesystem by label, a serial console, and a first grub menu
// (the guest's own update-grub replaces it on the first kernel install).
// It returns the release of the box's kernel.
func (b Box) configure(ctx context.Context, rootfs string) (string, error) {
	vmlinuz, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	if len(vmlinuz) == 0 {
		return "", fmt.Errorf("no kernel in %s/boot", rootfs)
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[len(vmlinuz)-1]), "vmlinuz-")
	files := map[string]string{
		"etc/hostname":                        "test-vm\n",
		"etc/hosts":                           "127.0.0.1 localhost\n127.0.1.1 test-vm\n",
		"etc/fstab":                           "LABEL=root / ext4 errors=remount-ro 0 1\n",
		"etc/machine-id":                      "",
		"etc/systemd/network/80-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
		"etc/sudoers.d/vagrant":               "vagrant ALL=(ALL) NOPASSWD:ALL\nDefaults:vagrant !requiretty\n",
		"etc/ssh/sshd_config.d/vagrant.conf":  "UseDNS no\nPubkeyAcceptedAlgorithms +ssh-rsa\n",
		"etc/default/grub":                    "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR=Debian\nGRUB_CMDLINE_LINUX_DEFAULT=\"\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0,115200 console=tty0\"\nGRUB_TERMINAL=\"serial console\"\nGRUB_SERIAL_COMMAND=\"serial --speed=115200\"\nGRUB_DISABLE_OS_PROBER=true\n",
	}
	grubCfg := fmt.Sprintf(`set timeout=1
serial --speed=115200
terminal_input serial console
terminal_output serial console
menuentry 'Debian GNU/Linux, with Linux %[1]s' {
	insmod part_msdos
	insmod ext2
	search --no-floppy --label --set=root root
	linux /boot/vmlinuz-%[1]s root=LABEL=root ro console=ttyS0,115200 console=tty0
	initrd /boot/initrd.img-%[1]s
}
`, release)
	files["boot/grub/grub.cfg"] = grubCfg
	for name, content := range files {
		p := filepath.Join(rootfs, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "etc/sudoers.d/") {
			mode = 0o440
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return "", err
		}
	}
	if err := os.Symlink("/lib/systemd/system/systemd-networkd.service",
		filepath.Join(rootfs, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service")); err != nil && !os.IsExist(err) {
		return "", err
	}
	// The modules grub loads at boot live with its configuration.
	if err := run(ctx, "", "cp", "-a", filepath.Join(rootfs, "usr/lib/grub/i386-pc"), filepath.Join(rootfs, "boot/grub/")); err != nil {
		return "", err
	}
	if err := run(ctx, "", "chroot", rootfs, "useradd", "--create-home", "--shell", "/bin/bash", "vagrant"); err != nil {
		return "", err
	}
	ssh := filepath.Join(rootfs, "home/vagrant/.ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(ssh, "authorized_keys"), []byte(strings.TrimSpace(b.PublicKey)+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := run(ctx, "", "chroot", rootfs, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"); err != nil {
		return "", err
	}
	// Packages the loop installs come as files; drop the apt lists.
	os.RemoveAll(filepath.Join(rootfs, "var/cache/apt/archives"))
	os.MkdirAll(filepath.Join(rootfs, "var/cache/apt/archives/partial"), 0o755)
	return release, nil
}

// disk writes a raw disk image: an MBR with one bootable partition from
// 1 MiB holding rootfs as ext4 (labelled root), and grub's boot code in the
// MBR and the gap after it. No loop device is needed: mkfs writes the
// filesystem at the partition's offset, and the boot code is written into
// the image file directly.
func (b Box) disk(ctx context.Context, rootfs, raw string) error {
	size := int64(b.SizeGiB) << 30
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	f.Close()
	cmd := exec.CommandContext(ctx, "sfdisk", "--quiet", raw)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, type=83, bootable\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %w: %s", err, out)
	}
	const offset = 2048 * 512
	blocks := (size - offset) / 4096
	if err := run(ctx, "", "mkfs.ext4", "-q", "-F", "-L", "root", "-b", "4096", "-E", fmt.Sprintf("offset=%d", offset),
		"-d", rootfs, raw, fmt.Sprint(blocks)); err != nil {
		return err
	}
	// grub's core image comes from the box's own grub (in a chroot: no
	// grub needed on the host); it goes right after the MBR, where
	// boot.img looks for it by default (sector 1), and grub-mkimage has
	// already written its length into its first sector's block list.
	grubDir := filepath.Join(rootfs, "tmp", "grub")
	if err := os.MkdirAll(grubDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(grubDir)
	if err := run(ctx, "", "chroot", rootfs, "grub-mkimage", "-O", "i386-pc", "-o", "/tmp/grub/core.img",
		"-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2", "search_label"); err != nil {
		return err
	}
	boot, err := os.ReadFile(filepath.Join(rootfs, "usr/lib/grub/i386-pc/boot.img"))
	if err != nil {
		return err
	}
	core, err := os.ReadFile(filepath.Join(grubDir, "core.img"))
	if err != nil {
		return err
	}
	return writeBootCode(raw, boot, core, offset)
}

// writeBootCode puts grub's boot.img into the MBR (its code only: the
// partition table sfdisk wrote stays) and core.img from sector 1, which
// must end before the first partition at gapEnd.
func writeBootCode(raw string, boot, core []byte, gapEnd int64) error {
	const codeSize = 440 // up to the disk signature and partition table
	if len(boot) != 512 {
		return fmt.Errorf("boot.img is %d bytes, want 512", len(boot))
	}
	if int64(512+len(core)) > gapEnd {
		return fmt.Errorf("core.img (%d bytes) does not fit before the first partition", len(core))
	}
	f, err := os.OpenFile(raw, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(boot[:codeSize], 0); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt(core, 512); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pack writes the box file: the qcow2 image, metadata.json and a
// Vagrantfile with the box's libvirt defaults, in a tar.
func (b Box) pack(img, dst string) error {
	meta, _ := json.Marshal(map[string]any{"provider": "libvirt", "format": "qcow2", "virtual_size": b.SizeGiB})
	vf := "Vagrant.configure(\"2\") do |config|\n  config.vm.provider :libvirt do |lv|\n    lv.disk_bus = \"virtio\"\n  end\nend\n"
	tmp, err := fsx.Create(dst, 0o644)
	if err != nil {
		return err
	}
	defer tmp.Discard()
	err = fsx.WriteTarFiles(tmp, []fsx.TarEntry{
		{Name: "metadata.json", Data: meta},
		{Name: "Vagrantfile", Data: []byte(vf)},
		{Name: "box.img", Path: img},
	})
	if err != nil {
		return err
	}
	return tmp.Commit()
}

// run runs a command, quoting the end of its output in the error.
func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.Join(lastLines(string(out), 15), "\n"))
	}
	return nil
}
