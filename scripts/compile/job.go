package compile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/srctar"
)

// runner runs jobs in containers.
type runner struct {
	engine   *container.Engine
	buildDir string
	tmpDir   string // under buildDir, for atomic renames into place
	source   string // libs-src.tar.gz
	timeout  time.Duration
}

// outcome is what one job found.
type outcome struct {
	compile results.Compile
	// scapOpen is set when scap-open did not build: why (the first error of
	// its log). For a modern_bpf job whose probe built first, compile is ok:
	// the driver compiled, its cells cannot be tested.
	scapOpen string
	infra    error // the job could not run (not a compile answer)
}

// run builds j in a fresh container and returns its compile record. The
// artifact appears under the build directory only when complete.
func (r *runner) run(ctx context.Context, j Job) outcome {
	start := time.Now()
	rec := results.Compile{Log: j.Log, Key: j.Key}
	logPath := filepath.Join(r.buildDir, j.Log)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return outcome{infra: err}
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return outcome{infra: err}
	}
	defer logf.Close()
	script := j.Recipe.Script
	fmt.Fprintf(logf, "# %s in %s (%s)\n", j.Name(), j.Image.Tag(), j.Image.ID)
	if j.Kernel != nil && j.Kernel.Facts != nil {
		fmt.Fprintf(logf, "# kernel %s\n", j.Kernel.Facts.Summary())
	}
	switch {
	case j.ForKernel == j.Compiler:
		fmt.Fprintf(logf, "# VM_COMPILERS=kernel: %s is the kernel's own compiler\n", j.Compiler)
	case j.ForKernel != "":
		fmt.Fprintf(logf, "# VM_COMPILERS=kernel: %s\n", StandInNote(j.Compiler, j.ForKernel))
	}
	var mounts []container.Mount
	if j.Kernel != nil {
		for _, m := range j.Kernel.Mounts {
			mounts = append(mounts, container.Mount{Host: filepath.Join(j.Kernel.Sysroot, m), Container: m, ReadOnly: true})
			if r.engine.Remote() {
				// Run copies it in, and notes the copy under the script.
				fmt.Fprintf(logf, "# copy %s to %s (a remote engine cannot bind-mount it)\n", filepath.Join(j.Kernel.Sysroot, m), m)
			} else {
				fmt.Fprintf(logf, "# mount %s at %s (read-only)\n", filepath.Join(j.Kernel.Sysroot, m), m)
			}
		}
	}
	fmt.Fprintf(logf, "# script:\n%s# output:\n", indent(script))
	exit, err := r.engine.Run(ctx, container.RunSpec{
		Image:   j.Image.ID,
		Cmd:     []string{"/bin/sh", "-c", script},
		Mounts:  mounts,
		Labels:  map[string]string{"testvm.cell": j.Name(), container.LabelBuild: r.buildDir},
		Timeout: r.timeout,
		CopyIn:  func() (io.ReadCloser, error) { return os.Open(r.source) },
		Log:     logf,
		After: func(ctx context.Context, c *container.Container, exit int) error {
			if exit != 0 {
				return nil
			}
			if err := r.copyOut(ctx, c, j); err != nil {
				return &copyError{err}
			}
			return nil
		},
	})
	rec.Seconds = time.Since(start).Seconds()
	logf.Sync()
	steps, last := readSteps(logPath)
	rec.Steps = steps
	if len(steps) > 0 {
		var parts []string
		for _, s := range steps {
			parts = append(parts, fmt.Sprintf("%s %.1fs", s.Name, s.Seconds))
		}
		fmt.Fprintf(logf, "# steps: %s\n", strings.Join(parts, ", "))
	}
	if ctx.Err() == nil && (err != nil || exit != 0) {
		// A container the engine killed on its way down, or a copy it cut
		// short, says nothing about the cell.
		if derr := r.engineGone(ctx, err, exit); derr != nil {
			fmt.Fprintf(logf, "# infrastructure error: %v\n", derr)
			return outcome{infra: derr}
		}
	}
	switch {
	case ctx.Err() != nil:
		return outcome{infra: ctx.Err()}
	case errors.As(err, new(*copyError)) && (cerrdefs.IsInternal(err) || cerrdefs.IsUnavailable(err)):
		// The daemon failed, not the build.
		fmt.Fprintf(logf, "# infrastructure error: %v\n", err)
		return outcome{infra: err}
	case errors.As(err, new(*copyError)):
		fmt.Fprintf(logf, "# %v\n", err)
		rec.Status, rec.Reason = results.CompileFail, err.Error()
		return outcome{compile: rec}
	case errors.Is(err, container.ErrTimeout):
		fmt.Fprintf(logf, "# %v\n", err)
		// Not cached: a slow machine is not an answer about the cell.
		rec.Status, rec.Reason, rec.Key = results.CompileFail, "build "+err.Error(), ""
		return outcome{compile: rec}
	case err != nil:
		fmt.Fprintf(logf, "# infrastructure error: %v\n", err)
		return outcome{infra: err}
	case exit != 0:
		fmt.Fprintf(logf, "# exit status %d in step %s\n", exit, orNone(last))
		logf.Sync()
		reason := failureReason(logPath, exit)
		skip := readSkip(logPath)
		if skip != "" {
			reason = skip
		}
		rec.Status, rec.Reason = results.CompileFail, reason
		switch {
		case layout.ArchOf(j.Arch) != layout.Amd64 && lostCross(logPath):
			// Not an answer about the driver: the tree's probes could
			// not cross-build, so the build that followed them was
			// misconfigured.
			fmt.Fprintf(logf, "# %s\n", lostCrossReason)
			rec.Status, rec.Reason = results.CompileError, lostCrossReason+": "+reason
			return outcome{compile: rec}
		case j.Driver == layout.ScapOpen:
			return outcome{compile: rec, scapOpen: reason}
		case skip != "":
			rec.Status = results.CompileSkip
			return outcome{compile: rec}
		case j.Recipe.userspace(last) && driverBuilt(j.Recipe, steps):
			fmt.Fprintf(logf, "# the driver built; scap-open did not\n")
			rec.Status, rec.Reason = results.CompileOK, ""
			return outcome{compile: rec, scapOpen: reason}
		}
		return outcome{compile: rec}
	}
	rec.Status, rec.Artifact = results.CompileOK, j.Artifact
	return outcome{compile: rec}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// readSteps reads the step markers a recipe printed into its log and
