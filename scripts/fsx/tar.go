package fsx

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TarOptions tune WriteTar.
type TarOptions struct {
	// Prefix, when set, puts every entry under this directory (which is
	// written as the archive's first entry).
	Prefix string
	// Skip, when set, leaves out an entry (for a directory, all below it)
	// by its slash-separated name relative to the tree's root.
	Skip func(name string) bool
	// RootOwned writes every entry as owned by root (uid and gid 0, no
	// names) instead of its owner on the host.
	RootOwned bool
}

// Walk visits the tree under dir in lexical order, calling fn with each
// entry's slash-separated name relative to dir, its Lstat information and
// its path. skip, when set, leaves out an entry (for a directory, all
// below it) by its name. dir itself is not visited.
func Walk(dir string, skip func(name string) bool, fn func(name string, fi fs.FileInfo, path string) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		if skip != nil && skip(name) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return fn(name, fi, p)
	})
}

// WriteTar writes the tree under dir to w as a tar archive: directories,
// regular files and symlinks (kept as links, never followed), with their
// modes and modification times; sockets, fifos and devices are left out.
// The archive depends only on the tree: entries in lexical order, and no
// access or change times (reading a file changes its atime), so the same
// tree gives the same bytes.
func WriteTar(w io.Writer, dir string, opt TarOptions) error {
	tw := tar.NewWriter(w)
	if opt.Prefix != "" {
		if err := tw.WriteHeader(&tar.Header{Name: opt.Prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
	}
	err := Walk(dir, opt.Skip, func(name string, fi fs.FileInfo, p string) error {
		link := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			link = l
		case !fi.Mode().IsRegular() && !fi.IsDir():
			return nil
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		if opt.Prefix != "" {
			name = opt.Prefix + "/" + name
		}
		h.Name = name
		if fi.IsDir() {
			h.Name += "/"
		}
		if opt.RootOwned {
			h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		}
		// PAX keeps the modification time to the nanosecond; access and
		// change times are the modification time, not the host's.
		h.ModTime = fi.ModTime()
		h.AccessTime, h.ChangeTime = h.ModTime, h.ModTime
		h.Format = tar.FormatPAX
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

// TarEntry is one regular file of WriteTarFiles: its content is Data, or
// the file at Path when Data is nil.
type TarEntry struct {
	Name string
	Data []byte
	Path string
}

// WriteTarFiles writes entries, in the given order, as regular files with
// mode 0644 to w as a tar archive. In-memory entries have no time; a file
// keeps its modification time, so the same entries give the same bytes.
func WriteTarFiles(w io.Writer, entries []TarEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := writeTarFile(tw, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeTarFile(tw *tar.Writer, e TarEntry) error {
	h := &tar.Header{Name: e.Name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.Data)), Format: tar.FormatPAX}
	if e.Data != nil || e.Path == "" {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h.Size, h.ModTime = fi.Size(), fi.ModTime()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
