package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// FS returns the container's file system (running or stopped) as an
// fs.FS that also implements fs.ReadLinkFS and fs.ReadDirFS, for
// elfdeps.Closure. Each call is a request to the daemon; files are read
// whole into memory, so use it for a few files, not a tree.
func (c *Container) FS(ctx context.Context) fs.FS { return &containerFS{ctx: ctx, c: c} }

// ReadFile copies one regular file out of the container into w. It returns
// the file's mode.
func (c *Container) ReadFile(ctx context.Context, name string, w io.Writer) (fs.FileMode, error) {
	rc, _, err := c.e.api.CopyFromContainer(ctx, c.ID, name)
	if err != nil {
		return 0, fmt.Errorf("copy %s out of the container: %w", name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		return 0, fmt.Errorf("copy %s out of the container: %w", name, err)
	}
	if h.Typeflag != tar.TypeReg {
		return 0, fmt.Errorf("copy %s out of the container: not a regular file", name)
	}
	if _, err := io.Copy(w, tr); err != nil {
		return 0, fmt.Errorf("copy %s out of the container: %w", name, err)
	}
	return h.FileInfo().Mode(), nil
}

type containerFS struct {
	ctx context.Context
	c   *Container
}

func (f *containerFS) abs(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return "/" + strings.TrimPrefix(name, "."), nil
}

func notExist(op, name string, err error) error {
	if cerrdefs.IsNotFound(err) {
		err = fs.ErrNotExist
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (f *containerFS) Lstat(name string) (fs.FileInfo, error) {
	p, err := f.abs("lstat", name)
	if err != nil {
		return nil, err
	}
	st, err := f.c.e.api.ContainerStatPath(f.ctx, f.c.ID, p)
	if err != nil {
		return nil, notExist("lstat", name, err)
	}
	return statInfo{st}, nil
}

// ReadLink returns the link's target resolved by the daemon inside the
// container: an absolute path.
func (f *containerFS) ReadLink(name string) (string, error) {
	p, err := f.abs("readlink", name)
	if err != nil {
		return "", err
	}
	st, err := f.c.e.api.ContainerStatPath(f.ctx, f.c.ID, p)
	if err != nil {
		return "", notExist("readlink", name, err)
	}
	if st.Mode&fs.ModeSymlink == 0 || st.LinkTarget == "" {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return st.LinkTarget, nil
}

func (f *containerFS) Open(name string) (fs.File, error) {
	p, err := f.abs("open", name)
	if err != nil {
		return nil, err
	}
	rc, st, err := f.c.e.api.CopyFromContainer(f.ctx, f.c.ID, p)
	if err != nil {
		return nil, notExist("open", name, err)
	}
	defer rc.Close()
	if st.Mode.IsDir() {
		return &dirFile{info: statInfo{st}}, nil
	}
	if st.Mode&fs.ModeSymlink != 0 {
		return f.Open(strings.TrimPrefix(path.Clean(st.LinkTarget), "/"))
	}
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &memFile{Reader: bytes.NewReader(b), info: statInfo{st}}, nil
}

func (f *containerFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := f.abs("readdir", name)
	if err != nil {
		return nil, err
	}
	rc, st, err := f.c.e.api.CopyFromContainer(f.ctx, f.c.ID, p)
	if err != nil {
		return nil, notExist("readdir", name, err)
	}
	defer rc.Close()
	if !st.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	var out []fs.DirEntry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
		}
		// Entries are "<base>/<child>[/...]": keep direct children.
		parts := strings.Split(strings.Trim(h.Name, "/"), "/")
		if len(parts) == 2 {
			out = append(out, fs.FileInfoToDirEntry(h.FileInfo()))
		}
	}
	return out, nil
}

type statInfo struct{ st container.PathStat }

func (s statInfo) Name() string       { return s.st.Name }
func (s statInfo) Size() int64        { return s.st.Size }
func (s statInfo) Mode() fs.FileMode  { return s.st.Mode }
func (s statInfo) ModTime() time.Time { return s.st.Mtime }
func (s statInfo) IsDir() bool        { return s.st.Mode.IsDir() }
func (s statInfo) Sys() any           { return nil }

type memFile struct {
	*bytes.Reader
	info fs.FileInfo
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m.info, nil }
func (m *memFile) Close() error               { return nil }

type dirFile struct{ info fs.FileInfo }

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error)   { return 0, errors.New("is a directory") }
func (d *dirFile) Close() error               { return nil }
