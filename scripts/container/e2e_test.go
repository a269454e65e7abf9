package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// e2eConfig is the configuration of the slow tests on the shared
// end-to-end build directory, with the given compilers.
func e2eConfig(t *testing.T, compilers string) *config.Config {
	return e2etest.Config(t, map[string]string{"VM_COMPILERS": compilers})
}

func TestE2EBuildImages(t *testing.T) {
	cfg := e2eConfig(t, "gcc-12,gcc-14,clang-14,clang-19")
	ctx := context.Background()
	e, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	images, err := e.Ensure(ctx, cfg, ui.New(os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	var suites []string
	for _, im := range images {
		suites = append(suites, im.Suite)
	}
	if strings.Join(suites, ",") != "bookworm,trixie" {
		t.Fatalf("built %v, want bookworm and trixie", suites)
	}
	want := map[string]string{"bookworm": "2.36", "trixie": "2.41"}
	for _, im := range images {
		if im.Glibc != want[im.Suite] {
			t.Errorf("%s: glibc label %q, want %q", im.Suite, im.Glibc, want[im.Suite])
		}
		// Every compiler the label promises runs in the image.
		var script []string
		for _, c := range im.Compilers {
			script = append(script, c+" --version >/dev/null || echo missing "+c)
			if strings.HasPrefix(c, "clang-") {
				script = append(script, "llc-"+strings.TrimPrefix(c, "clang-")+" --version >/dev/null || echo missing llc")
			}
		}
		script = append(script, "for t in make cmake bc flex bison pkg-config pahole bpftool; do command -v $t >/dev/null || echo missing $t; done")
		var log bytes.Buffer
		code, err := e.Run(ctx, RunSpec{Image: im.ID, Cmd: []string{"sh", "-c", strings.Join(script, "\n")}, Log: &log, Timeout: time.Minute})
		if err != nil || code != 0 || strings.Contains(log.String(), "missing") {
			t.Errorf("%s: tools check: exit %d, %v:\n%s", im.Suite, code, err, log.String())
		}
	}
	// Unchanged Dockerfiles build nothing: the same image IDs come back at once.
	start := time.Now()
	again, err := e.Ensure(ctx, cfg, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].ID != images[i].ID {
			t.Errorf("%s rebuilt: %s != %s", again[i].Suite, again[i].ID, images[i].ID)
		}
	}
	t.Logf("second Ensure: %s", time.Since(start))

	// An image of an older Dockerfile of the same suite is removed after a
	// build; the current one stays.
	cur := images[len(images)-1]
	old := Repository + ":" + cur.Suite + "-000000000000"
	if err := e.api.ImageTag(ctx, cur.ID, old); err != nil {
		t.Fatal(err)
	}
	e.removeStale(ctx, cur.Spec, ui.Discard())
	if _, err := e.api.ImageInspect(ctx, old); err == nil {
		t.Errorf("outdated tag %s kept", old)
	}
	if _, err := e.Inspect(ctx, cur.Spec); err != nil {
		t.Errorf("current image gone: %v", err)
	}
}

// TestE2ERun checks a container's life cycle on the real daemon: copy in,
// exit code, After with the stopped container, the deadline, cancellation,
// and that no container is left in any case.
func TestE2ERun(t *testing.T) {
	cfg := e2eConfig(t, "gcc-14")
	ctx := context.Background()
	e, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	images, err := e.Ensure(ctx, cfg, ui.New(os.Stderr))
	if err != nil || len(images) != 1 {
		t.Fatalf("images %v, %v", images, err)
	}
	img := images[0].ID
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	tw.WriteHeader(&tar.Header{Name: "in/hello.txt", Mode: 0o644, Size: 6})
	tw.Write([]byte("hello\n"))
	tw.Close()
	mine := map[string]string{"testvm.test": "TestE2ERun"}

	var log bytes.Buffer
	var got bytes.Buffer
	var closure []elfdeps.File
	code, err := e.Run(ctx, RunSpec{
		Image:  img,
		Cmd:    []string{"sh", "-c", "cat /in/hello.txt; echo oops >&2; cp /in/hello.txt /out.txt; exit 3"},
		CopyIn: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(archive.Bytes())), nil },
		Log:    &log,
		Labels: mine,
		After: func(ctx context.Context, c *Container, exit int) error {
			if exit != 3 {
				t.Errorf("After got exit %d", exit)
			}
			if _, err := c.ReadFile(ctx, "/out.txt", &got); err != nil {
				return err
			}
			var err error
			closure, err = elfdeps.Closure(c.FS(ctx), "/usr/bin/make")
			return err
		},
	})
	if err != nil || code != 3 {
		t.Fatalf("exit %d, %v", code, err)
	}
	// stdout and stderr both reach the log (their order is not kept).
	if !strings.Contains(log.String(), "hello\n") || !strings.Contains(log.String(), "oops\n") || got.String() != "hello\n" {
		t.Errorf("log %q, copied out %q", log.String(), got.String())
	}
	var paths []string
	for _, f := range closure {
		paths = append(paths, f.Path)
	}
	if !slices.Contains(paths, "/lib64/ld-linux-x86-64.so.2") || !slices.ContainsFunc(paths, func(p string) bool { return strings.HasSuffix(p, "/libc.so.6") }) {
		t.Errorf("closure of make in the container: %v", paths)
	}

	// The output of commands that exit at once is not lost.
	for i := range 10 {
		var out bytes.Buffer
		if code, err := e.Run(ctx, RunSpec{Image: img, Cmd: []string{"echo", "quick"}, Log: &out, Labels: mine}); err != nil || code != 0 || out.String() != "quick\n" {
			t.Errorf("quick run %d: exit %d, %v, output %q", i, code, err, out.String())
		}
	}

	_, err = e.Run(ctx, RunSpec{Image: img, Cmd: []string{"sleep", "600"}, Timeout: 2 * time.Second, Labels: mine})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("deadline: got %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(2*time.Second, cancel)
	_, err = e.Run(cctx, RunSpec{Image: img, Cmd: []string{"sleep", "600"}, Labels: mine})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: got %v", err)
	}
	if left, err := e.Remaining(ctx, "testvm.test=TestE2ERun"); err != nil || len(left) != 0 {
		t.Errorf("containers left: %v %v", left, err)
	}
}

