package compile

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// The CI grid names Debian's meta packages, so its kernels are whatever
// bookworm and trixie currently ship: the tests read their releases from
// the manifest and only check their shapes.

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// e2eSetup fetches the CI grid's kernels into the shared end-to-end build
// directory (cached across runs and test packages) and returns a config on
// that directory.
func e2eSetup(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg := e2etest.Config(t, env)
	if err := kernel.Fetch(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// vermagic reads the vermagic= entry of a kernel module's .modinfo.
func vermagic(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		t.Fatalf("%s: no .modinfo", path)
	}
	b, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("vermagic=")); ok {
			return string(v)
		}
	}
	t.Fatalf("%s: no vermagic", path)
	return ""
}

// TestE2EHelloModule builds a hello-world module against each kernel's
// sysroot, bind-mounted read-only at its absolute paths, in the builder
// image and with the compiler of that kernel's own Debian release.
func TestE2EHelloModule(t *testing.T) {
	cfg := e2eSetup(t, map[string]string{"VM_COMPILERS": "gcc-12,gcc-14"})
	ctx := t.Context()
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	k61, k612 := e2etest.CIKernels(t, cfg.BuildDir)
	engine, err := container.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	images, err := engine.Ensure(ctx, cfg, ui.New(os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	var src bytes.Buffer
	tw := tar.NewWriter(&src)
	for name, text := range map[string]string{
		"hello/hello.c": "#include <linux/module.h>\n#include <linux/init.h>\nstatic int __init hello_init(void) { pr_info(\"hello\\n\"); return 0; }\nstatic void __exit hello_exit(void) {}\nmodule_init(hello_init);\nmodule_exit(hello_exit);\nMODULE_LICENSE(\"GPL\");\n",
		"hello/Kbuild":  "obj-m := hello.o\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(text))})
		tw.Write([]byte(text))
	}
	tw.Close()
	for _, c := range []struct{ uname, compiler, suite string }{{k61, "gcc-12", "bookworm"}, {k612, "gcc-14", "trixie"}} {
		t.Run(c.uname, func(t *testing.T) {
			var k *kernel.Entry
			for i := range m.Kernels {
				if m.Kernels[i].UnameR == c.uname {
					k = &m.Kernels[i]
				}
			}
			if k == nil || k.Error != "" {
				t.Fatalf("kernel %s not in the manifest or failed: %+v", c.uname, k)
			}
			need, err := GlibcNeed(k.Sysroot)
			if err != nil {
				t.Fatal(err)
			}
			img, reason := container.Select(images, c.compiler, need, "")
			if reason != "" || img.Suite != c.suite {
				t.Fatalf("image for %s x %s: %q %s, want %s", c.compiler, c.uname, img.Suite, reason, c.suite)
			}
			var mounts []container.Mount
			for _, mp := range k.Mounts {
				mounts = append(mounts, container.Mount{Host: filepath.Join(k.Sysroot, mp), Container: mp, ReadOnly: true})
			}
			var log bytes.Buffer
			ko := filepath.Join(t.TempDir(), "hello.ko")
			exit, err := engine.Run(ctx, container.RunSpec{
				Image:   img.ID,
				Cmd:     []string{"sh", "-c", fmt.Sprintf("make -C %s M=/hello CC=%s modules", k.KernelDir, c.compiler)},
				Mounts:  mounts,
				CopyIn:  func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(src.Bytes())), nil },
				Log:     &log,
				Timeout: 10 * time.Minute,
				After: func(ctx context.Context, ct *container.Container, exit int) error {
					if exit != 0 {
						return nil
					}
					f, err := os.Create(ko)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = ct.ReadFile(ctx, "/hello/hello.ko", f)
					return err
				},
			})
			if err != nil || exit != 0 {
				t.Fatalf("build: exit %d, %v\n%s", exit, err, log.String())
			}
			if v := vermagic(t, ko); !strings.HasPrefix(v, c.uname+" ") {
				t.Errorf("vermagic %q does not start with %s", v, c.uname)
			}
		})
	}
}

