package main

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BPF links are how every eBPF engine attaches on kernels >= 5.8 (libbpf's
// bpf_program__attach, and the legacy engine's raw tracepoints, are links
// there), and the kernel numbers them in increasing order. So "a link newer
// than the newest one before scap-open started" means scap-open attached,
// and asking for it costs one bpf(2) call: cheap enough to ask every few
// milliseconds without slowing a verification that runs on the guest's one
// CPU, which scanning all of a big probe's fds in /proc would.

// errNoLinkIDs says the kernel cannot list BPF links (before 5.8).
var errNoLinkIDs = errors.New("kernel cannot list BPF links")

// nextLinkID returns the ID of the first BPF link whose ID is greater
// than after, or 0 when there is none.
func nextLinkID(after uint32) (uint32, error) {
	attr := struct{ start, next, flags uint32 }{start: after}
	_, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_GET_NEXT_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	switch e {
	case 0:
		return attr.next, nil
	case unix.ENOENT:
		return 0, nil
	case unix.EINVAL:
		return 0, errNoLinkIDs
	}
	return 0, e
}
