package compile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// testInputs plans for the stand-in tree (which has the legacy probe).
func testInputs(t *testing.T) Inputs {
	t.Helper()
	k61 := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64", Sysroot: "/b/headers_extracted/6.1.0-50-cloud-amd64",
		KernelDir: "/usr/src/linux-headers-6.1.0-50-cloud-amd64", Mounts: []string{"/usr/src", "/usr/lib/linux-kbuild-6.1"},
		Headers: []string{"/b/headers/linux-headers-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb"}}
	k612 := kernel.Entry{UnameR: "6.12.117+deb13-cloud-amd64", Sysroot: "/b/headers_extracted/6.12.117+deb13-cloud-amd64",
		KernelDir: "/usr/src/linux-headers-6.12.117+deb13-cloud-amd64", Mounts: []string{"/usr/src", "/usr/lib/linux-kbuild-6.12.117+deb13"}}
	broken := kernel.Entry{UnameR: "5.10.0-32-cloud-amd64", Error: "linux-kbuild-5.10: 404 Not Found"}
	return Inputs{
		Kernels:   []kernel.Entry{k61, k612, broken},
		GlibcNeed: map[string]string{k61.UnameR: "2.34", k612.UnameR: "2.38"},
		Images: []container.Image{
			{Spec: container.Spec{Suite: "bookworm", Compilers: []string{"gcc-11", "gcc-12", "clang-13", "clang-14"}}, ID: "sha256:bw", Glibc: "2.36"},
			{Spec: container.Spec{Suite: "trixie", Compilers: []string{"gcc-12", "gcc-14", "clang-19"}}, ID: "sha256:tx", Glibc: "2.41"},
		},
		Compilers:  []string{"gcc-12", "gcc-14", "clang-14", "clang-19", "clang-11", "gcc-7"},
		Drivers:    []string{"kmod", "bpf", "modern_bpf"},
		Tree:       standInTree(t),
		SourceHash: "src1",
		ScapOpen:   true,
	}
}

func byCell(jobs []Job, skips []Skip) (map[string]Job, map[string]string) {
	j := map[string]Job{}
	for _, x := range jobs {
		for _, c := range x.Cells {
			j[c.String()] = x
		}
		if x.Driver == layout.ScapOpen {
			j["scap-open"] = x
		}
	}
	s := map[string]string{}
	for _, x := range skips {
		s[x.Cell.String()] = x.Reason
	}
	return j, s
}

func TestPlan(t *testing.T) {
	jobs, skips := Plan(testInputs(t))
	j, s := byCell(jobs, skips)
	builds := map[string]string{ // cell -> suite of the image that builds it
		"gcc-12/6.1.0-50-cloud-amd64/kmod":               "bookworm",
		"gcc-12/6.12.117+deb13-cloud-amd64/kmod":         "trixie", // bookworm's glibc cannot run 6.12's fixdep
		"gcc-14/6.1.0-50-cloud-amd64/kmod":               "trixie",
		"gcc-14/6.12.117+deb13-cloud-amd64/kmod":         "trixie",
		"clang-14/6.1.0-50-cloud-amd64/bpf":              "bookworm",
		"clang-19/6.1.0-50-cloud-amd64/bpf":              "trixie",
		"clang-19/6.12.117+deb13-cloud-amd64/bpf":        "trixie",
		"clang-14/6.1.0-50-cloud-amd64/modern_bpf":       "bookworm",
		"clang-14/6.12.117+deb13-cloud-amd64/modern_bpf": "bookworm", // no headers involved
		"clang-19/6.12.117+deb13-cloud-amd64/modern_bpf": "trixie",
		"scap-open": "trixie",
	}
	for cell, suite := range builds {
		if got := j[cell].Image.Suite; got != suite {
			t.Errorf("%s: built in %q, want %q (skip %q)", cell, got, suite, s[cell])
		}
	}
	wantSkips := map[string]string{
		"clang-14/6.12.117+deb13-cloud-amd64/bpf":   "builder glibc 2.36 < needed 2.38",
		"gcc-7/6.1.0-50-cloud-amd64/kmod":           "no builder provides gcc-7",
		"clang-11/6.1.0-50-cloud-amd64/bpf":         "no builder provides clang-11",
		"clang-11/6.1.0-50-cloud-amd64/modern_bpf":  ReasonModernClang,
		"gcc-12/5.10.0-32-cloud-amd64/kmod":         "no headers: linux-kbuild-5.10: 404 Not Found",
		"clang-19/5.10.0-32-cloud-amd64/modern_bpf": "no headers: linux-kbuild-5.10: 404 Not Found",
	}
	for cell, reason := range wantSkips {
		if s[cell] != reason {
			t.Errorf("%s: skip reason %q, want %q", cell, s[cell], reason)
		}
	}
	// Every cell of the grid is either built or skipped, never both.
	if n := 3 * (3 + 3*2); len(j)-1+len(s) != n {
		t.Errorf("%d built + %d skipped cells, want %d in all", len(j)-1, len(s), n)
	}
	for cell := range j {
		if _, ok := s[cell]; ok {
			t.Errorf("%s both built and skipped", cell)
		}
	}
	// modern_bpf is one job per clang, recorded on every kernel with headers.
	m := j["clang-19/6.1.0-50-cloud-amd64/modern_bpf"]
	if len(m.Cells) != 2 || m.Kernel != nil || m.Artifact != "driver/clang-19/modern_bpf/scap-open" {
		t.Errorf("modern_bpf job: %+v", m)
	}
	k := j["gcc-12/6.1.0-50-cloud-amd64/kmod"]
	if k.Artifact != "driver/gcc-12/6.1.0-50-cloud-amd64.ko" || k.Log != "logs/compile/gcc-12/6.1.0-50-cloud-amd64.kmod.log" {
		t.Errorf("kmod job paths: %s %s", k.Artifact, k.Log)
	}
	if b := j["clang-19/6.1.0-50-cloud-amd64/bpf"]; b.Artifact != "driver/clang-19/6.1.0-50-cloud-amd64.o" || b.HostGCC != "gcc-14" {
		t.Errorf("bpf job: %s host %s", b.Artifact, b.HostGCC)
	}
}

