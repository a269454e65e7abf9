package drill

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/setup"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// privateEngine points DOCKER_HOST, for the test and its runs, at an
// engine of the drills' own (started by the project's setup, state under
// the shared end-to-end build directory, stopped when the test ends) and
// returns its directory. The
// builder image of the compilers is copied in from the engine DOCKER_HOST
// named before, once, when images is set: the drill's engine has no
// network to build one.
func privateEngine(t *testing.T, d *drill, images bool) string {
	t.Helper()
	system, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer system.Close()
	dir := filepath.Join(e2etest.BuildDir(t), "engine")
	host := "unix://" + filepath.Join(dir, "docker.sock")
	t.Setenv("DOCKER_HOST", host)
	d.env["DOCKER_HOST"] = host
	ctx := t.Context()
	out := ui.New(os.Stderr)
	e, err := container.Connect(ctx)
	if err != nil {
		if err := setup.StartDocker(ctx, out); err != nil {
			t.Fatal(err)
		}
		if e, err = container.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer e.Close()
	// The engine does not outlive the drill (its images stay, in dir).
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "dockerd.pid")); err == nil {
			stopEngine(t, dir)
		}
	})
	specs, err := container.Specs()
	if err != nil {
		t.Fatal(err)
	}
	if !images {
		return dir
	}
	for _, s := range container.Needed(specs, strings.Split(d.env["VM_COMPILERS"], ","), nil) {
		if _, err := e.Inspect(ctx, s); err == nil {
			continue
		}
		start := time.Now()
		rc, err := system.ImageSave(ctx, []string{s.Tag()})
		if err != nil {
			t.Fatalf("the drill copies %s from the system engine, which lacks it: %v", s.Tag(), err)
		}
		resp, err := e.API().ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := e.Inspect(ctx, s); err != nil {
			t.Fatalf("load %s: %v", s.Tag(), err)
		}
		t.Logf("copied %s into the drill's engine in %s", s.Tag(), time.Since(start).Round(time.Second))
	}
	return dir
}

