package container

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/tail"
)

// sshDialer returns a dial function that reaches the Docker engine at an
// ssh://[USER@]HOST[:PORT] address as the docker CLI does: each connection
// is `ssh ... HOST docker system dial-stdio` run on this host, the Engine
// API spoken over its standard input and output. ssh uses the user's own
// configuration, keys and agent; the remote host needs the docker CLI.
func sshDialer(host string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
		return nil, fmt.Errorf("DOCKER_HOST=%s: want ssh://[USER@]HOST[:PORT]", host)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("DOCKER_HOST=%s: an ssh:// address takes no path", host)
	}
	args := []string{"-o", "ConnectTimeout=30"}
	if u.User != nil {
		args = append(args, "-l", u.User.Username())
	}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	args = append(args, "--", u.Hostname(), "docker", "system", "dial-stdio")
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		// Not CommandContext: the connection outlives the dial.
		cmd := exec.Command("ssh", args...)
		c := &commandConn{cmd: cmd, host: host}
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		if c.stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
		cmd.Stderr = &c.stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("ssh to the engine at %s: %w", host, err)
		}
		return c, nil
	}, nil
}

// commandConn is a connection over a command's standard input and output.
type commandConn struct {
	cmd           *exec.Cmd
	host          string
	stdin         io.WriteCloser
	stdout        io.ReadCloser
	stderr        tail.Buffer
	closeOnce     sync.Once
	closeWriteErr error
	waitOnce      sync.Once
	waited        chan struct{}
}

// wait waits for the command to end and for its stderr to be
// copied (exec copies it in a goroutine that Wait joins).
func (c *commandConn) wait() { <-c.waitDone() }

func (c *commandConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err == io.EOF {
		// The command closed its output: let it end, so that all it said
		// on stderr is there to read (a bound, in case it does not).
		c.stdin.Close()
		return n, c.complaint(err)
	}
	return n, err
}

// complaint is err, or ssh's own complaint (no route, refused key, no
// docker there) when the command said one on its way out. The HTTP
// client reads and writes from two goroutines: whichever of them sees
// the command gone first reports the error, so both ask for it here.
func (c *commandConn) complaint(err error) error {
	// Let the command end, so that all it said on stderr is there to
	// read (a bound, in case it does not).
	select {
	case <-c.waitDone():
	case <-time.After(2 * time.Second):
	}
	if why := strings.Join(strings.Fields(c.stderr.String()), " "); why != "" {
		return fmt.Errorf("ssh to the engine at %s: %s", c.host, why)
	}
	return err
}

// waitDone starts waiting for the command, once, and returns the channel
// closed when it has ended.
func (c *commandConn) waitDone() <-chan struct{} {
	c.waitOnce.Do(func() {
		c.waited = make(chan struct{})
		go func() { c.cmd.Wait(); close(c.waited) }()
	})
	return c.waited
}

func (c *commandConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	if err != nil {
		return n, c.complaint(err)
	}
	return n, nil
}

// CloseWrite ends the request stream, as a TCP half-close would: the
// Engine API's attach and copy requests use it.
func (c *commandConn) CloseWrite() error {
	c.closeWriteErr = c.stdin.Close()
	return c.closeWriteErr
}

func (c *commandConn) Close() error {
	c.closeOnce.Do(func() {
		c.stdin.Close()
		c.cmd.Process.Kill()
		c.wait()
	})
	return nil
}

func (c *commandConn) LocalAddr() net.Addr              { return commandAddr{} }
func (c *commandConn) RemoteAddr() net.Addr             { return commandAddr{} }
func (c *commandConn) SetDeadline(time.Time) error      { return nil }
func (c *commandConn) SetReadDeadline(time.Time) error  { return nil }
func (c *commandConn) SetWriteDeadline(time.Time) error { return nil }

type commandAddr struct{}

func (commandAddr) Network() string { return "ssh" }
func (commandAddr) String() string  { return "ssh" }
