package container

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// remoteSpec is a builder image of the real recipe's shape (a Debian base,
// the mirror written into apt's sources, packages installed by apt-get)
// that installs one small package, so that a build on another engine
// costs seconds, not the gigabytes of a compiler image.
var remoteSpec = Spec{Suite: "bookworm", Compilers: []string{"file"}, Dockerfile: []byte(`ARG BASE
FROM ${BASE}
ARG MIRROR
ENV DEBIAN_FRONTEND=noninteractive
RUN rm -f /etc/apt/sources.list.d/debian.sources \
    && printf 'deb %s bookworm main\n' "${MIRROR}" > /etc/apt/sources.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends file \
    && rm -rf /var/lib/apt/lists/*
`)}

// TestE2ERemoteImageBuild builds a builder image on an engine that is not
// on this host by its address (a second dockerd on tcp://127.0.0.1,
// without a bridge network of its own), through the code path of every
// builder image: the base image found there (copied into it from the
// system engine, as a registry would serve it), the build context and
// arguments over the Engine API, apt-get fetching from the mirror over
// that host's network, the glibc label read in a container there. The
// image is on that engine, labelled, and runs what it installed.
func TestE2ERemoteImageBuild(t *testing.T) {
	cfg := e2eConfig(t, "gcc-12")
	ctx := t.Context()
	out := ui.New(os.Stderr)
	// The base of the real bookworm image, on the system engine.
	local, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if _, err := local.Ensure(ctx, cfg, out); err != nil {
		t.Fatal(err)
	}
	base := ""
	for _, ref := range []string{"debian:bookworm", BaseRepository + ":bookworm"} {
		if _, err := local.api.ImageInspect(ctx, ref); err == nil {
			base = ref
			break
		}
	}
	if base == "" {
		t.Fatal("the system engine has no bookworm base image after building the bookworm builder")
	}

	host := e2etest.TCPEngine(t, "engine-build", "")
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	if _, err := api.ImageInspect(ctx, base); err != nil {
		rc, err := local.api.ImageSave(ctx, []string{base})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := api.ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// A build of an earlier run is removed: this one must build.
	api.ImageRemove(ctx, remoteSpec.Tag(), image.RemoveOptions{PruneChildren: true})

	t.Setenv("DOCKER_HOST", host)
	e, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.Remote() {
		t.Fatalf("the engine at %s counts as on this host", host)
	}
	// Its own build directory: the build log goes there.
	rcfg := *cfg
	rcfg.BuildDir = t.TempDir()
	start := time.Now()
	img, err := e.build(ctx, &rcfg, remoteSpec, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s on the engine at %s in %s", remoteSpec.Tag(), host, time.Since(start).Round(100*time.Millisecond))
	if img.Glibc != "2.36" || img.Suite != "bookworm" {
		t.Errorf("image %+v", img)
	}
	var got bytes.Buffer
	code, err := e.Run(ctx, RunSpec{Image: img.ID, Cmd: []string{"file", "--version"}, Log: &got, Timeout: time.Minute})
	if err != nil || code != 0 || !strings.HasPrefix(got.String(), "file-") {
		t.Errorf("file --version in the image: exit %d, %v: %q", code, err, got.String())
	}
	// apt fetched from the mirror, on that engine's side.
	log, _ := os.ReadFile(rcfg.Path(layout.ContainerLog(remoteSpec.Suite)))
	if !strings.Contains(string(log), "Get:") {
		t.Errorf("the build log does not show apt fetching:\n%s", log)
	}
	if _, err := local.api.ImageInspect(ctx, remoteSpec.Tag()); err == nil {
		t.Errorf("%s is on the system engine too: the build did not happen where DOCKER_HOST says", remoteSpec.Tag())
	}
}