// A failed kernel's cells are recorded under a name results.json accepts,
// and never over the cells of the same kernel on another grid line.
func TestPlanFailedKernels(t *testing.T) {
	in := testInputs(t)
	ok := in.Kernels[0]
	in.Kernels = []kernel.Entry{
		ok,
		{Name: "again", UnameR: ok.UnameR, Error: "uname -r " + ok.UnameR + " is also the kernel of line 1"},
		{Name: "meta", Error: "no kernel image in the kernel packages"},
	}
	in.Compilers, in.Drivers = []string{"gcc-12"}, []string{"kmod"}
	jobs, skips := Plan(in)
	j, s := byCell(jobs, skips)
	if _, built := j["gcc-12/"+ok.UnameR+"/kmod"]; !built || s["gcc-12/"+ok.UnameR+"/kmod"] != "" {
		t.Errorf("the duplicate line's skip shadows the kernel's cell: skips %v", s)
	}
	if r := s["gcc-12/meta/kmod"]; r != "no headers: no kernel image in the kernel packages" {
		t.Errorf("kernel without a release: skips %v", s)
	}
	for _, x := range skips {
		if x.Cell.Kernel == "" {
			t.Errorf("cell without a kernel: %+v", x)
		}
	}
}

func TestPlanKeys(t *testing.T) {
	in := testInputs(t)
	a, _ := Plan(in)
	b, _ := Plan(in)
	for i := range a {
		if a[i].Key != b[i].Key {
			t.Fatalf("keys differ between identical plans")
		}
	}
	keys := map[string]bool{}
	for _, j := range a {
		if keys[j.Key] {
			t.Errorf("duplicate key %s (%s)", j.Key, j.Name())
		}
		keys[j.Key] = true
	}
	in.SourceHash = "src2"
	c, _ := Plan(in)
	for i := range a {
		if a[i].Key == c[i].Key {
			t.Errorf("%s: key unchanged after the source changed", a[i].Name())
		}
	}
}

func TestPlanWithoutBPFDriver(t *testing.T) {
	in := testInputs(t)
	in.Tree = openTree(t, mainLike)
	in.Drivers = []string{"bpf"}
	jobs, skips := Plan(in)
	for _, j := range jobs {
		t.Errorf("unexpected job %s", j.Name())
	}
	_, s := byCell(jobs, skips)
	if s["clang-19/6.1.0-50-cloud-amd64/bpf"] != ReasonNotInLibs {
		t.Errorf("bpf skip: %q", s["clang-19/6.1.0-50-cloud-amd64/bpf"])
	}
}

func TestFailureReason(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte(`+ make driver KERNELDIR=/usr/src/linux-headers-6.1.0-50-cloud-amd64 CC=gcc-11
  CC [M]  /libs/build/driver/main.o
gcc-11: error: unrecognized command-line option '-ftrivial-auto-var-init=zero'
make[3]: *** [scripts/Makefile.build:250: main.o] Error 1
`), 0o644)
	if got := failureReason(p, 2); got != "gcc-11: error: unrecognized command-line option '-ftrivial-auto-var-init=zero'" {
		t.Errorf("reason %q", got)
	}
	os.WriteFile(p, []byte("nothing useful\n"), 0o644)
	if got := failureReason(p, 3); got != "exit status 3" {
		t.Errorf("reason %q", got)
	}
}

