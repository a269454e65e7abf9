// Package vagrant is the Vagrant provider of the VM test stage
// (VM_PROVIDER=virtualbox or libvirt), the original suite's flow: long-lived
// VMs defined in the Vagrantfile (centos7, ubuntu, ...) get every kernel of
// their group installed once (Init); the loops (Loop) then make each kernel
// the grub default, reboot, verify `uname -r` strictly and run the driver
// cells over ssh, recording them in results.json exactly as the qemu
// provider does. Vagrant's CLI is used only for the VM lifecycle (up, halt,
// destroy, ssh-config); everything inside the guest goes over package sshx.
package vagrant

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
)

// CLI runs the vagrant command on the project's Vagrantfile.
type CLI struct {
	Bin      string    // the vagrant executable
	Dir      string    // directory of the Vagrantfile
	Provider string    // virtualbox or libvirt
	Env      []string  // extra environment, e.g. VAGRANT_DOTFILE_PATH
	Out      io.Writer // where vagrant's own output goes (nil: discarded)
}

// NewCLI returns a CLI for the Vagrantfile in dir, keeping Vagrant's
// machine state (.vagrant) in stateDir so that it lives with the build
// directory, not in the source tree.
func NewCLI(dir, stateDir, provider string, out io.Writer) (*CLI, error) {
	bin, err := exec.LookPath("vagrant")
	if err != nil {
		return nil, fmt.Errorf("provider %s needs vagrant on PATH (Debian: apt-get install vagrant): %w", provider, err)
	}
	if _, err := os.Stat(dir + "/Vagrantfile"); err != nil {
		return nil, fmt.Errorf("provider %s: %w", provider, err)
	}
	return &CLI{
		Bin: bin, Dir: dir, Provider: provider, Out: out,
		Env: []string{"VAGRANT_DOTFILE_PATH=" + stateDir, "VAGRANT_DEFAULT_PROVIDER=" + provider},
	}, nil
}

// run runs vagrant with args. Its output goes to c.Out and is also
// returned, so an error can quote the end of it. On cancellation vagrant
// gets SIGINT first (it then stops what it started) and SIGKILL only if it
// does not exit within a minute.
func (c *CLI) run(ctx context.Context, args ...string) (string, error) {
	return c.runTo(ctx, c.Out, args...)
}

// runTo is run with the output shown on out (nil: not shown).
func (c *CLI) runTo(ctx context.Context, out io.Writer, args ...string) (string, error) {
	return c.runEnv(ctx, out, nil, args...)
}

// runEnv is runTo with env added to the environment of this run only.
func (c *CLI) runEnv(ctx context.Context, out io.Writer, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir = c.Dir
	cmd.Env = append(append(os.Environ(), c.Env...), env...)
	var buf bytes.Buffer
	w := io.Writer(&buf)
	if out != nil {
		w = io.MultiWriter(&buf, out)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = time.Minute
	err := cmd.Run()
	if err != nil {
		tail := strings.Join(lastLines(buf.String(), 15), "\n")
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return buf.String(), fmt.Errorf("vagrant %s: %w\n%s", strings.Join(args, " "), err, tail)
	}
	return buf.String(), nil
}

// Up creates (or starts) machine with the CLI's provider.
func (c *CLI) Up(ctx context.Context, machine string) error {
	_, err := c.run(ctx, "up", "--provider="+c.Provider, machine)
	return err
}

// Halt shuts machine down; force pulls the plug. A forced halt also sets
// VM_HALT_NOW=1, with which the Vagrantfile leaves no time for a graceful
// halt: vagrant-libvirt 0.11 ignores --force, asks the guest (ACPI) to
// shut down, and, when a panicked or hung guest does not, fails with a
// timeout instead of powering it off; with no time left it powers off at
// once.
func (c *CLI) Halt(ctx context.Context, machine string, force bool) error {
	args := []string{"halt", machine}
	var env []string
	if force {
		args = append(args, "--force")
		env = []string{"VM_HALT_NOW=1"}
	}
	_, err := c.runEnv(ctx, c.Out, env, args...)
	return err
}

// Destroy removes machine and its disks.
func (c *CLI) Destroy(ctx context.Context, machine string) error {
	_, err := c.run(ctx, "destroy", "--force", machine)
	return err
}

// SSHConfig returns how to reach machine over ssh.
func (c *CLI) SSHConfig(ctx context.Context, machine string) (sshx.Config, error) {
	out, err := c.runTo(ctx, nil, "ssh-config", machine)
	if err != nil {
		return sshx.Config{}, err
	}
	hosts, err := sshx.ParseSSHConfig([]byte(out))
	if err != nil {
		return sshx.Config{}, fmt.Errorf("vagrant ssh-config %s: %w", machine, err)
	}
	return hosts[0], nil
}

// Validate checks the Vagrantfile.
func (c *CLI) Validate(ctx context.Context) error {
	_, err := c.run(ctx, "validate")
	return err
}

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