// stopEngine stops the drill's engine as its host would (SIGTERM to the
// dockerd its pidfile names) and waits until it is gone.
func stopEngine(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "dockerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The pidfile must name the drill's own dockerd, never another.
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), "dockerd") || !strings.Contains(string(cmdline), dir) {
		t.Fatalf("%s/dockerd.pid names process %d (%q), not the drill's dockerd", dir, pid, cmdline)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("dockerd %d still running a minute after SIGTERM", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The Docker engine stops while cells compile: the run ends with one error
// that names the engine and says what to do, the cells in flight are
// recorded as errors (never as failures), no driver is half-written, and
// once the engine is back (started by setup) the next run removes what
// the dead engine left and completes.
func TestDrillEngineStops(t *testing.T) {
	// bookworm's clang-14 builds both the legacy probe and scap-open: one
	// builder image to copy.
	d := newDrill(t, "engine", map[string]string{"VM_COMPILERS": "clang-14", "VM_DRIVERS": "bpf"})
	d.run(t, "kernel", 10*time.Minute) // on the system engine: the images are there
	dir := privateEngine(t, d, true)
	d.resetCompile(t)
	release := heldTree(t, d)

	r := d.start(t, "compile")
	r.WaitFor("container of the run", 5*time.Minute, func() bool { return len(d.containers(t)) > 0 })
	time.Sleep(2 * time.Second) // into the build
	stopped := time.Now()
	stopEngine(t, dir)
	t.Logf("engine stopped in %.1fs", time.Since(stopped).Seconds())
	if err := r.Wait(2 * time.Minute); err == nil {
		t.Fatalf("compile succeeded without its engine:\n%s", r.Output())
	}
	out := r.Output()
	errLines := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "compile: ERROR") {
			errLines++
		}
		if strings.HasPrefix(l, "compile: ERROR") || strings.HasPrefix(l, "compile: error") || strings.HasPrefix(l, "Error:") {
			t.Logf("| %s", l)
		}
	}
	want := "the Docker engine stopped answering at " + d.env["DOCKER_HOST"]
	if errLines != 1 || !strings.Contains(out, want) || !strings.Contains(out, "go run mage.go setup") {
		t.Errorf("want one ERROR line naming the engine (%q) and what to do; got %d:\n%s", want, errLines, out)
	}
	errors := 0
	for _, c := range d.cells(t) {
		switch {
		case c.Compile == nil:
		case c.Compile.Status == results.CompileError:
			errors++
			if !strings.Contains(c.Compile.Reason, want) {
				t.Errorf("%s: error reason %q does not name the engine", c.ID(), c.Compile.Reason)
			}
		case c.Compile.Status != results.CompileOK:
			t.Errorf("%s: recorded %s (%s) when its engine stopped", c.ID(), c.Compile.Status, c.Compile.Reason)
		}
	}
	if errors == 0 && !strings.Contains(out, "compile: error scap-open:") {
		t.Errorf("no cell in flight recorded as an error:\n%s", out)
	}
	d.checkFiles(t) // the engine is down: its containers are checked once it is back

	if err := setup.StartDocker(context.Background(), ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	t.Logf("the engine came back with %d containers of the run", len(d.containers(t)))
	release()
	out = d.run(t, "compile", 10*time.Minute)
	if l := regexp.MustCompile(`(?m)^compile: removed .*$`).FindString(out); l != "" {
		t.Logf("| %s", l)
	}
	d.checkLeftovers(t)
	for _, c := range d.cells(t) {
		if c.Compile == nil || c.Compile.Status != results.CompileOK {
			t.Errorf("%s: not built once the engine was back: %+v\n%s", c.ID(), c.Compile, out)
		}
	}
}

// heldTree points the drill at a copy of the stand-in tree whose
// configure step holds every build (a sleep), so that the engine surely
// stops under builds in flight, however fast the host builds the stand-in
// (it takes about 2 s). release takes the hold away for the next run.
func heldTree(t *testing.T, d *drill) (release func()) {
	t.Helper()
	tree := d.path("held-tree")
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", d.env["VM_LIBS_DIR"], tree).CombinedOutput(); err != nil {
		t.Fatalf("copy the stand-in tree: %v: %s", err, out)
	}
	lists := filepath.Join(tree, "CMakeLists.txt")
	orig, err := os.ReadFile(lists)
	if err != nil {
		t.Fatal(err)
	}
	held := append(slices.Clone(orig), "\n# Held by the engine drill: the engine stops during this configure.\nexecute_process(COMMAND sleep 600)\n"...)
	if err := os.WriteFile(lists, held, 0o644); err != nil {
		t.Fatal(err)
	}
	d.env["VM_LIBS_DIR"] = tree
	return func() {
		t.Helper()
		if err := os.WriteFile(lists, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// alive reports whether process pid still runs. A dockerd that setup
// started from this test is its child: it is reaped here, not left a
// zombie.
func alive(pid int) bool {
	var ws syscall.WaitStatus
	if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && got == pid {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// Ctrl-C while a builder image is being made (its base bootstrapped with
// debootstrap, as on a host without a registry), on the drills' own
// engine: the run ends within mage's window, no debootstrap survives, its
// root filesystem (with the /proc and /sys it may have mounted) is gone,
// and no image carries the builder's tag. The next run starts the image
// over: there is nothing partial to resume.
func TestDrillInterruptImageBuild(t *testing.T) {
	// gcc-10 is bullseye's alone: an image the drills' engine does not have.
	d := newDrill(t, "image", map[string]string{"VM_COMPILERS": "gcc-10"})
	privateEngine(t, d, false)
	tmp := d.path("tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	d.env["TMPDIR"] = tmp

	r := d.start(t, "container")
	r.WaitLine(regexp.MustCompile(`bootstrapping it with debootstrap`), 5*time.Minute)
	// The hardest moment: debootstrap's second stage, with /proc mounted
	// in the tree it builds.
	r.WaitFor("debootstrap's mounts", 5*time.Minute, func() bool {
		mounts, _ := os.ReadFile("/proc/self/mounts")
		return strings.Contains(string(mounts), tmp+"/")
	})
	checkQuickExit(t, r, r.Interrupt())
	d.checkLeftovers(t)
	if roots, _ := filepath.Glob(filepath.Join(tmp, "testvm-rootfs-*")); len(roots) > 0 {
		t.Errorf("root filesystems left: %v", roots)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), tmp+"/") {
		t.Errorf("mounts left under %s", tmp)
	}
	if pids := processes("debootstrap", tmp+"/"); len(pids) > 0 {
		t.Errorf("debootstrap left running: %v", pids)
	}
	e, err := container.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	specs, _ := container.Specs()
	for _, s := range container.Needed(specs, []string{"gcc-10"}, nil) {
		if _, err := e.Inspect(t.Context(), s); err == nil {
			t.Errorf("%s exists after an interrupted build", s.Tag())
		}
	}
}
