// Package tree removes directory trees that may have file systems mounted
// below them: a root filesystem under construction (debootstrap, a Vagrant
// box) has /proc, /sys or /dev mounted while it is built, and deleting
// through such a mount would delete the host's files.
package tree

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Remove deletes dir like os.RemoveAll, but first detaches every mount
// below it (a root filesystem under construction may have /proc or /dev
// mounted): deleting through a bind mount would delete the host's files.
func Remove(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounts, err := mountsUnder(abs)
	if err != nil {
		return err
	}
	// Deepest first, so that nested mounts come off before their parents.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("remove %s: %s is mounted and cannot be unmounted (%v); unmount it by hand", abs, m, err)
		}
	}
	if left, _ := mountsUnder(abs); len(left) > 0 {
		return fmt.Errorf("remove %s: %s is still mounted", abs, left[0])
	}
	return os.RemoveAll(abs)
}

func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mounts")
	if os.IsNotExist(err) {
		return nil, nil // not Linux: nothing we mounted
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		// /proc/self/mounts escapes spaces and the like as octal.
		mp := unescapeMount(fields[1])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
