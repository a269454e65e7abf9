package bench

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// selfPeakRSS is this process's peak resident set in KiB (getrusage
// RUSAGE_SELF: ru_maxrss is in KiB on Linux).
func selfPeakRSS() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return ru.Maxrss, nil
}

// loadAverage is the host's 1-minute load average, NaN when unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// procStatus is what the bench reads from /proc/<pid>/status.
type procStatus struct {
	Name    string
	PPid    int
	VmHWMKB int64 // peak resident set, KiB
}

// parseStatus reads the fields of procStatus from the text of a
// /proc/<pid>/status file.
func parseStatus(text string) procStatus {
	var st procStatus
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			st.Name = val
		case "PPid":
			st.PPid, _ = strconv.Atoi(val)
		case "VmHWM":
			st.VmHWMKB, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(val, "kB")), 10, 64)
		}
	}
	return st
}

// qemuWatch samples the peak resident set of the qemu processes this
// process starts, while they run: a VM's VmHWM only grows, so the last
// sample before it exits is close to its peak.
type qemuWatch struct {
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak int64 // KiB, largest VmHWM seen
	vms  map[int]bool
}

// watchQemu starts sampling every interval until Stop.
func watchQemu(interval time.Duration) *qemuWatch {
	w := &qemuWatch{stop: make(chan struct{}), done: make(chan struct{}), vms: map[int]bool{}}
	self := os.Getpid()
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.sample(self)
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *qemuWatch) sample(self int) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue // gone since the glob
		}
		st := parseStatus(string(b))
		if st.PPid != self || !strings.HasPrefix(st.Name, "qemu-system") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		w.mu.Lock()
		w.vms[pid] = true
		w.peak = max(w.peak, st.VmHWMKB)
		w.mu.Unlock()
	}
}

// Stop ends sampling and returns the largest peak seen (KiB) and the
// number of VMs seen.
func (w *qemuWatch) Stop() (int64, int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak, len(w.vms)
}
