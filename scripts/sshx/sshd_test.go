package sshx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/falcosecurity/libs/test/vm/scripts/sshx/sshxtest"
)

// newTestServer starts a real sshd and returns the client configuration
// parsed from its ssh-config text.
func newTestServer(t *testing.T, extraConfig ...string) (*sshxtest.Server, Config) {
	t.Helper()
	srv := sshxtest.Start(t, extraConfig...)
	hosts, err := ParseSSHConfig(srv.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	return srv, hosts[0]
}

func TestRunExitStatusAndStreams(t *testing.T) {
	srv, cfg := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, cfg, WithHostKey(ssh.FixedHostKey(srv.HostKey)))
	if err != nil {
		t.Fatalf("%v\nsshd log:\n%s", err, srv.Log())
	}
	defer c.Close()

	var out, errb bytes.Buffer
	st, err := c.Run(ctx, "echo to-stdout; echo to-stderr >&2; exit 3", nil, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if st != 3 || out.String() != "to-stdout\n" || errb.String() != "to-stderr\n" {
		t.Errorf("status %d, stdout %q, stderr %q", st, out.String(), errb.String())
	}

	// Output arrives while the command runs: the command waits for a file
	// that the test creates only after it has seen the first line.
	flag := filepath.Join(t.TempDir(), "go-on")
	w := &triggerWriter{want: "first\n", fire: func() { os.WriteFile(flag, nil, 0o600) }}
	script := fmt.Sprintf("echo first; while [ ! -e %s ]; do sleep 0.05; done; echo second", Quote(flag))
	st, err = c.Run(ctx, script, nil, w, nil)
	if err != nil || st != 0 {
		t.Fatalf("streamed run: status %d, err %v (output so far %q)", st, err, w.String())
	}
	if w.String() != "first\nsecond\n" {
		t.Errorf("streamed output %q", w.String())
	}

	// Output fails on a non-zero status and quotes stderr.
	if _, err := c.Output(ctx, "echo broken >&2; false"); err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "status 1") {
		t.Errorf("Output error = %v", err)
	}

	// A wrong host key is refused.
	other := sshxtest.WriteKey(t, filepath.Join(t.TempDir(), "other"))
	if _, err := Dial(ctx, cfg, WithHostKey(ssh.FixedHostKey(other))); err == nil {
		t.Error("dial with a wrong host key succeeded")
	}

	// Cancelling the context stops a long command.
	cctx, ccancel := context.WithCancel(ctx)
	started := &triggerWriter{want: "started\n", fire: ccancel}
	marker := fmt.Sprintf("cancel-marker-%d", time.Now().UnixNano())
	_, err = c.Run(cctx, "echo started; while :; do echo "+marker+"; sleep 0.1; done", nil, started, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: err = %v", err)
	}
	// The remote command does not outlive the cancelled session (the
	// "guest" is this host, so look for it here).
	deadline := time.Now().Add(20 * time.Second)
	for exec.Command("pgrep", "-f", marker).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("remote command still running after cancel")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// triggerWriter collects output and calls fire once it has seen want.
type triggerWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	fire  func()
	fired bool
}

func (w *triggerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.fired && strings.Contains(w.buf.String(), w.want) {
		w.fired = true
		w.fire()
	}
	return len(p), nil
}

func (w *triggerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestUploadLargeFile(t *testing.T) {
	srv, cfg := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nsshd log:\n%s", err, srv.Log())
	}
	defer c.Close()

	const size = 50 << 20
	local := filepath.Join(t.TempDir(), "big.bin")
	data := make([]byte, size)
	rng := mrand.NewChaCha8([32]byte{1, 2, 3})
	rng.Read(data)
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)

	remoteDir := t.TempDir() // the "guest" is this host
	remote := filepath.Join(remoteDir, "sub dir", "big.bin")
	var sent int64
	if err := c.Upload(ctx, local, remote, 0o640, func(n int64) { sent += n }); err != nil {
		t.Fatal(err)
	}
	if sent != size {
		t.Errorf("progress reported %d bytes, want %d", sent, size)
	}
	got, err := os.ReadFile(remote)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != want {
		t.Fatal("uploaded file differs")
	}
	fi, _ := os.Stat(remote)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %o, want 640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(remoteDir, "sub dir", ".*part")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Download brings it back intact.
	back := filepath.Join(t.TempDir(), "back.bin")
	if err := c.Download(ctx, remote, back); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(back)
	if sha256.Sum256(b) != want {
		t.Error("downloaded file differs")
	}

	// A destination that cannot be written fails with a clear error and
	// leaves nothing behind.
	blocker := filepath.Join(remoteDir, "file")
	os.WriteFile(blocker, nil, 0o644)
	err = c.Upload(ctx, local, filepath.Join(blocker, "x"), 0o644, nil)
	if err == nil || !strings.Contains(err.Error(), "upload "+local) {
		t.Errorf("upload into a file: err = %v", err)
	}
}

