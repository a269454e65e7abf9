package vagrant

import (
	"bufio"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/testplan"
)

// remoteBase is where the loop puts scap-open and the drivers in a guest
// (the login user's home, no root needed to upload).
const remoteBase = "test-vm"

// cell is one cell to test, with the host files it needs.
type cell = testplan.Cell

// orderCells puts the cells of one kernel in the original loop's order:
// every kmod first (each followed by a reboot, so a module that is never
// unloaded cannot affect the next cell), then bpf, then modern_bpf.
func orderCells(cells []cell) []cell {
	rank := map[string]int{"kmod": 0, "bpf": 1, "modern_bpf": 2}
	out := append([]cell(nil), cells...)
	// A stable insertion sort keeps the compiler order within a driver.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank[out[j].Driver] < rank[out[j-1].Driver]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// guestFiles says where each host file of the cells goes in the guest,
// relative to the login user's home. Every distinct scap-open gets its own
// root (with its library closure) in which it runs chrooted, as in the qemu
// provider, so closures from different builder images never mix; a bpf
// probe goes inside the root of the scap-open that loads it.
type guestFiles struct {
	Roots map[string]string // host scap-open -> guest root dir
	Files map[string]string // guest path -> host file
	Trees map[string]string // guest dir -> host dir (library closures)
}

func placeFiles(cells []cell) *guestFiles {
	g := &guestFiles{Roots: map[string]string{}, Files: map[string]string{}, Trees: map[string]string{}}
	for _, c := range cells {
		root, ok := g.Roots[c.ScapOpen]
		if !ok {
			root = path.Join(remoteBase, "roots", strconv.Itoa(len(g.Roots)))
			g.Roots[c.ScapOpen] = root
			g.Files[path.Join(root, "scap-open")] = c.ScapOpen
			if c.Root != "" {
				g.Trees[root] = c.Root
			}
		}
		switch c.Driver {
		case "kmod":
			g.Files[modulePath(c)] = c.Artifact
		case "bpf":
			g.Files[path.Join(root, probePath(c))] = c.Artifact
		}
	}
	return g
}

func modulePath(c cell) string {
	return path.Join(remoteBase, "driver", c.Compiler, c.Kernel+".ko")
}

// probePath is the probe's path inside the scap-open root.
func probePath(c cell) string {
	return path.Join("/drivers", c.Compiler, c.Kernel+".o")
}

// marker starts the lines the cell script prints for the host; scap-open's
// own output never starts with it.
const marker = "@@test-vm@@ "

// cellScript is the shell script (run as root in the guest, from the login
// user's home) that runs one cell the way the qemu provider's guest agent
// does: pseudo filesystems in scap-open's root, the module loaded for kmod,
// something making syscalls while scap-open captures, at most testSeconds
// of capture (SIGINT, then SIGKILL), and marker lines that report what
// happened.
func cellScript(c cell, root string, numEvents, testSeconds int) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("root=\"$PWD\"/%s", root)
	w("for d in dev proc sys; do mkdir -p \"$root/$d\"; mountpoint -q \"$root/$d\" || mount --rbind \"/$d\" \"$root/$d\"; done")
	w("mkdir -p \"$root/tmp\"")
	w("echo \"%suname $(uname -r)\"", marker)
	w("[ -e /sys/kernel/btf/vmlinux ] && echo \"%sbtf\"", marker)
	args := fmt.Sprintf("--num_events %d", numEvents)
	switch c.Driver {
	case "kmod":
		w("dmesg -c >/dev/null 2>&1")
		w("if ! err=$(insmod \"$PWD\"/%s 2>&1); then", modulePath(c))
		w("  echo \"%sload $err\"", marker)
		w("  dmesg 2>/dev/null | tail -n 30 | sed 's/^/%skmsg /'", marker)
		w("  exit 0")
		w("fi")
		args = "--kmod " + args
	case "bpf":
		args = "--bpf " + probePath(c) + " " + args
	case "modern_bpf":
		w("if [ ! -e /sys/kernel/btf/vmlinux ]; then echo \"%sskip modern_bpf needs BTF: /sys/kernel/btf/vmlinux missing\"; exit 0; fi", marker)
		args = "--modern_bpf " + args
	}
	// Syscalls to capture, whatever else the guest is doing.
	w("( while :; do cat /etc/hostname >/dev/null; ls / >/dev/null; sleep 0.05; done ) & load=$!")
	w("start=$(date +%%s.%%N)")
	w("timeout -s INT -k 10 %d chroot \"$root\" /scap-open %s 2>&1", testSeconds, args)
	w("rc=$?")
	w("end=$(date +%%s.%%N)")
	w("kill $load 2>/dev/null; wait $load 2>/dev/null")
	w("echo \"%sexit $rc\"", marker)
	w("echo \"%scapture $(echo \"$end - $start\" | awk '{print $1 - $3}')\"", marker)
	if c.Driver == "kmod" {
		w("dmesg 2>/dev/null | tail -n 30 | sed 's/^/%skmsg /'", marker)
	}
	return b.String()
}

// parseCell turns the output of cellScript into the guest agent's record,
// so that guest.Classify decides the outcome exactly as for the qemu
// provider. It returns the record and the kernel the cell ran on.
func parseCell(output string) (*guest.Record, string) {
	rec := &guest.Record{Type: guest.TypeResult, Events: -1, Exit: -1}
	var scap strings.Builder
	uname := ""
	sawExit := false
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, marker)
		if !ok {
			scap.WriteString(line + "\n")
			continue
		}
		key, val, _ := strings.Cut(rest, " ")
		switch key {
		case "uname":
			uname = val
		case "load":
			if val == "" {
				val = "insmod failed"
			}
			rec.Load = "insmod: " + val
		case "kmsg":
			rec.Kmsg = append(rec.Kmsg, val)
		case "skip":
			rec.Skip = val
		case "exit":
			if n, err := strconv.Atoi(val); err == nil {
				rec.Exit, sawExit = n, true
			}
		case "capture":
			rec.Capture, _ = strconv.ParseFloat(val, 64)
		}
	}
	rec.Output = scap.String()
	rec.Events = guest.ParseEvents(rec.Output)
	// timeout(1) exits 124 when it had to stop scap-open; 137 when it had
	// to kill it too.
	if sawExit && (rec.Exit == 124 || rec.Exit == 137) {
		rec.TimedOut = true
	}
	// 125-127: timeout or chroot could not start scap-open at all (a
	// missing file or library in its root): the run is broken, not the
	// driver.
	if sawExit && rec.Exit >= 125 && rec.Exit <= 127 && rec.Events < 0 {
		last := guest.LastLines(rec.Output, 1)
		rec.Error = fmt.Sprintf("scap-open could not be started (exit %d)", rec.Exit)
		if len(last) > 0 {
			rec.Error += ": " + last[0]
		}
	}
	if !sawExit && rec.Load == "" && rec.Skip == "" {
		rec.Error = "cell script ended without reporting scap-open's exit status"
	}
	return rec, uname
}
