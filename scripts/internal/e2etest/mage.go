package e2etest

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MageWindow is how long mage's generated main waits for the targets after
// Ctrl-C before it exits anyway; go run's own exit comes on top.
const MageWindow = 5 * time.Second

// MageRun is one `go run mage.go <target>` in its own process group, as a
// terminal runs it, its output (stdout and stderr) collected line by line.
type MageRun struct {
	Target string

	t     testing.TB
	cmd   *exec.Cmd
	start time.Time

	mu    sync.Mutex
	lines []string
	seen  chan struct{} // closed and replaced on every new line
	done  chan struct{}
	err   error
}

// StartMage runs target from the repository root with the test's
// environment plus env. Whatever happens to the test, the process group
// does not outlive it.
func StartMage(t testing.TB, target string, env map[string]string) *MageRun {
	t.Helper()
	cmd := exec.Command("go", "run", "mage.go", target)
	cmd.Dir = Root()
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	r := &MageRun{Target: target, t: t, cmd: cmd, seen: make(chan struct{}), done: make(chan struct{})}
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Logf("%s: started (process group %d)", target, cmd.Process.Pid)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			close(r.seen)
			r.seen = make(chan struct{})
			r.mu.Unlock()
		}
		pr.Close()
	}()
	go func() {
		err := cmd.Wait()
		<-scanned
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
	})
	return r
}

// Output is everything the run printed so far.
func (r *MageRun) Output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// Err is how the run ended (nil while it runs).
func (r *MageRun) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// WaitLine waits until the run prints a line matching re and returns it.
func (r *MageRun) WaitLine(re *regexp.Regexp, timeout time.Duration) string {
	r.t.Helper()
	deadline := time.After(timeout)
	next := 0
	for {
		r.mu.Lock()
		for ; next < len(r.lines); next++ {
			if re.MatchString(r.lines[next]) {
				l := r.lines[next]
				r.mu.Unlock()
				return l
			}
		}
		seen := r.seen
		r.mu.Unlock()
		select {
		case <-seen:
		case <-r.done:
			r.mu.Lock()
			n := len(r.lines)
			r.mu.Unlock()
			if next == n {
				r.t.Fatalf("%s ended (%v) before a line matched %s:\n%s", r.Target, r.Err(), re, r.Output())
			}
		case <-deadline:
			r.t.Fatalf("%s: no line matched %s in %s:\n%s", r.Target, re, timeout, r.Output())
		}
	}
}

// WaitFor polls cond until it holds.
func (r *MageRun) WaitFor(what string, timeout time.Duration, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-r.done:
			r.t.Fatalf("%s ended (%v) before %s:\n%s", r.Target, r.Err(), what, r.Output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: no %s in %s:\n%s", r.Target, what, timeout, r.Output())
		}
	}
}

// Interrupt sends SIGINT to the run's process group, as Ctrl-C in its
// terminal does, and waits for the run to end. It returns how long that
// took.
func (r *MageRun) Interrupt() time.Duration {
	r.t.Helper()
	at := time.Now()
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("%s still running 30 s after Ctrl-C:\n%s", r.Target, r.Output())
	}
	took := time.Since(at)
	r.t.Logf("%s: ended %.1fs after Ctrl-C (%v)", r.Target, took.Seconds(), r.Err())
	return took
}

// Wait waits for the run to end by itself and returns its error.
func (r *MageRun) Wait(timeout time.Duration) error {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.t.Fatalf("%s still running after %s:\n%s", r.Target, timeout, r.Output())
	}
	r.t.Logf("%s: ended after %.1fs (%v)", r.Target, time.Since(r.start).Seconds(), r.Err())
	return r.Err()
}
