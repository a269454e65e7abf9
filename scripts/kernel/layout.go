package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// headersLayout is what the compile stage needs to know about a sysroot,
// found by looking at the extracted files, not at package names.
type headersLayout struct {
	UnameR    string   `json:"uname_r"`
	KernelDir string   `json:"kernel_dir"` // absolute path inside the sysroot
	Mounts    []string `json:"mounts"`     // absolute top dirs to bind-mount
}

// bootLayout is what the VM stage needs, relative to the boot tree.
type bootLayout struct {
	UnameR     string `json:"uname_r"`
	Vmlinuz    string `json:"vmlinuz"`     // relative to the boot tree
	ModulesDir string `json:"modules_dir"` // relative; "" when the packages have no modules
}

var utsRelease = regexp.MustCompile(`#define UTS_RELEASE "([^"]+)"`)

// findHeaders locates the kernel build directory in an extracted sysroot:
// a directory under usr/src (Debian and Ubuntu: usr/src/linux-headers-*,
// el7: usr/src/kernels/*) that holds both a Makefile and a .config.
func findHeaders(root, want string) (headersLayout, error) {
	var cands []string
	for _, pattern := range []string{"usr/src/*", "usr/src/kernels/*"} {
		dirs, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, d := range dirs {
			if isFile(filepath.Join(d, "Makefile")) && isFile(filepath.Join(d, ".config")) {
				cands = append(cands, d)
			}
		}
	}
	var found []headersLayout
	for _, d := range cands {
		rel, _ := filepath.Rel(root, d)
		found = append(found, headersLayout{UnameR: releaseOf(d), KernelDir: "/" + filepath.ToSlash(rel)})
	}
	var l headersLayout
	switch {
	case len(found) == 0:
		return l, errors.New("no kernel headers in the header packages (no usr/src/<dir> with a Makefile and a .config)")
	case len(found) == 1:
		l = found[0]
	default:
		i := slices.IndexFunc(found, func(h headersLayout) bool { return h.UnameR == want })
		if i < 0 {
			var names []string
			for _, h := range found {
				names = append(names, h.KernelDir)
			}
			return l, fmt.Errorf("several kernel header trees (%s) and none for %s", strings.Join(names, ", "), want)
		}
		l = found[i]
	}
	mounts, err := findMounts(root, l.KernelDir)
	if err != nil {
		return l, err
	}
	l.Mounts = mounts
	return l, nil
}

// releaseOf reads a header tree's kernel release from kbuild's own files,
// falling back to the directory name. UTS_RELEASE comes first: it is what
// modules are stamped with, while Debian's include/config/kernel.release
// holds the upstream version (6.1.176 for 6.1.0-50-cloud-amd64).
func releaseOf(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "include/generated/utsrelease.h")); err == nil {
		if m := utsRelease.FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "include/config/kernel.release")); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	return strings.TrimPrefix(filepath.Base(dir), "linux-headers-")
}

var absInclude = regexp.MustCompile(`(?m)^\s*-?include\s+(/\S+)`)

// findMounts returns the top directories the compile stage must bind-mount
// (sysroot+dir at dir) so that kernelDir builds: the tree that holds
// kernelDir (e.g. /usr/src), plus every tree that a symbolic link or a
// Makefile include inside the mounted trees points into (e.g. Debian's
// /usr/lib/linux-kbuild-6.1), until nothing new appears.
func findMounts(root, kernelDir string) ([]string, error) {
	mounts := []string{topDir(kernelDir, 2)}
	covered := func(p string) bool {
		return slices.ContainsFunc(mounts, func(m string) bool { return p == m || strings.HasPrefix(p, m+"/") })
	}
	consider := func(abs string) {
		abs = path.Clean(abs)
		if covered(abs) {
			return
		}
		top := topDir(abs, 3)
		if fi, err := os.Stat(filepath.Join(root, top)); err == nil && fi.IsDir() {
			mounts = append(mounts, top)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, kernelDir, "Makefile")); err == nil {
		for _, m := range absInclude.FindAllSubmatch(b, -1) {
			consider(string(m[1]))
		}
	}
	for i := 0; i < len(mounts); i++ {
		m := mounts[i]
		err := filepath.WalkDir(filepath.Join(root, m), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if !path.IsAbs(target) {
				target = path.Join("/", path.Dir(filepath.ToSlash(rel)), target)
			}
			consider(target)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", m, err)
		}
	}
	slices.Sort(mounts)
	return mounts, nil
}

// topDir returns the first n elements of an absolute path.
func topDir(p string, n int) string {
	parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	if len(parts) > n {
		parts = parts[:n]
	}
	return "/" + strings.Join(parts, "/")
}

// findBoot locates vmlinuz and the modules tree in an extracted kernel
// package tree: modules in lib/modules/<uname-r> or usr/lib/modules/<uname-r>,
// the image at boot/vmlinuz-<uname-r> or <modules dir>/vmlinuz (Debian's
// split 7.x packaging).
func findBoot(root, want string) (bootLayout, error) {
	var l bootLayout
	var mods []string
	for _, pattern := range []string{"lib/modules/*", "usr/lib/modules/*"} {
		dirs, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, d := range dirs {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				rel, _ := filepath.Rel(root, d)
				mods = append(mods, rel)
			}
		}
	}
	var images []string
	boots, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	for _, b := range boots {
		rel, _ := filepath.Rel(root, b)
		images = append(images, rel)
	}
	for _, m := range mods {
		if isFile(filepath.Join(root, m, "vmlinuz")) {
			images = append(images, filepath.Join(m, "vmlinuz"))
		}
	}
	unameOf := func(image string) string {
		if strings.HasPrefix(image, "boot/vmlinuz-") {
			return strings.TrimPrefix(image, "boot/vmlinuz-")
		}
		return filepath.Base(filepath.Dir(image))
	}
	switch {
	case len(images) == 0:
		return l, errors.New("no kernel image (boot/vmlinuz-* or lib/modules/*/vmlinuz) in the kernel packages")
	case len(images) == 1:
		l.Vmlinuz = images[0]
	default:
		i := slices.IndexFunc(images, func(im string) bool { return unameOf(im) == want })
		if i < 0 {
			return l, fmt.Errorf("several kernel images (%s) and none for %s", strings.Join(images, ", "), want)
		}
		l.Vmlinuz = images[i]
	}
	l.UnameR = unameOf(l.Vmlinuz)
	for _, m := range mods {
		if filepath.Base(m) == l.UnameR {
			l.ModulesDir = m
		}
	}
	return l, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
