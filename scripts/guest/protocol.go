// Package guest is the contract between the host and the guest agent: the
// plan the host gives it, the JSON records the agent writes (as /init of a
// qemu VM on a dedicated report channel, a second serial port, never the
// console; in an already-booted guest on its standard output), and the
// host-side reading and classification of what happened to each cell. It
// is shared by every VM provider, so it depends on nothing but the standard
// library.
package guest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Paths inside the guest.
const (
	// PlanPath is where the host puts the plan in the initramfs.
	PlanPath = "/plan.json"
	// ReportDevice is the serial port the agent writes records to; the host
	// attaches it to a file (qemu's second -serial on x86, the second port
	// of a PCI serial card on arm64's virt).
	ReportDevice = "/dev/ttyS1"
	// ExitUnsupported is the exit code with which scap-open says the engine
	// is not supported on this kernel: the cell is a skip.
	ExitUnsupported = 95
)

// Plan tells the agent which cells to run, in order.
type Plan struct {
	// NumEvents is passed to scap-open as --num_events.
	NumEvents int `json:"num_events"`
	// LoadSeconds bounds opening the driver: from scap-open's start until
	// the kernel shows the driver open (see the agent). A driver not open
	// by then is killed and tried once more with twice the limit; still
	// not open, the cell is an error, never a capture failure. 0 leaves
	// opening unbounded (the host's deadline still ends a VM).
	LoadSeconds int `json:"load_seconds"`
	// TestSeconds bounds the capture once the driver is open; at the limit
	// the agent sends SIGINT (scap-open prints its summary and exits) and
	// then SIGKILL.
	TestSeconds int `json:"test_seconds"`
	// Roots are directory trees (scap-open and its shared libraries at their
	// absolute paths) the agent prepares for chroot: it mounts devtmpfs,
	// proc, sysfs and tracefs inside each.
	Roots []string   `json:"roots,omitempty"`
	Cells []PlanCell `json:"cells"`
	// Hang makes the agent stop before reporting anything and never power
	// off: the negative control for the host's deadline handling.
	Hang bool `json:"hang,omitempty"`
	// Reboot makes the agent reboot instead of powering off, so a VM
	// without -no-reboot boots again and again: used to measure what a
	// reboot costs against a fresh VM.
	Reboot bool `json:"reboot,omitempty"`
}

// PlanCell is one cell as the agent sees it. Paths are absolute in the guest.
type PlanCell struct {
	ID     string `json:"id"`     // compiler/uname-r/driver, echoed in records
	Driver string `json:"driver"` // kmod, bpf, modern_bpf
	Root   string `json:"root"`   // chroot in which scap-open runs
	// ScapOpen is the scap-open binary, as a path inside Root.
	ScapOpen string `json:"scap_open"`
	// Module is the kernel module the agent loads before a kmod cell
	// (outside Root); Deps are loaded first, in order.
	Module string   `json:"module,omitempty"`
	Deps   []string `json:"deps,omitempty"`
	// Probe is the eBPF object of a bpf cell, as a path inside Root.
	Probe string `json:"probe,omitempty"`
	// Behaviour, when set, runs drivers_test against the driver once the
	// scap-open check passed.
	Behaviour *BehaviourRun `json:"behaviour,omitempty"`
}

// Record types, in the order the agent writes them.
const (
	TypeHello  = "hello"  // the agent started; Uname, BTF
	TypeStart  = "start"  // a cell begins; Cell
	TypeResult = "result" // a cell ended; every other field
	TypeDone   = "done"   // every cell ran; the agent powers off next
)

// Record is one JSON line on the report channel.
type Record struct {
	Type string `json:"type"`
	Cell string `json:"cell,omitempty"`

	// hello
	Uname  string  `json:"uname,omitempty"`
	BTF    bool    `json:"btf,omitempty"`
	Uptime float64 `json:"uptime,omitempty"` // seconds since the kernel started

	// result
	Load     string   `json:"load,omitempty"`      // module load error (kmod)
	Skip     string   `json:"skip,omitempty"`      // why the agent did not run the cell
	Exit     int      `json:"exit"`                // scap-open exit code, -1 if a signal ended it
	Signal   string   `json:"signal,omitempty"`    // the signal that ended scap-open ("interrupt", "segmentation fault", ...)
	Events   int      `json:"events"`              // events in scap-open's summary, -1 if none
	TimedOut bool     `json:"timed_out,omitempty"` // the capture hit TestSeconds and the agent sent its stop (SIGINT)
	Killed   bool     `json:"killed,omitempty"`    // scap-open ignored the stop and the agent killed it
	Output   string   `json:"output,omitempty"`    // scap-open's output (long output keeps head and tail)
	Kmsg     []string `json:"kmsg,omitempty"`      // kernel log lines written during the cell (the last ones)
	Splat    []string `json:"splat,omitempty"`     // the first kernel WARN/BUG/oops report during the cell, from its first line
	Seconds  float64  `json:"seconds,omitempty"`   // wall time of the whole cell in the guest
	Error    string   `json:"error,omitempty"`     // the agent could not run the cell (infra)

	// Opened says the agent saw the driver open (kernel side: scap
	// devices held, BPF programs attached with their rings mapped).
	// LoadSeconds is the time from scap-open's start until then and
	// Capture the time from then until scap-open ended. A scap-open that
	// ended before the agent saw the driver open has Opened false, its
	// whole run in LoadSeconds and Capture 0.
	Opened      bool    `json:"opened,omitempty"`
	LoadSeconds float64 `json:"load_seconds,omitempty"`
	Capture     float64 `json:"capture,omitempty"`
	// NotOpen is set when the driver was still not open at the load limit
	// of the last attempt: "driver not open after N s" and what the kernel
	// showed of scap-open then.
	NotOpen string `json:"not_open,omitempty"`
	// Notes are one-line facts about earlier attempts (a load retried).
	Notes []string `json:"notes,omitempty"`
	// Behaviour is what drivers_test found, when the plan asked for it
	// and the scap-open check passed.
	Behaviour *Behaviour `json:"behaviour,omitempty"`
}

// Report is everything the agent said in one VM run.
type Report struct {
	Hello   *Record
	Started []string           // cells in the order they started
	Results map[string]*Record // by cell ID
	Done    bool
	// Garbage counts lines that were not records (e.g. a line cut by a
	// power-off); they are ignored.
	Garbage int
}

// ReadReport parses the report channel's content. Lines that are not JSON
// records are counted, not fatal: a VM that dies mid-line must still yield
// the records written before.
func ReadReport(r io.Reader) (*Report, error) {
	rep := &Report{Results: map[string]*Record{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		// The serial line may carry noise before the first record.
		if i := bytes.IndexByte(line, '{'); i > 0 {
			line = line[i:]
		}
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil || rec.Type == "" {
			rep.Garbage++
			continue
		}
		switch rec.Type {
		case TypeHello:
			rep.Hello = &rec
		case TypeStart:
			rep.Started = append(rep.Started, rec.Cell)
		case TypeResult:
			rep.Results[rec.Cell] = &rec
		case TypeDone:
			rep.Done = true
		default:
			rep.Garbage++
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read report: %w", err)
	}
	return rep, nil
}

// Encode writes rec as one line.
func Encode(w io.Writer, rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// LastLines returns the last n non-empty lines of s.
func LastLines(s string, n int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l = strings.TrimRight(l, "\r "); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
