package archive

import (
	"archive/tar"
	"errors"
	"io"
)

// extractTar writes every entry of a tar stream into t.
func extractTar(r io.Reader, t *tree) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		mode := h.FileInfo().Mode().Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			err = t.dir(h.Name, mode)
		case tar.TypeReg:
			err = t.file(h.Name, mode, h.ModTime, tr)
		case tar.TypeSymlink:
			err = t.symlink(h.Name, h.Linkname)
		case tar.TypeLink:
			err = t.hardlink(h.Name, h.Linkname)
		default:
			// Devices, fifos and PAX/GNU meta entries carry nothing a
			// sysroot needs; archive/tar already folds long names in.
			continue
		}
		if err != nil {
			return err
		}
	}
}