// TestE2EMountCopied runs one container with a mount on the real daemon
// twice: as a local engine (a read-only bind mount, as always) and as a
// remote one (the same tree copied in through the Engine API, noted in
// the log): the container sees the same files and links at the same path.
func TestE2EMountCopied(t *testing.T) {
	cfg := e2eConfig(t, "gcc-14")
	ctx := context.Background()
	e, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	images, err := e.Ensure(ctx, cfg, ui.New(os.Stderr))
	if err != nil || len(images) != 1 {
		t.Fatalf("images %v, %v", images, err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "linux-headers-1/include"), 0o755)
	os.WriteFile(filepath.Join(dir, "linux-headers-1/include/a.h"), []byte("#define A 1\n"), 0o644)
	os.Symlink("linux-headers-1", filepath.Join(dir, "current"))
	script := "cat /opt/testvm-src/current/include/a.h; readlink /opt/testvm-src/current; touch /opt/testvm-src/w 2>/dev/null && echo writable || echo read-only"
	for _, remote := range []bool{false, true} {
		e.remote = remote
		var log bytes.Buffer
		code, err := e.Run(ctx, RunSpec{
			Image:  images[0].ID,
			Cmd:    []string{"sh", "-c", script},
			Mounts: []Mount{{Host: dir, Container: "/opt/testvm-src", ReadOnly: true}},
			Log:    &log,
			Labels: map[string]string{"testvm.test": "TestE2EMountCopied"},
		})
		if err != nil || code != 0 {
			t.Fatalf("remote=%v: exit %d, %v\n%s", remote, code, err, log.String())
		}
		want := "#define A 1\nlinux-headers-1\nread-only\n"
		if remote {
			// A copy cannot be read-only; it is noted first.
			want = "# copied " + dir + " to /opt/testvm-src: 0.0 MB in "
		}
		if !strings.HasPrefix(log.String(), want) || !strings.Contains(log.String(), "#define A 1\nlinux-headers-1\n") {
			t.Errorf("remote=%v: log %q, want it to begin %q", remote, log.String(), want)
		}
		t.Logf("remote=%v: %q", remote, log.String())
	}
	if left, err := e.Remaining(ctx, "testvm.test=TestE2EMountCopied"); err != nil || len(left) != 0 {
		t.Errorf("containers left: %v %v", left, err)
	}
}
