// Package sshx talks to a guest over SSH (golang.org/x/crypto/ssh) with the
// address, user and key that `vagrant ssh-config` prints: run commands with
// their exit status and streamed output, upload files with a checksum
// verified on the guest, and wait for the guest to come back after a reboot
// by polling against a deadline.
package sshx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"golang.org/x/crypto/ssh"
)

// Client is a connection to one guest that can be re-established after the
// guest reboots. It is safe for concurrent use.
type Client struct {
	cfg     Config
	signers []ssh.Signer
	hostKey ssh.HostKeyCallback

	mu   sync.Mutex
	conn *ssh.Client
	done chan struct{} // closed when conn is replaced or closed
}

// Option changes how a Client connects.
type Option func(*Client)

// WithHostKey checks the server's host key with cb. Without it, a config
// with StrictHostKeyChecking "no" (Vagrant's) accepts any host key and any
// other config is refused.
func WithHostKey(cb ssh.HostKeyCallback) Option {
	return func(c *Client) { c.hostKey = cb }
}

// New prepares a client for cfg; it loads the keys but does not connect.
func New(cfg Config, opts ...Option) (*Client, error) {
	c := &Client{cfg: cfg}
	for _, f := range cfg.IdentityFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			// Vagrant lists keys that may not exist (e.g. a per-machine
			// key before the first up); skip those as ssh does.
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("ssh key %s: %w", f, err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w", f, err)
		}
		c.signers = append(c.signers, s)
	}
	if len(c.signers) == 0 {
		return nil, fmt.Errorf("ssh %s: none of the identity files can be read: %s", cfg.Name, strings.Join(cfg.IdentityFiles, ", "))
	}
	for _, o := range opts {
		o(c)
	}
	if c.hostKey == nil {
		if cfg.StrictHostKeyChecking {
			return nil, fmt.Errorf("ssh %s: strict host key checking needs a host key (WithHostKey)", cfg.Name)
		}
		c.hostKey = ssh.InsecureIgnoreHostKey() // as the config asks
	}
	return c, nil
}

// Dial connects to the guest once.
func Dial(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	c, err := New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Config returns the configuration the client dials.
func (c *Client) Config() Config { return c.cfg }

func (c *Client) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Addr())
	if err != nil {
		return fmt.Errorf("ssh %s (%s): %w", c.cfg.Name, c.cfg.Addr(), err)
	}
	// Bound the handshake: a guest half way through booting may accept TCP
	// and never answer.
	deadline := time.Now().Add(20 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(nc, c.cfg.Addr(), &ssh.ClientConfig{
		User:            c.cfg.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(c.signers...)},
		HostKeyCallback: c.hostKey,
		Timeout:         10 * time.Second,
	})
	if !stop() || err != nil {
		nc.Close()
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("ssh %s (%s): %w", c.cfg.Name, c.cfg.Addr(), err)
	}
	nc.SetDeadline(time.Time{})
	conn := ssh.NewClient(sc, chans, reqs)
	done := make(chan struct{})
	c.mu.Lock()
	old, oldDone := c.conn, c.done
	c.conn, c.done = conn, done
	c.mu.Unlock()
	if old != nil {
		close(oldDone)
		old.Close()
	}
	go keepalive(conn, done)
	return nil
}

// keepalive closes conn when the server stops answering, so that a command
// running on a guest that hangs or panics fails instead of waiting forever.
func keepalive(conn *ssh.Client, done chan struct{}) {
	const every, misses = 5 * time.Second, 3
	t := time.NewTicker(every)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				conn.Close()
				return
			}
			failed = 0
		case <-time.After(every):
			if failed++; failed >= misses {
				conn.Close()
				return
			}
		case <-done:
			return
		}
	}
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	close(c.done)
	err := c.conn.Close()
	c.conn = nil
	return err
}

func (c *Client) session() (*ssh.Session, error) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return nil, fmt.Errorf("ssh %s: not connected", c.cfg.Name)
	}
	s, err := conn.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh %s: new session: %w", c.cfg.Name, err)
	}
	return s, nil
}

// ErrConnectionLost is returned (wrapped) by Run when the connection broke
// before the command reported its exit status, e.g. because the guest
// rebooted or panicked.
var ErrConnectionLost = errors.New("connection lost before the command finished")

// Run runs cmd with the remote user's shell, streaming its output to stdout
// and stderr (either may be nil) as it arrives, and returns its exit
// status. err is non-nil only when the status is unknown: the command could
// not start, the connection broke, or ctx ended (the command is then sent
// SIGKILL and the session closed; a server that ignores signal requests
// ends the command when it next writes to the closed session).
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	s, err := c.session()
	if err != nil {
		return -1, err
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, orDiscard(stdout), orDiscard(stderr)
	if err := s.Start(cmd); err != nil {
		return -1, fmt.Errorf("ssh %s: start %q: %w", c.cfg.Name, cmd, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		return -1, fmt.Errorf("ssh %s: %q: %w", c.cfg.Name, cmd, ctx.Err())
	}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		if exit.Signal() != "" {
			return 128 + signalNumber(exit.Signal()), nil
		}
		return exit.ExitStatus(), nil
	case errors.As(err, new(*ssh.ExitMissingError)), errors.Is(err, io.EOF):
		return -1, fmt.Errorf("ssh %s: %q: %w", c.cfg.Name, cmd, ErrConnectionLost)
	default:
		return -1, fmt.Errorf("ssh %s: %q: %w (%w)", c.cfg.Name, cmd, ErrConnectionLost, err)
	}
}

