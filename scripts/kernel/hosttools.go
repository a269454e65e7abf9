package kernel

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
)

// checkHostTools makes sure every program of a sysroot (kbuild's host
// tools: fixdep, modpost, ...) runs on this host. Debian's linux-kbuild is
// built for the kernel's own architecture: an arm64 kernel's sysroot needs
// the amd64 linux-kbuild of the same version extracted over it, which an
// apt: reference brings by itself and a line of URLs or files must list.
func checkHostTools(sysroot string) error {
	var foreign []string
	var machine elf.Machine
	err := elfdeps.Programs(sysroot, func(p string, f *os.File) error {
		if m, ok := elfdeps.Machine(io.NewSectionReader(f, 0, 64)); ok && m != elf.EM_X86_64 {
			rel, _ := filepath.Rel(sysroot, p)
			foreign = append(foreign, rel)
			machine = m
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read host tools: %w", err)
	}
	if len(foreign) == 0 {
		return nil
	}
	more := ""
	if len(foreign) > 3 {
		more = fmt.Sprintf(" and %d more", len(foreign)-3)
		foreign = foreign[:3]
	}
	return fmt.Errorf("kbuild's host tools are %s programs (%s%s) that this x86-64 host cannot run: list the amd64 linux-kbuild package of the same version in \"headers\", after the kernel's own (an apt: reference brings it by itself)",
		elfdeps.MachineName(machine), strings.Join(foreign, ", "), more)
}
