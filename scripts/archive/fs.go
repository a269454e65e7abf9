package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// tree writes the entries of one package under root, refusing any entry
// that would land outside it.
//
// The rule that keeps it safe: every parent of an entry must be a real
// directory under root (created by us or by an earlier entry), never a
// symbolic link, so nothing is ever written through a link, wherever the
// link points. Links are created, not followed.
type tree struct {
	ctx  context.Context
	root string
	pkg  string
	dirs map[string]bool // relative dirs known to be real directories
	// cpio hard links: names waiting for the entry that carries the data.
	pending map[int64][]string
	written int64 // file bytes written so far, against MaxBytes
}

// MaxBytes caps what one package may expand to. A kernel package expands
// to well under 1 GiB; the cap stops a hostile one (a sparse tar entry or a
// compression bomb) from filling the disk.
const MaxBytes = 16 << 30

func newTree(ctx context.Context, root, pkg string) *tree {
	return &tree{ctx: ctx, root: root, pkg: pkg, dirs: map[string]bool{".": true}, pending: map[int64][]string{}}
}

func (t *tree) fail(entry string, err error) error {
	return &EntryError{Package: t.pkg, Entry: entry, Err: err}
}

// clean checks an archive name and returns it relative to root, or "."
// for the root itself.
func (t *tree) clean(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", t.fail(name, fmt.Errorf("%w: absolute name", ErrUnsafe))
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", t.fail(name, fmt.Errorf("%w: name contains \"..\"", ErrUnsafe))
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", t.fail(name, fmt.Errorf("%w: NUL in name", ErrUnsafe))
	}
	return path.Clean("./" + name), nil
}

// parent makes sure every directory above rel exists as a real directory.
func (t *tree) parent(entry, rel string) error {
	dir := path.Dir(rel)
	if t.dirs[dir] {
		return nil
	}
	cur := "."
	for _, c := range strings.Split(dir, "/") {
		cur = path.Join(cur, c)
		if t.dirs[cur] {
			continue
		}
		p := filepath.Join(t.root, cur)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return t.fail(entry, err)
			}
		case err != nil:
			return t.fail(entry, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return t.fail(entry, fmt.Errorf("%w: would be written through the symbolic link %s", ErrUnsafe, cur))
		case !fi.IsDir():
			return t.fail(entry, fmt.Errorf("parent %s is not a directory", cur))
		}
		t.dirs[cur] = true
	}
	return nil
}

// prepare checks name, creates its parents and removes whatever non-directory
// is in its place (a later package may replace a file, as dpkg does).
func (t *tree) prepare(name string) (rel, p string, err error) {
	if err := t.ctx.Err(); err != nil {
		return "", "", err
	}
	rel, err = t.clean(name)
	if err != nil {
		return "", "", err
	}
	if rel == "." {
		return rel, t.root, nil
	}
	if err := t.parent(name, rel); err != nil {
		return "", "", err
	}
	p = filepath.Join(t.root, rel)
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return "", "", t.fail(name, errors.New("a directory is already in its place"))
		}
		if err := os.Remove(p); err != nil {
			return "", "", t.fail(name, err)
		}
	}
	return rel, p, nil
}

func (t *tree) dir(name string, mode fs.FileMode) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	rel, err := t.clean(name)
	if err != nil || rel == "." {
		return err
	}
	if err := t.parent(name, rel+"/x"); err != nil {
		return err
	}
	// Keep directories writable by us so later packages and cleanup work.
	return os.Chmod(filepath.Join(t.root, rel), mode|0o700)
}

func (t *tree) file(name string, mode fs.FileMode, mtime time.Time, r io.Reader) error {
	rel, p, err := t.prepare(name)
	if err != nil {
		return err
	}
	if rel == "." {
		return t.fail(name, errors.New("a file cannot replace the root"))
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
	if err != nil {
		return t.fail(name, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, MaxBytes-t.written+1))
	t.written += n
	if err == nil && t.written > MaxBytes {
		err = fmt.Errorf("the package expands to more than %d GiB", MaxBytes>>30)
	}
	if err != nil {
		f.Close()
		return t.fail(name, err)
	}
	if err := f.Close(); err != nil {
		return t.fail(name, err)
	}
	// kbuild compares timestamps (.config against auto.conf): keep them.
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			return t.fail(name, err)
		}
	}
	return nil
}

func (t *tree) symlink(name, target string) error {
	rel, p, err := t.prepare(name)
	if err != nil {
		return err
	}
	if rel == "." || target == "" {
		return t.fail(name, errors.New("invalid symbolic link"))
	}
	if err := os.Symlink(target, p); err != nil {
		return t.fail(name, err)
	}
	return nil
}

func (t *tree) hardlink(name, target string) error {
	trel, err := t.clean(target)
	if err != nil {
		return t.fail(name, fmt.Errorf("link target: %w", err))
	}
	if err := t.parent(name, trel); err != nil {
		return err
	}
	rel, p, err := t.prepare(name)
	if err != nil {
		return err
	}
	if rel == "." || trel == "." {
		return t.fail(name, errors.New("invalid hard link"))
	}
	if err := os.Link(filepath.Join(t.root, trel), p); err != nil {
		return t.fail(name, err)
	}
	return nil
}

// finish is called after the last entry.
func (t *tree) finish() error {
	return nil
}
