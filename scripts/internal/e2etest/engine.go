package e2etest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/falcosecurity/libs/test/vm/scripts/setup"
	"github.com/falcosecurity/libs/test/vm/scripts/tree"
)

// TCPEngine starts a second dockerd, of the test's own, listening on
// tcp://127.0.0.1:<free port> (remote by its scheme) with its state under
// the shared end-to-end build directory (<name>/: data, exec root,
// pidfile, log; kept, so images copied or built into it stay for the next
// run), without bridge or firewall rules, and stopped when the test ends.
// When hide is not "", it runs in a mount namespace of its own in which an
// empty tmpfs covers hide, so that nothing below hide reaches its
// containers but by copy. It returns the engine's DOCKER_HOST.
func TCPEngine(t *testing.T, name, hide string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting a second dockerd needs root")
	}
	dir := filepath.Join(BuildDir(t), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "dockerd.pid")
	stopOwnDockerd(t, pidfile, dir) // one a killed run left
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("tcp://%s", l.Addr())
	l.Close()
	logf, err := os.OpenFile(filepath.Join(dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	bridge, err := setup.EngineBridge(dir)
	if err != nil {
		t.Fatal(err)
	}
	dockerd := []string{"dockerd", "--host", host,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", pidfile, "--bridge", bridge, "--iptables=false", "--ip6tables=false"}
	cmd := exec.Command(dockerd[0], dockerd[1:]...)
	if hide != "" {
		// unshare and sh exec: the process started is dockerd in the end.
		cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--",
			"sh", "-c", `mount -t tmpfs -o size=1m,mode=0755 hidden "$1" && shift && exec "$@"`, "sh", hide}, dockerd...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Errorf("dockerd at %s still running a minute after SIGTERM", host)
		}
		// dockerd leaves its network namespace mounted under its exec
		// root, which then cannot be removed with the build directory.
		if err := tree.Remove(filepath.Join(dir, "exec")); err != nil {
			t.Error(err)
		}
		if _, err := setup.RemoveEngineBridges(dir); err != nil {
			t.Error(err)
		}
	})
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := api.Ping(t.Context()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("dockerd at %s did not answer in a minute (log: %s): %v", host, logf.Name(), err)
		}
		select {
		case <-exited:
			t.Fatalf("dockerd at %s exited (log: %s): %v", host, logf.Name(), exitErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if hide != "" {
		// The engine's own view of the filesystem hides the directory.
		real, err := filepath.EvalSymlinks(hide)
		if err != nil {
			t.Fatal(err)
		}
		if mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", cmd.Process.Pid)); err != nil || !hidden(string(mi), real) {
			t.Fatalf("the engine at %s sees %s (mountinfo: %v)", host, hide, err)
		}
	}
	return host
}

// stopOwnDockerd stops the dockerd that pidfile names when it is a test's
// own (its command line names dir), and waits for it to go.
func stopOwnDockerd(t *testing.T, pidfile, dir string) {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), "dockerd") || !strings.Contains(string(cmdline), dir) {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(time.Minute); syscall.Kill(pid, 0) == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("an earlier test's dockerd %d is still running a minute after SIGTERM", pid)
		}
	}
}

// hidden reports whether mountinfo (of /proc/PID/mountinfo) has a tmpfs
// mounted at dir.
func hidden(mountinfo, dir string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE ...
		for i, x := range f {
			if x == "-" && i+1 < len(f) && len(f) > 4 && f[4] == dir && f[i+1] == "tmpfs" {
				return true
			}
		}
	}
	return false
}