func TestUpToDate(t *testing.T) {
	dir := t.TempDir()
	j := Job{Driver: layout.Kmod, Key: "k1", Artifact: "driver/gcc-12/6.1.ko",
		Cells: []CellID{{"6.1", "gcc-12", "kmod"}}}
	f := &results.File{}
	if _, ok := upToDate(f, dir, j); ok {
		t.Fatal("a cell never built is up to date")
	}
	f.SetCompile("6.1", "gcc-12", "kmod", results.Compile{Status: results.CompileOK, Key: "k1", Artifact: j.Artifact})
	if _, ok := upToDate(f, dir, j); ok {
		t.Fatal("up to date without its artifact")
	}
	os.MkdirAll(filepath.Join(dir, "driver/gcc-12"), 0o755)
	os.WriteFile(filepath.Join(dir, j.Artifact), []byte("ko"), 0o644)
	if rec, ok := upToDate(f, dir, j); !ok || rec.Status != results.CompileOK {
		t.Fatalf("same key and artifact: not up to date (%v, %+v)", ok, rec)
	}
	j.Key = "k2"
	if _, ok := upToDate(f, dir, j); ok {
		t.Fatal("a changed key is up to date")
	}
	f.SetCompile("6.1", "gcc-12", "kmod", results.Compile{Status: results.CompileFail, Key: "k2"})
	if _, ok := upToDate(f, dir, j); !ok {
		t.Fatal("a failure with the same key is rebuilt")
	}
	f.SetCompile("6.1", "gcc-12", "kmod", results.Compile{Status: results.CompileSkip, Key: "k2"})
	if _, ok := upToDate(f, dir, j); ok {
		t.Fatal("a skipped cell counts as built")
	}
}

// The modern_bpf build does not depend on the kernel: a kernel new to the
// grid takes its record instead of building it again.
func TestUpToDateSharedModernBuild(t *testing.T) {
	dir := t.TempDir()
	j := Job{Driver: layout.ModernBPF, Compiler: "clang-19", Key: "m1", Artifact: "driver/clang-19/modern_bpf/scap-open",
		Cells: []CellID{{"6.1", "clang-19", "modern_bpf"}, {"6.12", "clang-19", "modern_bpf"}}}
	os.MkdirAll(filepath.Join(dir, "driver/clang-19/modern_bpf"), 0o755)
	os.WriteFile(filepath.Join(dir, j.Artifact), []byte("elf"), 0o755)
	f := &results.File{}
	f.SetCompile("6.1", "clang-19", "modern_bpf", results.Compile{Status: results.CompileOK, Key: "m1", Artifact: j.Artifact, Log: "l"})
	f.SetCompile("6.12", "clang-19", "modern_bpf", results.Compile{Status: results.CompileOK, Key: "old", Artifact: j.Artifact})
	rec, ok := upToDate(f, dir, j)
	if !ok || rec == nil || rec.Key != "m1" || rec.Log != "l" {
		t.Fatalf("a new kernel's cell rebuilds the shared modern_bpf build: %v %+v", ok, rec)
	}
	os.Remove(filepath.Join(dir, j.Artifact))
	if _, ok := upToDate(f, dir, j); ok {
		t.Fatal("up to date without its artifact")
	}
}

// drivers_test is built once per clang of a modern_bpf build, in that
// build's image, with test targets on; a grid of kmod cells alone gets one
// with the newest image's newest clang; VM_BEHAVIOUR=off builds none.
func TestPlanDriversTest(t *testing.T) {
	in := testInputs(t)
	in.Behaviour = true
	dts := func(in Inputs) map[string]Job {
		jobs, _ := Plan(in)
		out := map[string]Job{}
		for _, j := range jobs {
			if j.Driver == layout.DriversTest {
				out[j.Compiler] = j
			}
		}
		return out
	}
	got := dts(in)
	if len(got) != 2 || got["clang-14"].Image.Suite != "bookworm" || got["clang-19"].Image.Suite != "trixie" {
		t.Fatalf("drivers_test jobs %v, want clang-14 (bookworm) and clang-19 (trixie)", got)
	}
	j := got["clang-19"]
	if j.Artifact != "driver/clang-19/drivers_test/drivers_test" || j.Log != "logs/compile/clang-19/drivers_test.log" || j.Name() != "clang-19/drivers_test" || len(j.Cells) != 0 {
		t.Errorf("job %+v", j)
	}
	for _, want := range []string{"-DCREATE_TEST_TARGETS=ON", "-DENABLE_DRIVERS_TESTS=ON", "-DENABLE_IA32_TESTS=OFF",
		"-DBUILD_LIBSCAP_MODERN_BPF=ON", "-DMODERN_CLANG_EXE=/usr/bin/clang-19", "\nmake drivers_test\n", "CC=gcc-14 CXX=g++-14 cmake"} {
		if !strings.Contains(j.Recipe.Script, want) {
			t.Errorf("recipe lacks %q:\n%s", want, j.Recipe.Script)
		}
	}
	if strings.Contains(j.Recipe.Script, "-DCREATE_TEST_TARGETS=OFF") {
		t.Errorf("recipe passes CREATE_TEST_TARGETS twice:\n%s", j.Recipe.Script)
	}

	in.Drivers = []string{"kmod"}
	if got := dts(in); len(got) != 1 || got["clang-19"].Image.Suite != "trixie" {
		t.Errorf("kmod only: drivers_test jobs %v, want one with clang-19", got)
	}
	in.Behaviour = false
	if got := dts(in); len(got) != 0 {
		t.Errorf("VM_BEHAVIOUR=off: drivers_test jobs %v", got)
	}
}

