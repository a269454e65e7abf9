// Package srctar packs the libs source tree into build/libs-src.tar.gz, the
// one input every compile cell copies into its container, and names it by
// the SHA-256 of the archive: the compile cache key. The archive keeps file
// modes and modification times, so touching a file changes the hash and
// rebuilds every cell. An unchanged tree (same names, sizes, modes and
// times) reuses the existing archive without packing it again.
package srctar

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Prefix is the directory every archive member is under: extracting the
// archive at "/" gives /libs.
const Prefix = "libs"

// DefaultExcludes are left out of the archive, relative to the tree: build
// outputs (as in the original suite) and version control data.
var DefaultExcludes = []string{"build", "test/vm/build", ".git"}

// Archive is a packed source tree.
type Archive struct {
	Path   string // the .tar.gz
	SHA256 string // hex SHA-256 of Path's bytes
	Reused bool   // the tree was unchanged and the archive was not rewritten
}

type stamp struct {
	Tree   string `json:"tree"`
	SHA256 string `json:"sha256"`
}

// Make packs dir into dst (a .tar.gz), leaving out excludes (slash
// separated, relative to dir; a directory excludes all below it), unless
// dst was made from an identical tree before. dst is replaced atomically.
func Make(dir, dst string, excludes []string) (Archive, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Archive{}, err
	}
	tree, err := treeHash(dir, excludes)
	if err != nil {
		return Archive{}, fmt.Errorf("scan %s: %w", dir, err)
	}
	stampPath := dst + ".stamp"
	if b, err := os.ReadFile(stampPath); err == nil {
		var s stamp
		if json.Unmarshal(b, &s) == nil && s.Tree == tree {
			if _, err := os.Stat(dst); err == nil {
				return Archive{Path: dst, SHA256: s.SHA256, Reused: true}, nil
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Archive{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".libs-src-*.tmp")
	if err != nil {
		return Archive{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if err := write(dir, excludes, io.MultiWriter(tmp, h)); err != nil {
		tmp.Close()
		return Archive{}, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return Archive{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Archive{}, err
	}
	b, _ := json.Marshal(stamp{Tree: tree, SHA256: sum})
	if err := writeAtomic(stampPath, b); err != nil {
		return Archive{}, err
	}
	return Archive{Path: dst, SHA256: sum}, nil
}

func excluded(rel string, excludes []string) bool {
	return slices.ContainsFunc(excludes, func(x string) bool {
		x = strings.Trim(filepath.ToSlash(x), "/")
		return rel == x || strings.HasPrefix(rel, x+"/")
	})
}

// walk visits the tree in lexical order, skipping excludes.
func walk(dir string, excludes []string, fn func(rel string, fi fs.FileInfo, path string) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if excluded(rel, excludes) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return fn(rel, fi, p)
	})
}

// treeHash summarises names, modes, sizes, times and link targets: what
// decides whether the archive must be made again.
func treeHash(dir string, excludes []string) (string, error) {
	h := sha256.New()
	err := walk(dir, excludes, func(rel string, fi fs.FileInfo, p string) error {
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		fmt.Fprintf(h, "%q %o %d %d %q\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), link)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func write(dir string, excludes []string, w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: Prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return err
	}
	err = walk(dir, excludes, func(rel string, fi fs.FileInfo, p string) error {
		link := ""
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			var err error
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.IsDir(), fi.Mode().IsRegular():
		default:
			return nil // sockets, fifos: not source
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = Prefix + "/" + rel
		if fi.IsDir() {
			h.Name += "/"
		}
		// The tree belongs to root in the container, whoever owns it here.
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime = fi.ModTime()
		h.AccessTime, h.ChangeTime = fi.ModTime(), fi.ModTime()
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
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
