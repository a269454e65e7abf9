package container

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/falcosecurity/libs/test/vm/scripts/apt"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/grid"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Build builds the builder images that cfg.Compilers need and that do not
// exist yet; an image whose Dockerfile is unchanged is not rebuilt. Build
// logs go to build/logs/container/<suite>.log.
func Build(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	e, err := Connect(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	if cfg.KernelCompiler {
		// The kernels' own compilers are known once the kernel stage has
		// read their headers: the compile stage builds what they need.
		out.Linef("container: VM_COMPILERS=kernel: the images of the kernels' own compilers are built by the compile stage")
	}
	images, err := e.Ensure(ctx, cfg, out)
	for _, im := range images {
		out.Linef("container: %s ready: %s, glibc %s", im.Tag(), strings.Join(im.Compilers, ", "), im.Glibc)
	}
	return err
}

// Ensure builds the images that cfg.Compilers need for the architectures
// of the grid's kernels when missing and returns them all, oldest suite
// first.
func (e *Engine) Ensure(ctx context.Context, cfg *config.Config, out *ui.Printer) ([]Image, error) {
	return e.EnsureFor(ctx, cfg, cfg.Compilers, grid.FileArches(cfg.KernelsFile), out)
}

// EnsureFor builds the images that compilers need for arches when missing
// and returns them all, oldest suite first. The compile stage names the
// compilers (cfg's, and with VM_COMPILERS=kernel those of the kernels'
// own) and the architectures of its kernels.
func (e *Engine) EnsureFor(ctx context.Context, cfg *config.Config, compilers, arches []string, out *ui.Printer) ([]Image, error) {
	if len(compilers) == 0 {
		return nil, nil // VM_COMPILERS=kernel alone, before the kernels are known
	}
	specs, err := Specs()
	if err != nil {
		return nil, err
	}
	need := Needed(specs, compilers, arches)
	if len(need) == 0 {
		out.Linef("container: no builder image provides any of %s", strings.Join(compilers, ", "))
		return nil, nil
	}
	var images []Image
	for _, s := range need {
		img, err := e.Inspect(ctx, s)
		if err != nil {
			break
		}
		images = append(images, img)
	}
	if len(images) == len(need) {
		return images, nil
	}
	// Processes sharing a build directory (parallel test packages, two
	// terminals) build an image once: the second waits, then finds it.
	unlock, err := lockFile(cfg.Path(".container.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	images = nil
	for _, s := range need {
		img, err := e.Inspect(ctx, s)
		if err == nil {
			images = append(images, img)
			continue
		}
		if !cerrdefs.IsNotFound(err) {
			return nil, err
		}
		img, err = e.build(ctx, cfg, s, images, out)
		if err != nil {
			return nil, err
		}
		images = append(images, img)
	}
	return images, nil
}

// Inspect returns the built image of s; the error satisfies
// errdefs.IsNotFound when it was not built.
func (e *Engine) Inspect(ctx context.Context, s Spec) (Image, error) {
	info, err := e.api.ImageInspect(ctx, s.Tag())
	if err != nil {
		return Image{}, err
	}
	img := Image{Spec: s, ID: info.ID}
	if info.Config != nil {
		img.Glibc = info.Config.Labels[LabelGlibc]
	}
	if img.Glibc == "" {
		return Image{}, fmt.Errorf("image %s has no %s label: remove it and build again", s.Tag(), LabelGlibc)
	}
	return img, nil
}

// build builds the image of s; a cross image is built on its parent's,
// which is among built.
func (e *Engine) build(ctx context.Context, cfg *config.Config, s Spec, built []Image, out *ui.Printer) (Image, error) {
	start := time.Now()
	logPath := cfg.Path(layout.ContainerLog(s.Name()))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return Image{}, err
	}
	log, err := os.Create(logPath)
	if err != nil {
		return Image{}, err
	}
	defer log.Close()
	mirror := cfg.Mirror
	fail := func(err error) (Image, error) {
		if e.remote && ctx.Err() == nil && mirror != "" {
			// Everything goes through the Engine API (the base is pulled by
			// the engine or imported as a tar stream, the build context is
			// a tar), but the build's steps run there and fetch from the
			// mirror over that host's network.
			return Image{}, fmt.Errorf("builder image %s (log: %s): %w; the engine at %s is not on this host, and its build fetches from %s over its own network: "+
				"make that mirror reachable from it (VM_DEBIAN_MIRROR), or build the image on a host that reaches it and load it there (docker save %s | docker -H %s load)",
				s.Name(), logPath, err, e.host, mirror, s.Tag(), e.host)
		}
		return Image{}, fmt.Errorf("builder image %s (log: %s): %w", s.Name(), logPath, err)
	}
	if mirror == "" {
		sources, err := apt.HostSources("/etc/apt")
		if err != nil {
			return fail(err)
		}
		if mirror, _, err = apt.Mirror(sources); err != nil {
			return fail(err)
		}
	}
	out.Linef("container: building %s (%s), log %s", s.Tag(), strings.Join(s.Compilers, ", "), logPath)
	var base string
	if s.Parent != nil {
		i := slices.IndexFunc(built, func(im Image) bool { return im.Name() == s.Parent.Name() })
		if i < 0 {
			return fail(fmt.Errorf("its parent image %s is not built", s.Parent.Tag()))
		}
		base = built[i].ID
	} else if base, err = e.baseImage(ctx, s.Suite, mirror, log, out); err != nil {
		return fail(err)
	}
	labels := map[string]string{
		LabelOwner:     "1",
		LabelSuite:     s.Name(),
		LabelHash:      s.Hash(),
		LabelCompilers: strings.Join(s.Compilers, ","),
	}
	id, err := e.buildDockerfile(ctx, s.Dockerfile, map[string]*string{"BASE": &base, "MIRROR": &mirror}, labels, nil, log)
	if err != nil {
		return fail(err)
	}
	// The glibc label needs the built image: read libc6's version in it and
	// add the label in a one-line build on top, which also tags it.
	var ver bytes.Buffer
	code, err := e.Run(ctx, RunSpec{Image: id, Cmd: []string{"dpkg-query", "-W", "-f=${Version}", "libc6:amd64"}, Log: &ver, Timeout: 2 * time.Minute})
	if err != nil || code != 0 {
		return fail(fmt.Errorf("read glibc version (exit %d): %v %s", code, err, ver.String()))
	}
	glibc := glibcVersion(ver.String())
	if glibc == "" {
		return fail(fmt.Errorf("cannot read a glibc version from %q", ver.String()))
	}
	labels[LabelGlibc] = glibc
	if _, err := e.buildDockerfile(ctx, []byte("FROM "+id+"\n"), nil, labels, []string{s.Tag()}, log); err != nil {
		return fail(err)
	}
	out.Linef("container: built %s (glibc %s) in %s", s.Tag(), glibc, time.Since(start).Round(time.Second))
	e.removeStale(ctx, s, out)
	return e.Inspect(ctx, s)
}

// removeStale removes the images an older Dockerfile of s built (a few GB
// each). An image still in use stays; that is not an error.
func (e *Engine) removeStale(ctx context.Context, s Spec, out *ui.Printer) {
	list, err := e.api.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelSuite+"="+s.Name()))})
	if err != nil {
		return
	}
	for _, im := range list {
		for _, tag := range im.RepoTags {
			if !strings.HasPrefix(tag, Repository+":"+s.Name()+"-") || tag == s.Tag() {
				continue
			}
			if _, err := e.api.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err == nil {
				out.Linef("container: removed the outdated image %s", tag)
			}
		}
	}
}