// A grid with arm64 kernels: their cells are built by the cross images,
// each architecture has its own modern_bpf build per clang, scap-open and
// drivers_test, and an arm64 cell that no cross image can build says so.
func TestPlanArm64(t *testing.T) {
	in := testInputs(t)
	in.Behaviour = true
	a61 := kernel.Entry{UnameR: "6.1.0-50-cloud-arm64", Arch: layout.Arm64, Sysroot: "/b/headers_extracted/6.1.0-50-cloud-arm64",
		KernelDir: "/usr/src/linux-headers-6.1.0-50-cloud-arm64", Mounts: []string{"/usr/src", "/usr/lib/linux-kbuild-6.1"}}
	in.Kernels = append(in.Kernels, a61)
	in.GlibcNeed[a61.UnameR] = "2.34"
	bw := in.Images[0]
	in.Images = append(in.Images, container.Image{Spec: container.Spec{Suite: "bookworm", Arch: layout.Arm64, Parent: &bw.Spec,
		Compilers: []string{"gcc-11", "gcc-12", "clang-13", "clang-14"}}, ID: "sha256:bw-arm64", Glibc: "2.36"})
	jobs, skips := Plan(in)
	j, s := byCell(jobs, skips)

	for cell, want := range map[string]string{ // cell -> image that builds it
		"gcc-12/6.1.0-50-cloud-arm64/kmod":         "sha256:bw-arm64",
		"clang-14/6.1.0-50-cloud-arm64/bpf":        "sha256:bw-arm64",
		"clang-14/6.1.0-50-cloud-arm64/modern_bpf": "sha256:bw-arm64",
		"gcc-12/6.1.0-50-cloud-amd64/kmod":         "sha256:bw",
		"clang-14/6.1.0-50-cloud-amd64/modern_bpf": "sha256:bw",
	} {
		if got := j[cell]; got.Image.ID != want {
			t.Errorf("%s: built by %q, want %q", cell, got.Image.ID, want)
		}
	}
	if k := j["gcc-12/6.1.0-50-cloud-arm64/kmod"]; k.Arch != layout.Arm64 || !strings.Contains(k.Recipe.Script, "CC=aarch64-linux-gnu-gcc-12 ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-") {
		t.Errorf("arm64 kmod job %+v", k)
	}
	// clang-19 is only in trixie, which has no cross image here.
	if got := s["clang-19/6.1.0-50-cloud-arm64/modern_bpf"]; got != "no builder provides clang-19 for arm64" {
		t.Errorf("clang-19 arm64 modern_bpf skip = %q", got)
	}
	names := map[string]Job{}
	for _, x := range jobs {
		names[x.Name()] = x
	}
	for name, artifact := range map[string]string{
		"scap-open":                   "scap-open",
		"scap-open-arm64":             "scap-open-arm64",
		"clang-14/modern_bpf":         "driver/clang-14/modern_bpf/scap-open",
		"clang-14/modern_bpf-arm64":   "driver/clang-14/modern_bpf-arm64/scap-open",
		"clang-14/drivers_test":       "driver/clang-14/drivers_test/drivers_test",
		"clang-14/drivers_test-arm64": "driver/clang-14/drivers_test-arm64/drivers_test",
	} {
		if got, ok := names[name]; !ok || got.Artifact != artifact {
			t.Errorf("job %s: %+v, want artifact %s", name, got, artifact)
		}
	}
	if a, b := names["clang-14/modern_bpf"], names["clang-14/modern_bpf-arm64"]; a.Key == b.Key || len(b.Cells) != 1 || b.Cells[0].Kernel != a61.UnameR {
		t.Errorf("modern_bpf jobs share a key or cells: %+v / %+v", a.Cells, b.Cells)
	}
}
