// Package srctar packs the libs source tree into build/libs-src.tar.gz, the
// one input every compile cell copies into its container, and names it by
// the SHA-256 of the archive: the compile cache key. The archive keeps file
// modes and modification times, so touching a file changes the hash and
// rebuilds every cell. An unchanged tree (same names, sizes, modes and
// times) reuses the existing archive without packing it again.
package srctar

import (
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

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
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
	tmp, err := fsx.Create(dst, 0o644)
	if err != nil {
		return Archive{}, err
	}
	defer tmp.Discard()
	h := sha256.New()
	if err := write(dir, excludes, io.MultiWriter(tmp, h)); err != nil {
		return Archive{}, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tmp.Commit(); err != nil {
		return Archive{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	b, _ := json.Marshal(stamp{Tree: tree, SHA256: sum})
	if err := fsx.WriteFile(stampPath, b, 0o644); err != nil {
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

// treeHash summarises names, modes, sizes, times and link targets: what
// decides whether the archive must be made again.
func treeHash(dir string, excludes []string) (string, error) {
	h := sha256.New()
	skip := func(rel string) bool { return excluded(rel, excludes) }
	err := fsx.Walk(dir, skip, func(rel string, fi fs.FileInfo, p string) error {
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		fmt.Fprintf(h, "%q %o %d %d %q\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), link)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// write packs the tree under Prefix, owned by root (the tree belongs to
// root in the container, whoever owns it here).
func write(dir string, excludes []string, w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	skip := func(rel string) bool { return excluded(rel, excludes) }
	if err := fsx.WriteTar(zw, dir, fsx.TarOptions{Prefix: Prefix, Skip: skip, RootOwned: true}); err != nil {
		return err
	}
	return zw.Close()
}