// containerStarts counts the suite's container creations while fn runs.
func containerStarts(t *testing.T, buildDir string, fn func()) int {
	t.Helper()
	engine, err := container.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	ctx, cancel := context.WithCancel(t.Context())
	// Nanosecond bounds: whole seconds would count containers a run that
	// ended just before fn started had created.
	stamp := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	since := time.Now()
	fn()
	until := time.Now().Add(time.Second)
	msgs, errs := engine.API().Events(ctx, events.ListOptions{
		Since: stamp(since), Until: stamp(until),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "create"), filters.Arg("label", container.LabelOwner+"=1"), filters.Arg("label", container.LabelBuild+"="+buildDir)),
	})
	defer cancel()
	n := 0
	for {
		select {
		case <-msgs:
			n++
		case err := <-errs:
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			return n
		}
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// compileConfig is a private build dir with the shared kernels' manifest
// (plus one kernel whose headers failed) and a private copy of the
// stand-in tree, so the test can touch its files.
func compileConfig(t *testing.T, jobs int) *config.Config {
	return compileConfigFor(t, jobs, "gcc-12,gcc-14,clang-14,clang-19")
}

// compileConfigFor is compileConfig with the compiler axis VM_COMPILERS.
func compileConfigFor(t *testing.T, jobs int, compilers string) *config.Config {
	root := repoRoot(t)
	libs := t.TempDir()
	copyTree(t, filepath.Join(root, config.StandInDir), libs)
	build := t.TempDir()
	cfg := e2eSetup(t, map[string]string{
		"VM_COMPILERS": compilers,
		"VM_JOBS":      fmt.Sprint(jobs),
	})
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	m.Kernels = append(m.Kernels, kernel.Entry{Name: "broken", UnameR: "5.10.0-99-cloud-amd64", Error: "extract headers: unexpected EOF"})
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(build, layout.Manifest), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.BuildDir, cfg.LibsDir, cfg.StandIn = build, libs, true
	return cfg
}

func cellMap(t *testing.T, cfg *config.Config) map[string]results.Compile {
	t.Helper()
	f, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]results.Compile{}
	for _, c := range f.Cells {
		if c.Compile != nil {
			out[c.ID()] = *c.Compile
		}
	}
	return out
}

// noPartialArtifacts fails when build/driver holds anything but complete
// ELF artifacts, the keys beside them and their library trees.
func noPartialArtifacts(t *testing.T, cfg *config.Config) {
	t.Helper()
	filepath.WalkDir(cfg.Path("driver"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, ".root/") {
			return nil
		}
		if artifact, ok := strings.CutSuffix(p, ".key"); ok {
			if _, serr := os.Stat(artifact); serr != nil {
				t.Errorf("key without its artifact under build/driver: %s", p)
			}
			return nil
		}
		if _, eerr := elf.Open(p); eerr != nil {
			t.Errorf("partial or foreign file under build/driver: %s: %v", p, eerr)
		}
		return nil
	})
}

