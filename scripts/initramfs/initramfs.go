// Package initramfs assembles the initramfs a test VM boots: a newc cpio
// archive (the format the kernel unpacks into its rootfs), optionally gzip
// compressed. Entries are added from memory or from host files and trees;
// parent directories are created implicitly, and the archive is written
// atomically.
package initramfs

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
)

// Archive is an initramfs under construction. Later entries with the same
// path replace earlier ones.
type Archive struct {
	entries map[string]entry
}

type entry struct {
	mode     uint32 // type and permission bits
	data     []byte // regular file content from memory
	hostPath string // regular file content from the host
	link     string // symlink target
	rdev     [2]int // char device major, minor
}

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]entry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (a *Archive) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := a.entries[d]; !ok {
			a.entries[d] = entry{mode: typeDir | 0o755}
		}
	}
}

func (a *Archive) put(p string, e entry) {
	p = clean(p)
	if p == "" {
		return
	}
	a.parents(p)
	a.entries[p] = e
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm fs.FileMode) {
	a.put(p, entry{mode: typeDir | uint32(perm.Perm())})
}

// Bytes adds a regular file with the given content.
func (a *Archive) Bytes(p string, data []byte, perm fs.FileMode) {
	a.put(p, entry{mode: typeReg | uint32(perm.Perm()), data: data})
}

// Symlink adds a symbolic link to target.
func (a *Archive) Symlink(p, target string) {
	a.put(p, entry{mode: typeSymlink | 0o777, link: target})
}

// CharDev adds a character device node (e.g. /dev/console, 5 1, which the
// kernel needs to give /init its standard streams).
func (a *Archive) CharDev(p string, major, minor int, perm fs.FileMode) {
	a.put(p, entry{mode: typeChar | uint32(perm.Perm()), rdev: [2]int{major, minor}})
}

// File adds the host file hostPath at p, following symlinks, keeping its
// permission bits. Its content is read when the archive is written.
func (a *Archive) File(p, hostPath string) error {
	fi, err := os.Stat(hostPath)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("initramfs: %s is not a regular file", hostPath)
	}
	a.put(p, entry{mode: typeReg | uint32(fi.Mode().Perm()), hostPath: hostPath})
	return nil
}

// Tree adds the host directory hostDir under p, keeping symlinks as they are
// (absolute targets then resolve inside the guest's tree, as in a chroot).
func (a *Archive) Tree(p, hostDir string) error {
	return filepath.WalkDir(hostDir, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		rel, err := filepath.Rel(hostDir, hp)
		if err != nil {
			return err
		}
		gp := path.Join(p, filepath.ToSlash(rel))
		switch t := d.Type(); {
		case t.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			a.Dir(gp, fi.Mode())
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return fmt.Errorf("initramfs: %w", err)
			}
			a.Symlink(gp, target)
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			a.put(gp, entry{mode: typeReg | uint32(fi.Mode().Perm()), hostPath: hp})
		default:
			return fmt.Errorf("initramfs: %s: unsupported file type %v", hp, t)
		}
		return nil
	})
}

// Paths lists the archive's entries in the order they are written
// (directories before their content).
func (a *Archive) Paths() []string {
	ps := make([]string, 0, len(a.entries))
	for p := range a.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps) // "a" < "a/b": parents first
	return ps
}

// WriteTo writes the newc archive to w.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	nw := &newcWriter{w: w}
	for _, p := range a.Paths() {
		if err := nw.entry(p, a.entries[p]); err != nil {
			return nw.n, fmt.Errorf("initramfs: %s: %w", p, err)
		}
	}
	if err := nw.trailer(); err != nil {
		return nw.n, fmt.Errorf("initramfs: %w", err)
	}
	return nw.n, nil
}

// Write writes the archive to file dst atomically, gzip-compressed when
// compress is set (the kernel unpacks both; uncompressed unpacks faster
// under emulation).
func (a *Archive) Write(dst string, compress bool) error {
	tmp, err := fsx.Create(dst, 0o644)
	if err != nil {
		return err
	}
	defer tmp.Discard()
	var w io.Writer = tmp
	var gz *gzip.Writer
	if compress {
		gz, _ = gzip.NewWriterLevel(tmp, gzip.BestSpeed)
		w = gz
	}
	_, err = a.WriteTo(w)
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return tmp.Commit()
}