func signalNumber(sig string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "SEGV": 11, "PIPE": 13, "ALRM": 14, "TERM": 15}[sig]
	return n
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Output runs cmd and returns its standard output; a non-zero exit status
// is an error that quotes the command's standard error.
func (c *Client) Output(ctx context.Context, cmd string) (string, error) {
	var out, errb strings.Builder
	st, err := c.Run(ctx, cmd, nil, &out, &errb)
	if err != nil {
		return out.String(), err
	}
	if st != 0 {
		return out.String(), fmt.Errorf("ssh %s: %q exited with status %d: %s", c.cfg.Name, cmd, st, strings.TrimSpace(truncate(errb.String(), 2000)))
	}
	return out.String(), nil
}

// Upload copies the local file to remote (a path the login user can
// write), through a temporary name that is renamed into place only after
// sha256sum on the guest has confirmed the content. progress, if not nil,
// is told how many bytes were sent.
func (c *Client) Upload(ctx context.Context, local, remote string, mode os.FileMode, progress func(n int64)) error {
	sum, err := fileSHA256(local)
	if err != nil {
		return fmt.Errorf("upload %s: %w", local, err)
	}
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("upload %s: %w", local, err)
	}
	defer f.Close()
	tmp := path.Join(path.Dir(remote), "."+path.Base(remote)+".part")
	var r io.Reader = f
	if progress != nil {
		r = &countingReader{r: f, add: progress}
	}
	script := fmt.Sprintf("mkdir -p %s && cat > %s && sha256sum %s",
		Quote(path.Dir(remote)), Quote(tmp), Quote(tmp))
	var out, errb strings.Builder
	st, err := c.Run(ctx, script, r, &out, &errb)
	if err == nil && st != 0 {
		err = fmt.Errorf("exit status %d: %s", st, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		c.Run(context.WithoutCancel(ctx), "rm -f "+Quote(tmp), nil, nil, nil)
		return fmt.Errorf("upload %s to %s:%s: %w", local, c.cfg.Name, remote, err)
	}
	remoteSum, _, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
	if remoteSum != sum {
		c.Run(context.WithoutCancel(ctx), "rm -f "+Quote(tmp), nil, nil, nil)
		return fmt.Errorf("upload %s to %s:%s: checksum mismatch: local sha256 %s, guest %q", local, c.cfg.Name, remote, sum, remoteSum)
	}
	if _, err := c.Output(ctx, fmt.Sprintf("chmod %o %s && mv -f %s %s", mode.Perm(), Quote(tmp), Quote(tmp), Quote(remote))); err != nil {
		return fmt.Errorf("upload %s to %s:%s: %w", local, c.cfg.Name, remote, err)
	}
	return nil
}

// Download copies a remote file to local, atomically (temp file + rename).
func (c *Client) Download(ctx context.Context, remote, local string) error {
	tmp, err := fsx.Create(local, 0o644)
	if err != nil {
		return fmt.Errorf("download %s:%s: %w", c.cfg.Name, remote, err)
	}
	defer tmp.Discard()
	var errb strings.Builder
	st, err := c.Run(ctx, "cat "+Quote(remote), nil, tmp, &errb)
	if err == nil && st != 0 {
		err = fmt.Errorf("exit status %d: %s", st, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		return fmt.Errorf("download %s:%s: %w", c.cfg.Name, remote, err)
	}
	return tmp.Commit()
}

type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(int64(n))
	}
	return n, err
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WaitReady polls until a fresh connection runs a command, or fails when
// timeout passes (or ctx ends) with the last error seen. It replaces any
// existing connection.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) error {
	return c.waitFor(ctx, timeout, func(ctx context.Context) error {
		_, err := c.Output(ctx, "true")
		return err
	})
}

func (c *Client) waitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const poll = time.Second
	var last error
	for attempt := 1; ; attempt++ {
		err := c.connect(ctx)
		if err == nil {
			if err = check(ctx); err == nil {
				return nil
			}
		}
		// Keep the reason the guest refused us, not the deadline that
		// interrupted the final attempt (the dial's own timer may fire a
		// moment before ctx reports it).
		var ne net.Error
		timedOut := ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout())
		if last == nil || !timedOut {
			last = err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return fmt.Errorf("ssh %s: wait for guest: %w", c.cfg.Name, parent)
			}
			return fmt.Errorf("ssh %s (%s): guest not reachable within %s (%d attempts), last error: %w", c.cfg.Name, c.cfg.Addr(), timeout, attempt, last)
		case <-t.C:
		}
	}
}

// BootID returns the guest's boot id, which changes on every boot.
func (c *Client) BootID(ctx context.Context) (string, error) {
	out, err := c.Output(ctx, "cat /proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(out), err
}

// Reboot runs rebootCmd (e.g. "sudo reboot"), then waits up to timeout
// until the guest answers again with a new boot id: polling, so it returns
// as soon as the guest is back and never mistakes the old, still shutting
// down system for the new one.
func (c *Client) Reboot(ctx context.Context, rebootCmd string, timeout time.Duration) error {
	before, err := c.BootID(ctx)
	if err != nil {
		return fmt.Errorf("before reboot: %w", err)
	}
	// The command usually loses its connection; that is the point.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	c.Run(rctx, "nohup sh -c "+Quote("sleep 1; "+rebootCmd)+" >/dev/null 2>&1 &", nil, nil, nil)
	cancel()
	return c.waitFor(ctx, timeout, func(ctx context.Context) error {
		id, err := c.BootID(ctx)
		if err != nil {
			return err
		}
		if id == before {
			return fmt.Errorf("guest has not rebooted yet (boot id %s)", id)
		}
		return nil
	})
}
