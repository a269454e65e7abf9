package drill

import (
	"bytes"
	"context"
	"debug/elf"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/download"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/setup"
)

// drill is one drill's build directory and the environment of its runs.
type drill struct {
	dir string
	env map[string]string
}

// newDrill prepares build/e2e/drills/<name>: a one-kernel grid (the CI
// grid's 6.1 kernel, built with gcc-12), the stand-in tree, qemu under TCG,
// and the package cache of the shared end-to-end build directory
// hard-linked in (files there are only ever replaced, never written in
// place). env adds to or overrides the settings.
func newDrill(t *testing.T, name string, env map[string]string) *drill {
	t.Helper()
	e2etest.Skip(t)
	shared := e2etest.BuildDir(t)
	dir := filepath.Join(shared, "drills", name)
	if err := setup.PrepareBuildDir(dir); err != nil {
		t.Fatal(err)
	}
	grid := filepath.Join(dir, "kernels.txt")
	b, err := os.ReadFile(filepath.Join(e2etest.Root(), "testdata", "grids", "ci.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"apt:bookworm/`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("testdata/grids/ci.txt: want one bookworm kernel, got %q", lines)
	}
	if err := os.WriteFile(grid, []byte(lines[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"kernels", "headers", "apt"} {
		e2etest.LinkTree(filepath.Join(shared, sub), filepath.Join(dir, sub))
	}
	all := map[string]string{
		"VM_BUILD_DIR":     dir,
		"VM_KERNELS":       grid,
		"VM_LIBS_DIR":      filepath.Join(e2etest.Root(), config.StandInDir),
		"VM_DEBIAN_MIRROR": os.Getenv("VM_DEBIAN_MIRROR"),
		"VM_PROVIDER":      "qemu",
		"VM_ACCEL":         "tcg",
		"VM_COMPILERS":     "gcc-12",
		"VM_DRIVERS":       "kmod",
		"VM_JOBS":          "2",
		"VM_SEED":          "1",
	}
	for k, v := range env {
		all[k] = v
	}
	return &drill{dir: dir, env: all}
}

// path is a path in the drill's build directory.
func (d *drill) path(elem ...string) string {
	return filepath.Join(append([]string{d.dir}, elem...)...)
}

// start runs target in the drill's build directory, in a process group of
// its own as a terminal runs it.
func (d *drill) start(t *testing.T, target string) *e2etest.MageRun {
	t.Helper()
	return e2etest.StartMage(t, target, d.env)
}

// run runs target to its end and fails t unless it succeeds.
func (d *drill) run(t *testing.T, target string, timeout time.Duration) string {
	t.Helper()
	r := d.start(t, target)
	if err := r.Wait(timeout); err != nil {
		t.Fatalf("%s: %v\n%s", target, err, r.Output())
	}
	return r.Output()
}

// containers lists the containers of the drill's build directory on the
// engine DOCKER_HOST names.
func (d *drill) containers(t *testing.T) []string {
	t.Helper()
	e, err := container.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids, err := e.Remaining(context.Background(), container.LabelBuild+"="+d.dir)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// qemus lists the qemu processes working for the drill's build directory.
func (d *drill) qemus() []string { return processes("qemu-system", d.dir+"/") }

// processes lists the processes whose command line has every one of words.
func processes(words ...string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		all := true
		for _, w := range words {
			all = all && strings.Contains(cmd, w)
		}
		if all {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}

// checkLeftovers fails t when the drill's build directory has a container
// or a qemu process, a package under its final name that does not match
// its recorded SHA256, or a driver or scap-open under its final name that
// is not a whole ELF file.
func (d *drill) checkLeftovers(t *testing.T) {
	t.Helper()
	if ids := d.containers(t); len(ids) > 0 {
		t.Errorf("containers left: %v", ids)
	}
	d.checkFiles(t)
}

// checkFiles is checkLeftovers without the containers.
func (d *drill) checkFiles(t *testing.T) {
	t.Helper()
	// A qemu whose parent is gone is killed by the kernel (Pdeathsig): give
	// it the moment that takes.
	for range 20 {
		if len(d.qemus()) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pids := d.qemus(); len(pids) > 0 {
		t.Errorf("qemu processes left: %v", pids)
	}
	for _, sub := range []string{"kernels", "headers"} {
		filepath.WalkDir(d.path(sub), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() && e.Name() == ".partial" {
				return filepath.SkipDir
			}
			if !e.Type().IsRegular() || strings.HasSuffix(p, ".sha256") || strings.HasPrefix(e.Name(), ".") {
				return nil
			}
			want, _ := os.ReadFile(p + ".sha256")
			if got, _ := download.FileSHA256(p); got != strings.TrimSpace(string(want)) {
				t.Errorf("%s: under its final name but SHA256 %s, recorded %q", p, got, strings.TrimSpace(string(want)))
			}
			return nil
		})
	}
	artifacts, _ := filepath.Glob(d.path("driver", "*", "*"))
	if _, err := os.Stat(d.path("scap-open")); err == nil {
		artifacts = append(artifacts, d.path("scap-open"))
	}
	for _, a := range artifacts {
		if fi, err := os.Stat(a); err != nil || fi.IsDir() {
			continue
		}
		f, err := elf.Open(a)
		if err != nil {
			t.Errorf("%s: under its final name but not a whole ELF file: %v", a, err)
			continue
		}
		f.Close()
	}
}

// cells reads the drill's results.json.
func (d *drill) cells(t *testing.T) []results.Cell {
	t.Helper()
	f, err := results.Load(d.path("results.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f.Cells
}

// resetCompile forgets every compile outcome, so the next compile builds
// every cell again.
func (d *drill) resetCompile(t *testing.T) {
	t.Helper()
	for _, p := range []string{"results.json", "driver", "driver_ok", "scap-open", "scap-open.key", "scap-open.root", "logs/compile"} {
		if err := os.RemoveAll(d.path(p)); err != nil {
			t.Fatal(err)
		}
	}
}
