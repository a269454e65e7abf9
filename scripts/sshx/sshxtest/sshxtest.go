// Package sshxtest runs a real OpenSSH server (Debian's openssh-server) on
// a loopback port for tests of code that talks to guests over ssh.
package sshxtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// Server is a real OpenSSH server on a loopback port, with its own host
// key and one authorized client key, run in the foreground by the test.
type Server struct {
	t       testing.TB
	dir     string
	port    int
	cfgFile string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// SSHConfig is the client configuration to reach it, in the format
	// `vagrant ssh-config` prints.
	SSHConfig []byte
	cmd       *exec.Cmd
}

// WriteKey writes a new ed25519 private key to file (OpenSSH format) and
// returns its public key.
func WriteKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts sshd with extraConfig lines added to its configuration; it
// skips the test when Debian's openssh-server is not installed. The server
// is stopped when the test ends.
func Start(t testing.TB, extraConfig ...string) *Server {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("needs a real sshd at %s: apt-get install -y openssh-server", sshdPath)
	}
	// sshd refuses to start without its privilege separation directory,
	// which the package's init scripts normally create.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Skipf("sshd needs /run/sshd: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{t: t, dir: dir, port: freePort(t), cfgFile: filepath.Join(dir, "sshd_config")}
	s.HostKey = WriteKey(t, filepath.Join(dir, "host_ed25519"))
	clientPub := WriteKey(t, filepath.Join(dir, "client_ed25519"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_ed25519
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers %s
%s
`, s.port, dir, dir, dir, u.Username, strings.Join(extraConfig, "\n"))
	if err := os.WriteFile(s.cfgFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	t.Cleanup(s.Stop)

	// The client side is configured exactly as from `vagrant ssh-config`.
	out := fmt.Sprintf(`Host default
  HostName 127.0.0.1
  User %s
  Port %d
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "%s/missing_key"
  IdentityFile %s/client_ed25519
  IdentitiesOnly yes
  LogLevel FATAL
`, u.Username, s.port, dir, dir)
	s.SSHConfig = []byte(out)
	return s
}

// Restart starts the server again after Stop (on the same port, with the
// same keys).
func (s *Server) Restart() {
	s.t.Helper()
	// A file, not a pipe: the per-connection children inherit it, and
	// os/exec would wait for them to close a pipe.
	logf, err := os.OpenFile(filepath.Join(s.dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", s.cfgFile)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	// Wait until it listens; sshd binds before it accepts, so a TCP
	// connection proves it is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sshd does not listen on %d: %v\n%s", s.port, err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server and every session it serves, as a reboot does.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	// Per-connection children start their own sessions; end them with
	// the listener, as a reboot does.
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		var me, parent int
		var state string
		if _, err := fmt.Sscanf(s[:strings.IndexByte(s, ' ')], "%d", &me); err != nil || i < 0 {
			continue
		}
		if _, err := fmt.Sscanf(s[i+1:], " %s %d", &state, &parent); err != nil {
			continue
		}
		children[parent] = append(children[parent], me)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Log returns what sshd has logged.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "sshd.log"))
	return string(b)
}
