package compile

import (
	"fmt"
	"os"

	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
)

// GlibcNeed returns the newest GLIBC_x.y that the ELF executables of a
// kernel's sysroot (its kbuild host tools: fixdep, modpost, objtool...)
// need, or "" when there are none. Symlinks are not followed, so each tool
// is read once, where its package put it.
func GlibcNeed(sysroot string) (string, error) {
	need := ""
	err := elfdeps.Programs(sysroot, func(p string, f *os.File) error {
		vs, err := elfdeps.GlibcNeeds(f)
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
