package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// When is a driver open? scap-open prints nothing the agent can rely on at
// that moment (libs' scap-open prints little, and its stdout to a pipe is
// block-buffered), so the agent asks the kernel what scap-open holds.
// Every libscap engine, in libs from the oldest supported release to main,
// opens its driver in the same order: load everything (the verifier runs
// here), set up the event rings, and attach last (scap_start_capture). So:
//
//   - kmod: scap-open holds /dev/scapN (libscap opens and maps one device
//     per online CPU in one quick loop; the module registers its
//     tracepoints on open).
//   - modern_bpf: a BPF link (the programs attached, through libbpf) and a
//     mapping of a BPF map (the ring buffer). Links appear only after the
//     whole object loaded and its rings were mapped.
//   - bpf (legacy probe, libscap's own loader): a BPF link or raw
//     tracepoint fd (attached; raw tracepoints exist from 4.17) and a
//     perf event ring mapped. Releases whose loader attached each program
//     as it was loaded still mapped the per-CPU perf rings only after the
//     last program, so both together mean the whole probe is in.
//
// The stand-in's engines open in the same order and are judged the same
// way.

// procView is what the kernel shows of a process's hold on a driver, read
// from /proc/<pid>/fd and /proc/<pid>/maps.
type procView struct {
	ScapDevices int // fds on /dev/scapN
	BPFProgs    int // BPF programs loaded
	BPFMaps     int // BPF maps
	BPFLinks    int // attachments: BPF links, raw tracepoint or tracing fds
	PerfEvents  int // perf event fds
	MapMappings int // mappings of BPF maps (BPF ring buffers, global data)
	PerfRings   int // mappings of perf events (perf rings)
	Err         error
}

// inspectProc reads the view of process pid from its fds and mappings. A
// process that went away gives a view with Err set.
func inspectProc(pid int) procView {
	var v procView
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		v.Err = err
		return v
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil {
			v.addFD(target)
		}
	}
	m := inspectMaps(pid)
	v.MapMappings, v.PerfRings, v.Err = m.MapMappings, m.PerfRings, m.Err
	return v
}

// inspectMaps reads only the mappings of process pid: one file, cheap
// enough to read while a capture may be ending.
func inspectMaps(pid int) procView {
	var v procView
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		v.Err = err
		return v
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v.addMapping(sc.Text())
	}
	if err := sc.Err(); err != nil {
		v.Err = err
	}
	return v
}

// scapDeviceRe is a kmod device, seen from outside scap-open's chroot
// (/roots/0/dev/scap0) or inside (/dev/scap0).
var scapDeviceRe = regexp.MustCompile(`/dev/scap[0-9]+$`)

// addFD counts one fd by what it links to.
func (v *procView) addFD(target string) {
	switch target {
	case "anon_inode:bpf-prog":
		v.BPFProgs++
	case "anon_inode:bpf-map":
		v.BPFMaps++
	case "anon_inode:bpf_link", // kernels >= 5.7
		"anon_inode:bpf-raw-tracepoint", // raw tracepoints before links (4.17 - 5.6)
		"anon_inode:bpf-tracing-prog":   // tracing programs before links (5.5, 5.6)
		v.BPFLinks++
	case "anon_inode:[perf_event]":
		v.PerfEvents++
	default:
		if scapDeviceRe.MatchString(target) {
			v.ScapDevices++
		}
	}
}

// addMapping counts one line of /proc/<pid>/maps by what it maps.
func (v *procView) addMapping(line string) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return
	}
	switch f[len(f)-1] {
	case "anon_inode:bpf-map":
		v.MapMappings++
	case "anon_inode:[perf_event]":
		v.PerfRings++
	}
}

// open reports whether the view shows driver open and capturing.
func (v procView) open(driver string) bool {
	if driver == layout.Kmod {
		return v.ScapDevices > 0
	}
	return v.BPFLinks > 0 && v.ringsMapped(driver)
}

// ringsMapped reports whether the event rings of an eBPF driver are
// mapped: the BPF ring buffer of the modern probe, the per-CPU perf rings
// of the legacy probe.
func (v procView) ringsMapped(driver string) bool {
	switch driver {
	case layout.ModernBPF:
		return v.MapMappings > 0
	case layout.BPF:
		return v.PerfRings > 0
	}
	return false
}

// describe says in a few words what the kernel showed, for the reason of
// a driver that did not open in time.
func (v procView) describe(driver string) string {
	if v.Err != nil {
		return "scap-open's /proc not readable (it may have ended): " + v.Err.Error()
	}
	if driver == layout.Kmod {
		return plural(v.ScapDevices, "/dev/scap* device") + " open"
	}
	var rings string
	switch driver {
	case layout.ModernBPF:
		rings = plural(v.MapMappings, "BPF map mapping")
	default:
		rings = plural(v.PerfRings, "perf ring mapping")
	}
	return fmt.Sprintf("kernel shows %s, %s loaded, %s attached, %s",
		plural(v.BPFProgs, "BPF program"), plural(v.BPFMaps, "map"), strconv.Itoa(v.BPFLinks), rings)
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