// returns the steps that ran, each with its wall time (up to the next
// marker; the script's exit marks the end of the last), and the name of the
// last step started ("done" when the script finished).
func readSteps(logPath string) ([]results.Step, string) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, ""
	}
	defer f.Close()
	type mark struct {
		name string
		at   float64
	}
	var marks []mark
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), stepMarker)
		if !ok {
			continue
		}
		var m mark
		if _, err := fmt.Sscanf(rest, "%s %f", &m.name, &m.at); err == nil {
			marks = append(marks, m)
		}
	}
	var steps []results.Step
	last := ""
	for i, m := range marks {
		if m.name == stepExit || m.name == stepDone {
			if m.name == stepDone {
				last = stepDone
			}
			continue
		}
		last = m.name
		st := results.Step{Name: m.name}
		if i+1 < len(marks) {
			st.Seconds = roundTenth(marks[i+1].at - m.at)
		}
		steps = append(steps, st)
	}
	return steps, last
}

// lostCrossReason says why a cross build whose kmod feature probes lost
// the target (lostCross) has no answer.
const lostCrossReason = "the tree's kmod configure probes lost the cross-build settings " +
	"(libs before 0.24 runs them with an empty environment but for CC, so the host's ld links them), so they all failed " +
	"and this build says nothing about the driver on the target"

// lostCross reports whether a log shows libs' kmod feature probes
// ([configure-kmod], each run with env -i keeping CC, PATH and KERNELDIR;
// from libs 0.24 also LD) linking the target's objects with the build
// host's ld.
func lostCross(logPath string) bool {
	f, err := os.Open(logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "[configure-kmod]") && strings.Contains(l, "unrecognised emulation mode") {
			return true
		}
	}
	return false
}

// readSkip returns the reason a script gave for not building in this image
// (see skipMarker), or "".
func readSkip(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if why, ok := strings.CutPrefix(sc.Text(), skipMarker); ok {
			return strings.TrimSpace(why)
		}
	}
	return ""
}

