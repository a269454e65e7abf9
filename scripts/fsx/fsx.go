// Package fsx holds the filesystem primitives every stage shares, so that
// each promise is kept in one place: a file is replaced atomically and
// durably or not at all (WriteFile, Create), a directory tree is replaced
// in one rename (ReplaceDir), a lock survives signals (Lock), and a tree is
// packed the same way every time (WriteTar).
package fsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile writes data to path so that readers see either the old or the
// new content, never a partial file, and so that the new content survives
// a crash once WriteFile returns: a temporary file in the same directory is
// written, synced and renamed over path, then the directory is synced.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Discard()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// File is a file being written under a temporary name next to its final
// path. Commit makes it appear at the final path; Discard (safe to defer,
// a no-op after Commit) removes it.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing path (its directory is created if needed). Until
// Commit, nothing exists under the final name.
func Create(path string, perm fs.FileMode) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &File{File: f, path: path}, nil
}

// Path is the final path of f.
func (f *File) Path() string { return f.path }

// Commit syncs f, renames it to its final path and syncs the directory.
// On error, the temporary file is removed and the final path untouched.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("write %s: already committed or discarded", f.path)
	}
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		f.Discard()
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	f.done = true
	syncDir(filepath.Dir(f.path))
	return nil
}

// Discard abandons f: the temporary file is closed and removed.
func (f *File) Discard() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// Rename renames src to dst and syncs dst's directory, so that the rename
// survives a crash.
func Rename(src, dst string) error {
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	syncDir(filepath.Dir(dst))
	return nil
}

// ReplaceDir puts the directory src at dst in one rename, moving an older
// dst out of the way first (a directory cannot be renamed over a non-empty
// one) and removing it after. The old tree is parked as a ".old-*"
// directory next to dst, which RemoveStale clears if a kill interrupts.
func ReplaceDir(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		old, err := os.MkdirTemp(filepath.Dir(dst), ".old-")
		if err != nil {
			return err
		}
		if err := os.Rename(dst, filepath.Join(old, "x")); err != nil {
			os.Remove(old)
			return err
		}
		defer os.RemoveAll(old)
	}
	return Rename(src, dst)
}

// RemoveStale deletes what an interrupted writer left in each parent
// directory: temporary trees (".tmp-*"), trees parked by ReplaceDir
// (".old-*") and temporary files of Create (".*.tmp*").
func RemoveStale(parents ...string) {
	for _, parent := range parents {
		for _, pattern := range []string{".tmp-*", ".old-*", ".*.tmp*"} {
			found, _ := filepath.Glob(filepath.Join(parent, pattern))
			for _, p := range found {
				os.RemoveAll(p)
			}
		}
	}
}

// syncDir makes the entries of dir durable. A failure is not worth failing
// a write for: some filesystems refuse to sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Lock takes an exclusive flock on name (created with its directory if
// needed) and returns the function that releases it. If another process
// holds it, waiting is called once before blocking (to say so), unless it
// is nil. flock locks belong to the open file, so two goroutines of one
// process exclude each other as two processes do. An EINTR (a signal
// delivered while blocked) is retried, never reported as a failure.
func Lock(name string, waiting func()) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	flock := func(how int) error {
		for {
			if err := syscall.Flock(int(f.Fd()), how); err != syscall.EINTR {
				return err
			}
		}
	}
	err = flock(syscall.LOCK_EX | syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		if waiting != nil {
			waiting()
		}
		err = flock(syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { flock(syscall.LOCK_UN); f.Close() }, nil
}
