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
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
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
	infra   error // the job could not run (not a compile answer)
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
	script := Recipe(j)
	fmt.Fprintf(logf, "# %s in %s (%s)\n", j.Name(), j.Image.Tag(), j.Image.ID)
	var mounts []container.Mount
	if j.Kernel != nil {
		for _, m := range j.Kernel.Mounts {
			mounts = append(mounts, container.Mount{Host: filepath.Join(j.Kernel.Sysroot, m), Container: m, ReadOnly: true})
			fmt.Fprintf(logf, "# mount %s at %s (read-only)\n", filepath.Join(j.Kernel.Sysroot, m), m)
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
	switch {
	case ctx.Err() != nil:
		return outcome{infra: ctx.Err()}
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
		fmt.Fprintf(logf, "# exit status %d\n", exit)
		logf.Sync()
		rec.Status, rec.Reason = results.CompileFail, failureReason(logPath, exit)
		return outcome{compile: rec}
	}
	rec.Status, rec.Artifact = results.CompileOK, j.Artifact
	return outcome{compile: rec}
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

// failureReason is the first compiler or make error of a log, the line a
// kernel developer looks for, or the exit status when there is none.
func failureReason(logPath string, exit int) string {
	f, err := os.Open(logPath)
	if err != nil {
		return fmt.Sprintf("exit status %d", exit)
	}
	defer f.Close()
	var first, cmakeErr, makeErr string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case first == "" && (strings.Contains(l, "error:") || strings.Contains(l, "Error:")) && !strings.HasPrefix(l, "#"):
			first = l
		case cmakeErr == "" && strings.HasPrefix(l, "CMake Error"):
			cmakeErr = l
		case makeErr == "" && strings.HasPrefix(l, "make") && strings.Contains(l, "***"):
			makeErr = l
		}
	}
	reason := first
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
	case DriverBPF:
		src = outProbe
	case DriverModernBPF, DriverScapOpen:
		src = outScapOpen
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
	if j.Driver == DriverModernBPF || j.Driver == DriverScapOpen {
		if err := r.copyClosure(ctx, c, path.Join(buildDir, scapOpen), dst+".root"); err != nil {
			return fmt.Errorf("shared libraries of scap-open: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// copyClosure writes the loader and shared libraries binary needs, read
// from the container, at their absolute paths under root (replaced whole).
func (r *runner) copyClosure(ctx context.Context, c *container.Container, binary, root string) error {
	files, err := elfdeps.Closure(c.FS(ctx), binary)
	if err != nil {
		return err
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
		dst := filepath.Join(tmp, f.Path)
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
	// Swap directories: the old tree moves aside before the new one takes
	// its place, so root is never a mix of both.
	old := tmp + ".old"
	if err := os.Rename(root, old); err != nil && !os.IsNotExist(err) {
		return err
	}
	defer os.RemoveAll(old)
	return os.Rename(tmp, root)
}

// sourceArchive packs the libs tree into build/libs-src.tar.gz.
func sourceArchive(libsDir, buildDir string) (srctar.Archive, error) {
	excludes := append([]string{}, srctar.DefaultExcludes...)
	if rel, err := filepath.Rel(libsDir, buildDir); err == nil && !strings.HasPrefix(rel, "..") {
		excludes = append(excludes, filepath.ToSlash(rel))
	}
	return srctar.Make(libsDir, filepath.Join(buildDir, "libs-src.tar.gz"), excludes)
}
