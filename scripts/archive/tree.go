package archive

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TreeOptions tune WriteTree.
type TreeOptions struct {
	// Skip, when set, leaves out an entry (for a directory, all below it)
	// by its slash-separated name relative to the tree's root.
	Skip func(name string) bool
	// RootOwned writes every entry as owned by root (uid and gid 0, no
	// names) instead of its owner on the host.
	RootOwned bool
}

// WriteTree writes the tree under dir to w as a tar archive: directories,
// regular files and symlinks (kept as links, never followed), with their
// modes and times. Sockets, fifos and devices are left out.
func WriteTree(w io.Writer, dir string, opt TreeOptions) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		if opt.Skip != nil && opt.Skip(name) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case !fi.Mode().IsRegular() && !fi.IsDir():
			return nil
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = name
		if fi.IsDir() {
			h.Name += "/"
		}
		if opt.RootOwned {
			h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