func TestUploadChecksumMismatch(t *testing.T) {
	// A guest whose sha256sum disagrees stands for data corrupted in
	// transit: sshd runs every command through a wrapper that puts a fake
	// sha256sum first in PATH. The file must not be renamed into place.
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "sha256sum"), []byte("#!/bin/sh\necho 0000  \"$1\"\n"), 0o755)
	wrap := filepath.Join(bin, "wrap")
	os.WriteFile(wrap, []byte("#!/bin/sh\nPATH="+bin+":$PATH exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n"), 0o755)
	srv, cfg := newTestServer(t, "ForceCommand "+wrap)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nsshd log:\n%s", err, srv.Log())
	}
	defer c.Close()
	local := filepath.Join(t.TempDir(), "f")
	os.WriteFile(local, []byte("hello"), 0o644)
	remote := filepath.Join(t.TempDir(), "f")
	sum := sha256.Sum256([]byte("hello"))
	err = c.Upload(ctx, local, remote, 0o644, nil)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), hex.EncodeToString(sum[:])) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(remote); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt upload renamed into place (stat: %v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(remote), ".*part")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestReconnectAfterRestartAndDeadline(t *testing.T) {
	srv, cfg := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nsshd log:\n%s", err, srv.Log())
	}
	defer c.Close()
	if _, err := c.Output(ctx, "true"); err != nil {
		t.Fatal(err)
	}

	// The server goes away with every session (as the guest does on
	// reboot): the old connection breaks, and WaitReady gets a new one
	// once it is back.
	srv.Stop()
	if _, err := c.Run(ctx, "true", nil, nil, nil); err == nil {
		t.Error("command on a dead connection succeeded")
	}
	restarted := make(chan struct{})
	go func() {
		time.Sleep(2 * time.Second)
		srv.Restart()
		close(restarted)
	}()
	if err := c.WaitReady(ctx, time.Minute); err != nil {
		t.Fatalf("WaitReady after restart: %v\nsshd log:\n%s", err, srv.Log())
	}
	<-restarted
	if out, err := c.Output(ctx, "echo back"); err != nil || out != "back\n" {
		t.Fatalf("after reconnect: %q, %v", out, err)
	}

	// The server never comes back: WaitReady fails at its deadline with
	// the reason.
	srv.Stop()
	err = c.WaitReady(ctx, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "not reachable within 3s") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("WaitReady without server: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("WaitReady overran its own deadline up to the test's")
	}
}

func TestParseSSHConfig(t *testing.T) {
	out := []byte(`Host centos7
  HostName 127.0.0.1
  User vagrant
  Port 2222
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/me/.vagrant.d/insecure private key"
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa

Host ubuntu
  HostName 192.168.121.17
  User vagrant
  Port 22
  IdentityFile /a
  IdentityFile /b
`)
	hosts, err := ParseSSHConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 {
		t.Fatalf("%d hosts", len(hosts))
	}
	h := hosts[0]
	if h.Name != "centos7" || h.Addr() != "127.0.0.1:2222" || h.User != "vagrant" || h.StrictHostKeyChecking ||
		len(h.IdentityFiles) != 1 || h.IdentityFiles[0] != "/home/me/.vagrant.d/insecure private key" {
		t.Errorf("centos7 = %+v", h)
	}
	h = hosts[1]
	if h.Addr() != "192.168.121.17:22" || !h.StrictHostKeyChecking || len(h.IdentityFiles) != 2 {
		t.Errorf("ubuntu = %+v", h)
	}
	for _, bad := range []string{"", "HostName x\n", "Host a\n  Port x\n", "Host a\n  HostName b\n"} {
		if _, err := ParseSSHConfig([]byte(bad)); err == nil {
			t.Errorf("ParseSSHConfig(%q) succeeded", bad)
		}
	}
	// Strict checking without a known host key is refused, not ignored.
	if _, err := New(hosts[1]); err == nil {
		t.Error("New without readable keys succeeded")
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path-1.2":  "plain/path-1.2",
		"with space":      "'with space'",
		"it's":            `'it'\''s'`,
		"":                "''",
		"$(rm -rf /)":     "'$(rm -rf /)'",
		"a>b":             "'a>b'",
		"5.4.0-150-gen+1": "5.4.0-150-gen+1",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
	// The shell gives back the original string.
	odd := "x 'y' \"z\" $HOME `id` \\ \n end"
	out, err := exec.Command("sh", "-c", "printf %s "+Quote(odd)).Output()
	if err != nil || string(out) != odd {
		t.Errorf("sh round trip = %q, %v", out, err)
	}
}