func roundTenth(s float64) float64 { return float64(int64(s*10+0.5)) / 10 }

// driverBuilt reports whether steps include a finished make goal of the
// driver itself (not configure, not scap-open): then a failure later, in
// scap-open, is not the driver's.
func driverBuilt(r Recipe, steps []results.Step) bool {
	for i, s := range steps {
		if i == len(steps)-1 {
			break // the step that failed
		}
		if s.Name != "configure" && !r.userspace(s.Name) {
			return true
		}
	}
	return false
}

// stopGrace is how long a build that ended oddly (an engine error, a
// container killed by a signal) waits to see whether its engine is going
// down: a stopping dockerd answers requests for a while, failing them, as
// it takes its containers down.
const stopGrace = 20 * time.Second

// engineGone returns an error wrapping container.ErrEngineDown when the
// engine no longer answers after a build ended with err or exit. A build
// that ended oddly gets stopGrace for the engine to finish going down.
func (r *runner) engineGone(ctx context.Context, err error, exit int) error {
	derr := r.engine.Alive(ctx)
	odd := err != nil || exit == 128+9 || exit == 128+15
	for deadline := time.Now().Add(stopGrace); derr == nil && odd && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		derr = r.engine.Alive(ctx)
	}
	return derr
}

// copyError is an artifact that could not be copied out of a container
// whose recipe succeeded: a recipe problem, recorded as a failure.
type copyError struct{ err error }

func (e *copyError) Error() string { return "copy artifact: " + e.err.Error() }
func (e *copyError) Unwrap() error { return e.err }

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("#   " + l + "\n")
	}
	return b.String()
}

// downloadSigns are lines a build prints when it tries to fetch something.
// Offline, such an attempt fails, and the failure is the recipe's, not the
// tree's or the compiler's: the reason says so first.
var downloadSigns = []string{"Performing download step", "-- Downloading", "Cloning into", "Could not resolve host", "Temporary failure in name resolution"}

// diagnosticRe finds a compiler's error: with a source location
// (file.c:12:3: error: ...) or from the driver (gcc-12: error: ...).
var diagnosticRe = regexp.MustCompile(`(^|\s)(\S+:\d+(:\d+)?: (fatal )?error: |(gcc|g\+\+|cc|c\+\+|clang|clang\+\+|ld|ld\.bfd|collect2|llc)(-[0-9.]+)?: (fatal )?error: )`)

// diagnostic returns the compiler error in line, from where it starts to
// where make's next message begins (kbuild output that a build prints
// joined on one line), or "".
func diagnostic(line string) string {
	loc := diagnosticRe.FindStringSubmatchIndex(line)
	if loc == nil {
		return ""
	}
	d := line[loc[4]:]
	if i := strings.Index(d, " make["); i > 0 {
		d = d[:i]
	}
	if i := strings.Index(d, " make: "); i > 0 {
		d = d[:i]
	}
	return strings.TrimSpace(d)
}

// failureReason is the first compiler error of a log, the line a kernel
// developer looks for, else the first other error, CMake error or make
// error, or the exit status when there is none. A download attempt comes
// first: offline, it is the cause of what follows. libs' feature probes
// ([configure-kmod] ...) fail on purpose and are not reasons.
func failureReason(logPath string, exit int) string {
	f, err := os.Open(logPath)
	if err != nil {
		return fmt.Sprintf("exit status %d", exit)
	}
	defer f.Close()
	var diag, first, cmakeErr, makeErr, download string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[configure-") {
			// libs' feature probes: their errors are expected answers.
			continue
		}
		if download == "" && !strings.HasPrefix(l, "#") && slices.ContainsFunc(downloadSigns, func(s string) bool { return strings.Contains(l, s) }) {
			download = "tried to download (offline build): " + l
		}
		if diag == "" {
			diag = diagnostic(l)
		}
		switch {
		case first == "" && (strings.Contains(l, "error:") || strings.Contains(l, "Error:")) && !strings.HasPrefix(l, "#"):
			first = l
		case cmakeErr == "" && strings.HasPrefix(l, "CMake Error"):
			cmakeErr = l
		case makeErr == "" && strings.HasPrefix(l, "make") && strings.Contains(l, "***"):
			makeErr = l
		}
	}
	reason := download
	if reason == "" {
		reason = diag
	}
	if reason == "" {
		reason = first
	}
	if reason == "" {
		reason = cmakeErr
	}
	if reason == "" {
		reason = makeErr
	}
	if reason == "" {
		return fmt.Sprintf("exit status %d", exit)
	}
	if len(reason) > 200 {
		reason = reason[:197] + "..."
	}
	return reason
}

