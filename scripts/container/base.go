package container

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/tree"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// BaseRepository holds base images bootstrapped with debootstrap.
const BaseRepository = "testvm-base"

// baseImage returns a reference to a Debian image of suite: debian:<suite>
// or testvm-base:<suite> when present, else debian:<suite> pulled from a
// registry, else one bootstrapped with debootstrap from mirror and
// imported as testvm-base:<suite>.
func (e *Engine) baseImage(ctx context.Context, suite, mirror string, log io.Writer, out *ui.Printer) (string, error) {
	official, local := "debian:"+suite, BaseRepository+":"+suite
	for _, ref := range []string{official, local} {
		if _, err := e.api.ImageInspect(ctx, ref); err == nil {
			return ref, nil
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	rc, err := e.api.ImagePull(pctx, "docker.io/library/"+official, image.PullOptions{})
	if err == nil {
		_, err = readStream(rc, log)
		rc.Close()
	}
	cancel()
	if err == nil {
		return official, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	fmt.Fprintf(log, "pull %s: %v\n", official, err)
	out.Linef("container: cannot pull %s; bootstrapping it with debootstrap from %s", official, mirror)
	if err := e.bootstrap(ctx, suite, mirror, local, log); err != nil {
		return "", err
	}
	return local, nil
}

// bootstrap runs debootstrap --variant=minbase into a temporary directory
// and imports the tree as image ref.
func (e *Engine) bootstrap(ctx context.Context, suite, mirror, ref string, log io.Writer) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("no registry answers and debootstrap is not installed (apt-get install debootstrap): %w", err)
	}
	dir, err := os.MkdirTemp("", "testvm-rootfs-"+suite+"-")
	if err != nil {
		return err
	}
	// debootstrap mounts /proc and /sys in the tree while it runs.
	defer tree.Remove(dir)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", suite, dir, mirror)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("debootstrap %s from %s: %w", suite, mirror, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarTree(dir, pw)) }()
	rc, err := e.api.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("import %s: %w", ref, err)
	}
	defer rc.Close()
	if _, err := readStream(rc, log); err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	return nil
}

// tarTree writes dir as a tar archive of a root filesystem, keeping
// owners, modes and symlinks; the contents of /dev, /proc and /sys are left
// out (the container runtime provides them).
func tarTree(dir string, w io.Writer) error {
	return fsx.WriteTar(w, dir, fsx.TarOptions{Skip: func(name string) bool {
		for _, skip := range []string{"dev/", "proc/", "sys/"} {
			if strings.HasPrefix(name, skip) {
				return true
			}
		}
		return false
	}})
}