// lockFile takes an exclusive flock on name, creating it if needed.
func lockFile(name string) (func(), error) { return fsx.Lock(name, nil) }

// glibcVersion turns a libc6 package version (2.36-9+deb12u10) into x.y.
func glibcVersion(pkgVersion string) string {
	v := strings.TrimSpace(pkgVersion)
	if i := strings.IndexAny(v, "-+~"); i >= 0 {
		v = v[:i]
	}
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return ""
	}
	return parts[0] + "." + parts[1]
}

// buildDockerfile builds an image from a context that holds only the
// Dockerfile and returns its ID. The build's steps use the engine host's
// network (as docker build --network host): they fetch from the Debian
// mirror, and need no bridge or firewall rules of the engine's own, which
// an engine may not have.
func (e *Engine) buildDockerfile(ctx context.Context, dockerfile []byte, args map[string]*string, labels map[string]string, tags []string, log io.Writer) (string, error) {
	var buf bytes.Buffer
	if err := fsx.WriteTarFiles(&buf, []fsx.TarEntry{{Name: "Dockerfile", Data: dockerfile}}); err != nil {
		return "", err
	}
	resp, err := e.api.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Dockerfile:  "Dockerfile",
		BuildArgs:   args,
		Labels:      labels,
		Tags:        tags,
		Remove:      true,
		ForceRemove: true, // intermediate containers go, also when a step fails
		NetworkMode: "host",
	})
	if err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	defer resp.Body.Close()
	id, err := readStream(resp.Body, log)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("image build: %w", err)
	}
	if id == "" {
		return "", fmt.Errorf("image build: the daemon announced no image ID")
	}
	return id, nil
}
