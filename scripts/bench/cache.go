package bench

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// linkTree hard-links every regular file under src/<sub> to the same path
// under dst/<sub>, for each sub, keeping files dst already has. Stages
// replace cached files by rename, never in place, so a link shared by two
// build directories is never changed under the other. Files that cannot be
// linked (another file system) are left to the stage to fetch. It returns
// the number of files linked.
func linkTree(src, dst string, subs ...string) (int, error) {
	n := 0
	for _, sub := range subs {
		root := filepath.Join(src, sub)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
				return nil // directories are made below; temp files are not cache
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			to := filepath.Join(dst, rel)
			if _, err := os.Lstat(to); err == nil {
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			if os.Link(p, to) == nil {
				n++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
