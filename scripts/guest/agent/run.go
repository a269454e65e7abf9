package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"golang.org/x/sys/unix"
)

// runMode runs the plan at path in an already-booted guest and writes the
// records to standard output. It mounts pseudo filesystems only inside the
// plan's roots (where scap-open is chrooted), unmounts what it mounted, and
// leaves the rest of the guest alone: no mount of /, no power-off, and the
// plan's VM controls (hang, reboot) are ignored.
func runMode(path string) int {
	start := time.Now()
	plan, err := readPlan(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "agent: %v\n", err)
		return 1
	}
	var mounted []string
	for _, r := range plan.Roots {
		for _, m := range pseudoFS {
			if mountOne(m, r) {
				mounted = append(mounted, filepath.Join(r, m.dir))
			}
		}
	}
	defer unmountAll(mounted)
	failed := false
	emit := func(rec *guest.Record) {
		if err := guest.Encode(os.Stdout, rec); err != nil && !failed {
			fmt.Fprintf(os.Stderr, "agent: write record: %v\n", err)
			failed = true
		}
	}
	newCellRunner(plan, emit).runAll(uptime())
	emit(&guest.Record{Type: guest.TypeDone, Seconds: time.Since(start).Seconds()})
	if failed {
		return 1
	}
	return 0
}

// unmountAll detaches mounts in reverse order (tracefs sits on sysfs).
func unmountAll(dirs []string) {
	for _, d := range slices.Backward(dirs) {
		if err := unix.Unmount(d, unix.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "agent: unmount %s: %v\n", d, err)
		}
	}
}
