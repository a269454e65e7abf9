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
	"strings"
	"sync"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/falcosecurity/libs/test/vm/scripts/bench"
	"github.com/falcosecurity/libs/test/vm/scripts/check"
	"github.com/falcosecurity/libs/test/vm/scripts/compile"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/grid"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/report"
	"github.com/falcosecurity/libs/test/vm/scripts/setup"
	"github.com/falcosecurity/libs/test/vm/scripts/tree"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm"
)

var out = ui.Stdout()

// stageTimes are the stages this run has done and how long each took, in
// order, for the summary line of loop and all.
var (
	stageMu    sync.Mutex
	stageTimes []string
)

// timed runs one stage, then says how long it took.
func timed(stage string, fn func() error) error {
	start := time.Now()
	err := fn()
	d := time.Since(start).Round(100 * time.Millisecond)
	out.Linef("%s: done in %s", stage, d)
	stageMu.Lock()
	stageTimes = append(stageTimes, fmt.Sprintf("%s %s", stage, d))
	stageMu.Unlock()
	return err
}

// printStageTimes prints one line with every stage's time.
func printStageTimes() {
	stageMu.Lock()
	defer stageMu.Unlock()
	if len(stageTimes) > 0 {
		out.Linef("stage times: %s", strings.Join(stageTimes, ", "))
	}
}

// settings parses and validates the VM_* settings once per run, before
// any target does work.
var settings = sync.OnceValues(func() (*config.Config, error) {
	c, err := config.Load(".")
	if err != nil {
		return nil, err
	}
	return c, setup.PrepareBuildDir(c.BuildDir)
})

// conf is settings plus the kernel grid, checked before the first builder
// image or download: a malformed kernels.txt line, or a VM_SHARD the grid
// cannot fill, is reported in a second, not after minutes of image builds.
var conf = sync.OnceValues(func() (*config.Config, error) {
	c, err := settings()
	if err != nil {
		return nil, err
	}
	g, err := grid.Load(c.KernelsFile)
	if err != nil {
		return nil, err
	}
	if _, err := kernel.ShardKernels(c, g); err != nil {
		return nil, err
	}
	return c, nil
})

// Setup installs what the host lacks (apt-get, as root on Debian) and starts the Docker engine.
func Setup(ctx context.Context) error {
	c, err := settings()
	if err != nil {
		return err
	}
	return setup.Install(ctx, setup.Run, grid.FileArches(c.KernelsFile), out)
}

// Doctor checks the host: Go, Docker engine, qemu, cmake, debootstrap (Vagrant/VirtualBox optional).
func Doctor(ctx context.Context) error {
	c, err := settings()
	if err != nil {
		return err
	}
	out.Linef("%s", c.SourceNote())
	_, err = setup.Doctor(ctx, setup.Run, grid.FileArches(c.KernelsFile), out)
	return err
}

// Container builds the builder images (one per Debian suite) for the compilers in VM_COMPILERS.
func Container(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	return timed("container", func() error { return container.Build(ctx, c, out) })
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
	err = timed("kernel", func() error { return kernel.Fetch(ctx, c, out) })
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
	return errors.Join(timed("init", func() error { return vm.Init(ctx, c, out) }), kernelsFailed)
}

// prepared is what the loops need of init: Vagrant VMs an earlier init
// prepared for the grid's kernels are kept (the init target re-creates
// them, as the original vm-init did).
func prepared(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	mg.CtxDeps(ctx, kernels)
	return errors.Join(timed("init", func() error { return vm.Prepare(ctx, c, out) }), kernelsFailed)
}

// Compile builds scap-open and every driver of the kernel x compiler grid in containers.
func Compile(ctx context.Context) error {
	mg.CtxDeps(ctx, compiled)
	return errors.Join(scapOpenFailed, kernelsFailed)
}

// scapOpenFailed says which scap-open did not build. Like a kernel that
// could not be fetched, it does not stop the stages after compile (they
// test what they can, and record the cells it was to run as errors), but
// every target that compiled ends with this error.
var scapOpenFailed error

// compiled runs the compile stage; it is what the later stages depend on.
func compiled(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	mg.SerialCtxDeps(ctx, Container, kernels)
	err = timed("compile", func() error { return compile.Run(ctx, c, out) })
	if errors.Is(err, compile.ErrScapOpen) || errors.Is(err, compile.ErrDriversTest) {
		scapOpenFailed = err
		return nil
	}
	return err
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
	mg.SerialCtxDeps(ctx, compiled, prepared)
	loopErr := timed("test", func() error { return vm.Loop(ctx, c, out, group) })
	err = timed("result", func() error { return report.Write(ctx, c, out) })
	printStageTimes()
	if err != nil {
		return errors.Join(err, loopErr, scapOpenFailed)
	}
	return errors.Join(loopErr, scapOpenFailed, kernelsFailed)
}

// Result writes the matrices (PNG, Markdown, JUnit) and the diff against the last run from build/results.json.
func Result(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	return report.Write(ctx, c, out)
}

// All runs the whole pipeline: setup, container, kernel, init, compile, loop, result.
func All(ctx context.Context) error {
	if _, err := conf(); err != nil {
		return err
	}
	mg.SerialCtxDeps(ctx, Setup, Container, kernels, Init, compiled)
	return Loop(ctx)
}

// Cleanup destroys the VMs, removes the builder images and containers, and deletes build/.
func Cleanup(ctx context.Context) error {
	c, err := settings()
	if err != nil {
		return err
	}
	vmErr := vm.Cleanup(ctx, c, out)
	ctErr := container.Cleanup(ctx, c, out)
	// The bridges of the engines this build dir held (a suite-owned
	// engine, the tests' engines) that no longer run.
	names, brErr := setup.RemoveEngineBridges(c.BuildDir)
	if len(names) > 0 {
		out.Linef("cleanup: removed the bridges of stopped engines in %s: %s", c.BuildDir, strings.Join(names, ", "))
	}
	if brErr != nil {
		out.Linef("cleanup: %v", brErr)
	}
	out.Linef("cleanup: removing %s", c.BuildDir)
	if err := tree.Remove(c.BuildDir); err != nil {
		return err
	}
	if vmErr != nil {
		return vmErr
	}
	return ctErr
}

// Bench measures compile and VM loop times against their limits (grid: VM_KERNELS, or two amd64 Debian kernels and an arm64 one) and writes build/bench.json.
func Bench(ctx context.Context) error {
	c, err := conf()
	if err != nil {
		return err
	}
	// The bench runs the stages itself, on its own grid and build dirs.
	mg.CtxDeps(ctx, Setup)
	return bench.Run(ctx, c, out)
}

// Check runs the setup for tests, then the tests: unit tests with -race, each fuzz target briefly, and with VM_E2E=1 the end-to-end tests.
func Check(ctx context.Context) error {
	c, err := settings()
	if err != nil {
		return err
	}
	if err := setup.Install(ctx, setup.Test, nil, out); err != nil {
		return err
	}
	return check.Run(ctx, out, check.Options{Dir: c.Root, E2E: c.E2E, Fuzz: c.FuzzTime})
}
