package archive

import (
	"errors"
	"io"
	"io/fs"

	"github.com/cavaliergopher/cpio"
)

// extractCpio writes every entry of a newc/crc cpio stream (rpm's payload)
// into t.
func extractCpio(r io.Reader, t *tree) error {
	cr := cpio.NewReader(r)
	for {
		h, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := h.Name
		mode := fs.FileMode(h.Mode.Perm())
		switch h.Mode &^ cpio.ModePerm {
		case cpio.TypeDir:
			err = t.dir(name, mode)
		case cpio.TypeSymlink:
			err = t.symlink(name, h.Linkname)
		case cpio.TypeReg:
			err = t.cpioFile(h, name, mode, cr)
		default:
			continue
		}
		if err != nil {
			return err
		}
	}
}

// cpioFile writes a regular file. newc stores a hard-linked file's data
// only with the last of its names; the earlier names (size 0, same inode)
// are linked to it when it arrives.
func (t *tree) cpioFile(h *cpio.Header, name string, mode fs.FileMode, r io.Reader) error {
	if err := t.file(name, mode, h.ModTime, r); err != nil {
		return err
	}
	if h.Links < 2 {
		return nil
	}
	if h.Size == 0 {
		t.pending[h.Inode] = append(t.pending[h.Inode], name)
		return nil
	}
	for _, other := range t.pending[h.Inode] {
		if err := t.hardlink(other, name); err != nil {
			return err
		}
	}
	delete(t.pending, h.Inode)
	return nil
}
