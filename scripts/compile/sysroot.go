package compile

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
)

// GlibcNeed returns the newest GLIBC_x.y that the ELF executables of a
// kernel's sysroot (its kbuild host tools: fixdep, modpost, objtool...)
// need, or "" when there are none. Symlinks are not followed, so each tool
// is read once, where its package put it.
func GlibcNeed(sysroot string) (string, error) {
	need := ""
	err := filepath.WalkDir(sysroot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&0o111 == 0 || fi.Size() < 64 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(b, []byte("\x7fELF")) {
			return nil
		}
		vs, err := elfdeps.GlibcNeeds(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		need = elfdeps.MaxVersion(append(vs, need)...)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read host tools of %s: %w", sysroot, err)
	}
	return need, nil
}
