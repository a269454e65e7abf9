//go:build mage

// test/vm checks, for a grid of kernels x compilers, that each Falco driver compiles, loads and delivers events.
//
// `go run mage.go all` runs the whole pipeline; settings are VM_* environment
// variables (README). Each target is a few lines that call a package under
// scripts/; the dependencies between targets are those of the original CMake
// targets.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	"github.com/magefile/mage/mg"

	"github.com/falcosecurity/libs/test/vm/scripts/bench"
	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/result"
	"github.com/falcosecurity/libs/test/vm/scripts/setup"
	"github.com/falcosecurity/libs/test/vm/scripts/tree"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm"
)

var out = ui.Stdout()

// conf parses and validates the VM_* settings once per run, before any
// target does work.
var conf = sync.OnceValues(func() (*config.Config, error) {
	c, err := config.Load(".")
	if err != nil {
		return nil, err
	}
	return c, setup.PrepareBuildDir(c.BuildDir)
})

// Setup installs what the host lacks (apt-get, as root on Debian) and starts the Docker engine.
func Setup(ctx context.Context) error {
	if _, err := conf(); err != nil {
		return err
	}
	return setup.Install(ctx, setup.Run, out)
}

// Doctor checks the host: Go, Docker engine, qemu, cmake, debootstrap (Vagrant/VirtualBox optional).
func Doctor(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	out.Linef("%s", c.SourceNote())
	_, err = setup.Doctor(ctx, setup.Run, out)
	return err
}

// Container builds the builder images (one per Debian suite) for the compilers in VM_COMPILERS.
func Container(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	return container.Build(ctx, c, out)
}

// Kernel downloads, verifies and extracts the kernels of the grid (VM_KERNELS) into build/.
func Kernel(ctx context.Context) error {
	mg.CtxDeps(ctx, kernels)
	return kernelsFailed
}

// kernelsFailed names the kernels the kernel stage could not fetch. They do
// not stop the stages after it (their cells are skipped with the reason),
// but the run still ends with this error.
var kernelsFailed error

// kernels runs the kernel stage; it is what the later stages depend on.
func kernels(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	mg.CtxDeps(ctx, Container)
	err = kernel.Fetch(ctx, c, out)
	if errors.Is(err, kernel.ErrSomeKernelsFailed) {
		kernelsFailed = err
		return nil
	}
	return err
}

// Init prepares the VMs: qemu (guest agent, KVM/TCG probe) or Vagrant (VMs with the grid's kernels).
func Init(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	mg.CtxDeps(ctx, kernels)
	return errors.Join(vm.Init(ctx, c, out), kernelsFailed)
}

// Compile builds scap-open and every driver of the kernel x compiler grid in containers.
func Compile(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	mg.SerialCtxDeps(ctx, Container, kernels)
	return errors.Join(compile.Run(ctx, c, out), kernelsFailed)
}

// Loop tests every compiled driver on every kernel of the grid in VMs, then writes the result.
func Loop(ctx context.Context) error { return loop(ctx, "") }

// Centos7 tests the drivers on the grid's centos7 kernels (Vagrant group centos7), then writes the result.
func Centos7(ctx context.Context) error { return loop(ctx, "centos7") }

// Ubuntu tests the drivers on the grid's ubuntu kernels (Vagrant group ubuntu), then writes the result.
func Ubuntu(ctx context.Context) error { return loop(ctx, "ubuntu") }

func loop(ctx context.Context, group string) error {
	c, err := conf()
	if err != nil {
		return err
	}
	mg.SerialCtxDeps(ctx, Compile, Init)
	loopErr := vm.Loop(ctx, c, out, group)
	if err := result.Write(ctx, c, out); err != nil {
		return err
	}
	if loopErr != nil {
		return loopErr
	}
	return kernelsFailed
}

// Result writes the matrices (PNG, Markdown, JUnit) and the diff against the last run from build/results.json.
func Result(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	return result.Write(ctx, c, out)
}

// All runs the whole pipeline: setup, container, kernel, init, compile, loop, result.
func All(ctx context.Context) error {
	if _, err := conf(); err != nil {
		return err
	}
	mg.SerialCtxDeps(ctx, Setup, Container, kernels, Init, Compile)
	return Loop(ctx)
}

// Cleanup destroys the VMs, removes the builder images and containers, and deletes build/.
func Cleanup(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	vmErr := vm.Cleanup(ctx, c, out)
	ctErr := container.Cleanup(ctx, c, out)
	out.Linef("cleanup: removing %s", c.BuildDir)
	if err := tree.Remove(c.BuildDir); err != nil {
		return err
	}
	if vmErr != nil {
		return vmErr
	}
	return ctErr
}

// Bench measures compile and VM loop times against their limits (grid: VM_KERNELS or two Debian kernels) and writes build/bench.json.
func Bench(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	// The bench runs the stages itself, on its own grid and build dirs.
	mg.CtxDeps(ctx, Setup)
	return bench.Run(ctx, c, out)
}

// Check runs the setup for tests, then go test ./... (VM_E2E=1 adds the slow end-to-end tests).
func Check(ctx context.Context) error {
	if _, err := conf(); err != nil {
		return err
	}
	if err := setup.Install(ctx, setup.Test, out); err != nil {
		return err
	}
	args := []string{"test", "-count=1", "./..."}
	if os.Getenv("VM_E2E") == "1" {
		// End-to-end tests share Docker, qemu and two cores: one package at a time.
		args = []string{"test", "-count=1", "-p=1", "-timeout=80m", "./..."}
	}
	out.Linef("check: go %v", args)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test: %w", err)
	}
	return nil
}