// copyOut copies the artifact of j out of the stopped container c into its
// place under the build directory, atomically; scap-open builds also get
// their shared libraries and loader in <artifact>.root/.
func (r *runner) copyOut(ctx context.Context, c *container.Container, j Job) error {
	src := outKmod
	switch j.Driver {
	case layout.BPF:
		src = outProbe
	case layout.ModernBPF, layout.ScapOpen:
		src = outScapOpen
	case layout.DriversTest:
		src = outDrivers
	}
	dst := filepath.Join(r.buildDir, j.Artifact)
	tmp, err := os.CreateTemp(r.tmpDir, filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	mode, err := c.ReadFile(ctx, src, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode.Perm()); err != nil {
		return err
	}
	switch j.Driver {
	case layout.ModernBPF, layout.ScapOpen:
		if err := r.copyClosure(ctx, c, path.Join(buildDir, scapOpen), nil, dst+".root"); err != nil {
			return fmt.Errorf("shared libraries of scap-open: %w", err)
		}
	case layout.DriversTest:
		execs := driversTestExecs
		if layout.ArchOf(j.Arch) != layout.Amd64 {
			// A cross image keeps the target's programs apart, at
			// targetRoot; the guest has them at their own paths.
			execs = nil
			for _, e := range driversTestExecs {
				execs = append(execs, targetRoot+e)
			}
		}
		if err := r.copyClosure(ctx, c, path.Join(buildDir, driversTest), execs, dst+".root"); err != nil {
			return fmt.Errorf("shared libraries of drivers_test: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return fsx.Rename(tmp.Name(), dst)
}

// driversTestExecs are the programs drivers_test's tests run (execve,
// clone and exit tests), which its root must hold as a normal system does,
// and the shell the guest agent starts it from.
var driversTestExecs = []string{"/usr/bin/true", "/bin/true", "/usr/bin/echo", "/bin/echo", "/usr/bin/test", "/usr/bin/sleep", "/bin/sh"}

// targetRoot is where a cross builder image holds the target's programs
// that drivers_test runs (dockerfiles/*-arm64.Dockerfile); their libraries
// are in the image's multiarch directories.
const targetRoot = "/opt/testvm-target"

// copyClosure writes the loader and shared libraries binary needs, and the
// programs execs with theirs, read from the container, at their absolute
// paths under root (replaced whole); a program under targetRoot goes to its
// path below it.
func (r *runner) copyClosure(ctx context.Context, c *container.Container, binary string, execs []string, root string) error {
	files, err := elfdeps.Closure(c.FS(ctx), binary)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.Path] = true
	}
	for _, e := range execs {
		more, err := elfdeps.Closure(c.FS(ctx), e)
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		for _, f := range more {
			if !seen[f.Path] {
				seen[f.Path] = true
				files = append(files, f)
			}
		}
	}
	tmp, err := os.MkdirTemp(r.tmpDir, filepath.Base(root)+".")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if f.Path == binary {
			continue
		}
		dst := filepath.Join(tmp, strings.TrimPrefix(f.Path, targetRoot))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		mode, err := c.ReadFile(ctx, f.Real, out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := os.Chmod(dst, mode.Perm()); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return err
	}
	// The old tree moves aside before the new one takes its place, so root
	// is never a mix of both.
	return fsx.ReplaceDir(tmp, root)
}

// sourceArchive packs the libs tree into build/libs-src.tar.gz, without
// this suite's own directory and the build directory.
func sourceArchive(cfg *config.Config) (srctar.Archive, error) {
	excludes := append(append([]string{}, srctar.DefaultExcludes...), cfg.NotLibs()...)
	return srctar.Make(cfg.LibsDir, cfg.Path("libs-src.tar.gz"), excludes)
}
