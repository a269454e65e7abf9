// Package check runs the project's own test suite the way CI does: the
// unit tests under the race detector, every fuzz target for a bounded
// time, then (end-to-end mode) the whole suite including the slow tests
// that use Docker, qemu and real Debian kernels.
package check

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/tail"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Options say which passes run.
type Options struct {
	Dir  string        // the module root
	E2E  bool          // also the slow end-to-end tests (VM_E2E=1)
	Fuzz time.Duration // time per fuzz target; 0 skips fuzzing
}

// Run runs the passes in order and stops at the first that fails.
func Run(ctx context.Context, out *ui.Printer, o Options) error {
	// Unit tests only: the end-to-end tests skip themselves without VM_E2E.
	unit := withoutEnv(os.Environ(), "VM_E2E")
	if err := goTest(ctx, out, o.Dir, unit, "race", "-race", "-count=1", "./..."); err != nil {
		return err
	}
	if o.Fuzz > 0 {
		targets, err := FuzzTargets(ctx, o.Dir)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if err := fuzz(ctx, out, o.Dir, unit, t, o.Fuzz); err != nil {
				return err
			}
		}
	}
	if o.E2E {
		// End-to-end tests share Docker, qemu and two cores: one package at a time.
		return goTest(ctx, out, o.Dir, os.Environ(), "end-to-end", "-count=1", "-p=1", "-timeout=80m", "./...")
	}
	return nil
}

// FuzzTarget is one fuzz function of one package.
type FuzzTarget struct{ Package, Name string }

// FuzzTargets lists the module's fuzz targets, as go test -list sees them.
func FuzzTargets(ctx context.Context, dir string) ([]FuzzTarget, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-list=^Fuzz", "./...")
	cmd.Dir = dir
	cmd.Env = withoutEnv(os.Environ(), "VM_E2E")
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list fuzz targets: %w", err)
	}
	return parseList(b), nil
}

// parseList reads go test -list output: target names, each package closed
// by an "ok  <package> <time>" line.
func parseList(b []byte) []FuzzTarget {
	var out []FuzzTarget
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && strings.HasPrefix(f[0], "Fuzz"):
			names = append(names, f[0])
		case len(f) >= 2 && (f[0] == "ok" || f[0] == "?"):
			for _, n := range names {
				out = append(out, FuzzTarget{Package: f[1], Name: n})
			}
			names = nil
		}
	}
	slices.SortFunc(out, func(a, b FuzzTarget) int { return strings.Compare(a.Package+"."+a.Name, b.Package+"."+b.Name) })
	return out
}

// fuzz runs one target for d.
//
// Two limits of Go's fuzzing engine are handled here. A worker minimizes
// each new interesting input before it reports it, for up to
// -fuzzminimizetime (60 s by default) during which no input is explored;
// the package readers run a few hundred inputs a second, so one
// minimization outlasts the whole budget and the run ends on the
// deadline. Minimizing is bounded to a fifth of the budget. And the
// coordinator can report the end of -fuzztime itself as a failure,
// "context deadline exceeded", when it races a worker's last input; such
// a failure writes no failing input. It is run once more, and only a
// second such failure fails the pass. A real finding always names the
// input it wrote, and fails at once.
func fuzz(ctx context.Context, out *ui.Printer, dir string, env []string, t FuzzTarget, d time.Duration) error {
	minimize := max(d/5, time.Second)
	args := []string{"-run=^$", "-fuzz=^" + t.Name + "$", "-fuzztime=" + d.String(), "-fuzzminimizetime=" + minimize.String(), t.Package}
	kept := tail.Buffer{Max: 64 << 10}
	err := goTestTee(ctx, out, dir, env, "fuzz "+t.Name, &kept, args...)
	if err == nil || !deadlineOnly(kept.Bytes()) || ctx.Err() != nil {
		return err
	}
	out.Linef("check: fuzz %s: the run ended on the engine's own deadline with no failing input; once more", t.Name)
	return goTest(ctx, out, dir, env, "fuzz "+t.Name, args...)
}

// deadlineOnly tells a fuzzing run that failed only on the end of
// -fuzztime from one that found something.
func deadlineOnly(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "\n    context deadline exceeded\n") &&
		!strings.Contains(s, "Failing input written to") && !strings.Contains(s, "panic:")
}

func goTest(ctx context.Context, out *ui.Printer, dir string, env []string, pass string, args ...string) error {
	return goTestTee(ctx, out, dir, env, pass, nil, args...)
}

// goTestTee runs go test with its output on ours; tee, when set, gets a
// copy as well.
func goTestTee(ctx context.Context, out *ui.Printer, dir string, env []string, pass string, tee io.Writer, args ...string) error {
	start := time.Now()
	args = append([]string{"test"}, args...)
	out.Linef("check: %s: go %s", pass, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if tee != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(os.Stdout, tee), io.MultiWriter(os.Stderr, tee)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("check: %s: go test: %w", pass, err)
	}
	out.Linef("check: %s: ok in %s", pass, time.Since(start).Round(time.Second))
	return nil
}

func withoutEnv(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}
