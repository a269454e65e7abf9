// Command agent is the guest agent: it runs the cells of a plan (load the
// kernel module, run scap-open with the driver while something makes
// syscalls, watch the kernel until the driver is open, then time the
// capture) and writes one JSON record per event (package guest).
//
// It has two modes:
//
//   - as /init of a test VM's initramfs (PID 1, no arguments) it mounts the
//     pseudo filesystems, runs /plan.json, writes its records on the report
//     serial port and powers the VM off;
//   - "agent run PLAN" runs PLAN in an already-booted guest: records go to
//     standard output, only the plan's scap-open roots get pseudo
//     filesystems mounted (and unmounted again), nothing else of the guest
//     is touched and it exits when done.
//
// Build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build.
package main

import (
	"fmt"
	"os"
)

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "run":
		os.Exit(runMode(os.Args[2]))
	case len(os.Args) == 1 && os.Getpid() == 1:
		initMode()
	case len(os.Args) >= 4 && os.Args[1] == enterArg:
		// Internal: the agent starting drivers_test inside its root.
		os.Exit(enterMode(os.Args[2], os.Args[3:]))
	default:
		// Never fall into init mode by accident: it powers the machine off.
		fmt.Fprintf(os.Stderr, "usage: %s run PLAN (or as /init of a test VM)\n", os.Args[0])
		os.Exit(2)
	}
}