func TestE2ECompile(t *testing.T) {
	cfg := compileConfig(t, 2)
	k61, k612 := e2etest.CIKernels(t, cfg.BuildDir)
	out := ui.New(os.Stderr)
	start := time.Now()
	if err := Run(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("cold run, VM_JOBS=2: %s", time.Since(start).Round(time.Second))
	cells := cellMap(t, cfg)
	for id, want := range map[string]string{
		"gcc-12/" + k61 + "/kmod":           results.CompileOK,
		"gcc-14/" + k612 + "/kmod":          results.CompileOK,
		"clang-14/" + k612 + "/bpf":         results.CompileSkip,
		"gcc-12/5.10.0-99-cloud-amd64/kmod": results.CompileSkip,
	} {
		if cells[id].Status != want {
			t.Errorf("%s: %s (%s), want %s", id, cells[id].Status, cells[id].Reason, want)
		}
	}
	if r := cells["clang-14/"+k612+"/bpf"].Reason; r != "builder glibc 2.36 < needed 2.38" {
		t.Errorf("clang-14 x 6.12 reason %q", r)
	}
	if r := cells["clang-19/5.10.0-99-cloud-amd64/modern_bpf"].Reason; !strings.HasPrefix(r, "no headers") {
		t.Errorf("broken kernel reason %q", r)
	}
	if n := len(cells); n != 3*(2+2*2) {
		t.Errorf("%d cells recorded, want 18", n)
	}
	for id, c := range cells {
		if c.Status != results.CompileOK && c.Reason == "" {
			t.Errorf("%s: %s without a reason", id, c.Status)
		}
	}
	for _, k := range []struct{ compiler, uname string }{{"gcc-12", k61}, {"gcc-14", k612}} {
		if v := vermagic(t, cfg.Path("driver", k.compiler, k.uname+".ko")); !strings.HasPrefix(v, k.uname+" ") {
			t.Errorf("%s x %s: vermagic %q", k.compiler, k.uname, v)
		}
	}
	for _, p := range []string{"scap-open", "scap-open.root/lib64/ld-linux-x86-64.so.2"} {
		if _, err := os.Stat(cfg.Path(p)); err != nil {
			t.Errorf("%v", err)
		}
	}
	// drivers_test, once per clang of a modern_bpf build, with the
	// programs its tests run beside its libraries.
	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	for _, clang := range []string{"clang-14", "clang-19"} {
		b := rf.FindBuild(layout.DriversTest, clang, "")
		if b == nil || b.Status != results.CompileOK {
			t.Errorf("%s drivers_test: %+v", clang, b)
			continue
		}
		for _, p := range []string{"", ".root/usr/bin/true", ".root/bin/true", ".root/lib64/ld-linux-x86-64.so.2", ".key"} {
			if _, err := os.Stat(cfg.Path(layout.DriversTestBin(clang, "") + p)); err != nil {
				t.Errorf("%s drivers_test: %v", clang, err)
			}
		}
		t.Logf("%s drivers_test built in %.1fs", clang, b.Seconds)
	}
	noPartialArtifacts(t, cfg)

	// An identical second run starts no container and keeps every record.
	if n := containerStarts(t, cfg.BuildDir, func() {
		if err := Run(t.Context(), cfg, out); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("second run started %d containers", n)
	}
	again := cellMap(t, cfg)
	for id, c := range cells {
		if again[id].Key != c.Key || again[id].Status != c.Status {
			t.Errorf("%s changed on an identical run: %+v -> %+v", id, c, again[id])
		}
	}

	// Touching one source file rebuilds every built cell.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(cfg.LibsDir, "driver", "main.c"), later, later); err != nil {
		t.Fatal(err)
	}
	if err := Run(t.Context(), cfg, out); err != nil {
		t.Fatal(err)
	}
	for id, c := range cellMap(t, cfg) {
		if c.Status != results.CompileSkip && c.Key == cells[id].Key {
			t.Errorf("%s not rebuilt after a source change", id)
		}
	}
}

// TestE2ECompileSIGINT interrupts a compile process with SIGINT, as Ctrl-C
// does, once two cells' containers run: afterwards no container of ours
// exists, no partial artifact is under build/driver, and the next run
// completes.
func TestE2ECompileSIGINT(t *testing.T) {
	cfg := compileConfig(t, 2)
	engine, err := container.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCompileProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTVM_COMPILE_HELPER=1",
		"VM_BUILD_DIR="+cfg.BuildDir, "VM_LIBS_DIR="+cfg.LibsDir, "VM_JOBS=2",
		"VM_COMPILERS="+strings.Join(cfg.Compilers, ","))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if ids, _ := engine.Remaining(t.Context(), container.LabelBuild+"="+cfg.BuildDir); len(ids) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no containers started:\n%s", output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	t.Logf("interrupted run: %v\n%s", err, output.String())
	if err == nil {
		t.Error("an interrupted run exited 0")
	}
	if !strings.Contains(output.String(), "compile: interrupted") {
		t.Error("the interrupted run did not say so")
	}
	if ids, err := engine.Remaining(t.Context(), container.LabelBuild+"="+cfg.BuildDir); err != nil || len(ids) != 0 {
		t.Errorf("containers left after SIGINT: %v %v", ids, err)
	}
	noPartialArtifacts(t, cfg)
	if err := Run(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatalf("run after SIGINT: %v", err)
	}
	k61, _ := e2etest.CIKernels(t, cfg.BuildDir)
	if c := cellMap(t, cfg)["gcc-12/"+k61+"/kmod"]; c.Status != results.CompileOK {
		t.Errorf("after SIGINT and rerun: %+v", c)
	}
}

// TestHelperCompileProcess is the compile process TestE2ECompileSIGINT
// interrupts: Run with a context that SIGINT cancels, configured from the
// environment.
func TestHelperCompileProcess(t *testing.T) {
	if os.Getenv("TESTVM_COMPILE_HELPER") != "1" {
		t.Skip("helper process of TestE2ECompileSIGINT")
	}
	cfg, err := config.Load(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := Run(ctx, cfg, ui.New(os.Stdout)); err != nil {
		t.Fatal(err)
	}
}

// TestE2ECompileJobs measures VM_JOBS=1 against VM_JOBS=2 on the same cold
// grid (images and kernels cached): two rounds, alternating, keeping each
// setting's fastest, since other work on the machine adds noise. It
// reports, it does not assert.
func TestE2ECompileJobs(t *testing.T) {
	best := map[int]time.Duration{}
	for range 2 {
		for _, jobs := range []int{1, 2} {
			cfg := compileConfig(t, jobs)
			start := time.Now()
			if err := Run(t.Context(), cfg, ui.Discard()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); best[jobs] == 0 || d < best[jobs] {
				best[jobs] = d
			}
		}
	}
	t.Logf("cold compile (best of 2): VM_JOBS=1 %s, VM_JOBS=2 %s, ratio %.2f",
		best[1].Round(time.Second), best[2].Round(time.Second), best[2].Seconds()/best[1].Seconds())
}
