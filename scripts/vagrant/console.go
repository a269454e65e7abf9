package vagrant

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
)

// The guest's serial console is the only witness of a kernel panic: the
// panicking guest drops its ssh connection without a word. The Vagrantfile
// has the hypervisor log each machine's first serial port into a file of
// the console directory (VM_CONSOLE_DIR: libvirt's serial type "file",
// VirtualBox's --uartmode1 file), and the grub defaults Init writes send
// the kernel's console there (console=ttyS0). The loop remembers the
// file's size when a cell starts and reads what came after when it ends.

// consoleDir is where the hypervisor writes the machines' console logs.
// It lives in the build directory, which must be one the hypervisor's user
// can reach when it opens the file itself (libvirt's qemu runs as
// libvirt-qemu: not under /root; with libvirt's default virtlogd, root
// writes it).
func consoleDir(cfg *config.Config) string { return cfg.Path("vagrant", "console") }

// consolePath is the console log of the machine of group, as the
// Vagrantfile names it.
func consolePath(cfg *config.Config, group string) string {
	return filepath.Join(consoleDir(cfg), group+".log")
}

// maxConsoleRead bounds what one cell reads from a console log: a guest
// that floods its console must not fill the host's memory. The end of the
// text is kept; a panic report is near it.
const maxConsoleRead = 1 << 20

// consoleLog reads a console log file that the hypervisor keeps writing.
type consoleLog struct{ path string }

// mark is the current end of the log, where a cell starting now begins.
func (c consoleLog) mark() int64 {
	fi, err := os.Stat(c.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// since returns the text written after mark. A log shorter than mark has
// been started anew: truncated by a hypervisor that reopened it after a
// hard reset, or rotated by libvirt's virtlogd to <path>.0 when it grew
// past its size limit. Then the rest of the rotated file (when it is the
// one mark points into) comes first, then the new file from its start. A
// missing log (a provider without a console file) is no text.
func (c consoleLog) since(mark int64) (string, error) {
	size := c.mark()
	if size >= mark {
		return readRange(c.path, mark, size)
	}
	var b strings.Builder
	rotated := c.path + ".0"
	if fi, err := os.Stat(rotated); err == nil && fi.Size() > mark {
		old, err := readRange(rotated, mark, fi.Size())
		if err != nil {
			return "", err
		}
		b.WriteString(old)
	}
	cur, err := readRange(c.path, 0, size)
	if err != nil {
		return "", err
	}
	b.WriteString(cur)
	text := b.String()
	if len(text) > maxConsoleRead {
		text = text[len(text)-maxConsoleRead:]
	}
	return text, nil
}

// readRange reads [from, to) of file, at most its last maxConsoleRead
// bytes.
func readRange(file string, from, to int64) (string, error) {
	if to <= from {
		return "", nil
	}
	from = max(from, to-maxConsoleRead)
	f, err := os.Open(file)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil
		}
		return "", fmt.Errorf("console log: %w", err)
	}
	defer f.Close()
	buf := make([]byte, to-from)
	n, err := f.ReadAt(buf, from)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("console log %s: %w", file, err)
	}
	return string(buf[:n]), nil
}

// prepareConsole makes an empty console log for group's machine before it
// is created, in a directory everyone may enter, so that the hypervisor
// (or libvirt on its behalf) can open it; an old log would only mislead.
func prepareConsole(cfg *config.Config, group string) error {
	dir := consoleDir(cfg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("console log of %s: %w", group, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("console log of %s: %w", group, err)
	}
	p := consolePath(cfg, group)
	for _, old := range []string{p, p + ".0", p + ".1", p + ".2", p + ".3"} {
		os.Remove(old)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return fmt.Errorf("console log of %s: %w", group, err)
	}
	return nil
}

// consoleExcerpt is the end of a cell's console text for its log: enough
// lines to show a panic report and what led to it.
func consoleExcerpt(text string) []string {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	return lastLines(strings.TrimRight(strings.ReplaceAll(text, "\r", ""), "\n"), 120)
}
