package kernel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/apt/apttest"
	"github.com/falcosecurity/libs/test/vm/scripts/archive/archivetest"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/download"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

type E = archivetest.Entry

// debianKernel returns the packages of a Debian-style kernel: flavour
// headers pointing at -common (absolute include) and at linux-kbuild
// (relative symlinks), and either one image package or the split
// binary + modules pair of the 7.x packaging.
func debianKernel(uname, kbuild string, split bool) map[string][]E {
	common := strings.TrimSuffix(uname, "-cloud-amd64") + "-common"
	flavour := "./usr/src/linux-headers-" + uname
	pkgs := map[string][]E{
		"linux-headers-" + uname: {
			{Name: flavour + "/Makefile", Body: "include /usr/src/linux-headers-" + common + "/Makefile\n"},
			{Name: flavour + "/.config", Body: "CONFIG_MODULES=y\n"},
			{Name: flavour + "/include/config/kernel.release", Body: "1.2.3\n"}, // Debian: upstream version
			{Name: flavour + "/include/generated/utsrelease.h", Body: `#define UTS_RELEASE "` + uname + "\"\n"},
			{Name: flavour + "/scripts", Link: "../../lib/linux-kbuild-" + kbuild + "/scripts"},
			{Name: "./usr/share/doc/linux-headers-" + uname + "/copyright", Body: "GPL"},
		},
		"linux-headers-" + common: {
			{Name: "./usr/src/linux-headers-" + common + "/Makefile", Body: "all:\n"},
			{Name: "./usr/src/linux-headers-" + common + "/include/linux/module.h", Body: "/* */\n"},
		},
		"linux-kbuild-" + kbuild: {
			{Name: "./usr/lib/linux-kbuild-" + kbuild + "/scripts/fixdep", Body: "\x7fELF"},
			{Name: "./usr/src/linux-kbuild-" + kbuild, Link: "../lib/linux-kbuild-" + kbuild},
		},
	}
	if split {
		pkgs["linux-binary-"+uname] = []E{{Name: "./usr/lib/modules/" + uname + "/vmlinuz", Body: "bzImage"}}
		pkgs["linux-modules-"+uname] = []E{{Name: "./usr/lib/modules/" + uname + "/kernel/fs/x.ko.xz", Body: "ko"}}
		// The base files complete the modules tree.
		pkgs["linux-base-"+uname] = []E{
			{Name: "./usr/lib/modules/" + uname + "/config", Body: "CONFIG_MODULES=y\n"},
			{Name: "./usr/lib/modules/" + uname + "/modules.order", Body: "kernel/fs/x.ko\n"},
		}
	} else {
		pkgs["linux-image-"+uname] = []E{
			{Name: "./boot/vmlinuz-" + uname, Body: "bzImage"},
			{Name: "./lib/modules/" + uname + "/kernel/fs/x.ko", Body: "ko"},
			{Name: "./lib/modules/" + uname + "/build", Link: "/usr/src/linux-headers-" + uname},
		}
	}
	return pkgs
}

type fixture struct {
	archive *apttest.Archive
	cfg     *config.Config
	grid    string
	out     bytes.Buffer
}

func newFixture(t *testing.T, gridText string) *fixture {
	t.Helper()
	f := &fixture{archive: apttest.New(t)}
	dir := t.TempDir()
	f.grid = filepath.Join(dir, "kernels.txt")
	if err := os.WriteFile(f.grid, []byte(gridText), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VM_BUILD_DIR": filepath.Join(dir, "build"), "VM_KERNELS": f.grid, "VM_DEBIAN_MIRROR": f.archive.Mirror, "VM_JOBS": "2"}
	cfg, err := config.Parse(func(k string) string { return env[k] }, dir)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	return f
}

func (f *fixture) add(t *testing.T, suite string, pkgs map[string][]E, version string) {
	t.Helper()
	dir := t.TempDir()
	for name, entries := range pkgs {
		p := filepath.Join(dir, name+".deb")
		archivetest.WriteDeb(t, p, "xz", entries)
		f.archive.Add(t, suite, name, version, p)
	}
}

func (f *fixture) fetch(t *testing.T) (*Manifest, *download.Downloader, error) {
	t.Helper()
	dl := download.New(nil, 2)
	f.out.Reset()
	m, err := (&Fetcher{Config: f.cfg, Out: ui.New(&f.out), Downloads: dl, Keyring: f.archive.Keyring, AptEtc: t.TempDir()}).Fetch(context.Background())
	return m, dl, err
}

const twoKernelsAndABrokenOne = `# test grid
{"name": "k1", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}
{"name": "k7", "headers": ["apt:trixie-backports/linux-headers-7.3.4+deb13-cloud-amd64", "apt:trixie-backports/linux-headers-7.3.4+deb13-common", "apt:trixie-backports/linux-kbuild-7.3.4+deb13"], "kernels": ["apt:trixie-backports/linux-binary-7.3.4+deb13-cloud-amd64", "apt:trixie-backports/linux-modules-7.3.4+deb13-cloud-amd64"]}
{"name": "gone", "headers": ["apt:bookworm/linux-headers-9.9.9-1-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-9.9.9-1-cloud-amd64"]}
`

func TestFetchDebianKernels(t *testing.T) {
	f := newFixture(t, twoKernelsAndABrokenOne)
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.add(t, "trixie-backports", debianKernel("7.3.4+deb13-cloud-amd64", "7.3.4+deb13", true), "7.3.4-1~bpo13+1")
	f.add(t, "bookworm", map[string][]E{
		"linux-headers-9.9.9-1-cloud-amd64": {{Name: "./x", Body: "x"}},
		"linux-image-9.9.9-1-cloud-amd64":   {{Name: "./y", Body: "y"}},
	}, "9.9.9-1")
	f.archive.Publish(t)
	f.archive.Replace("bookworm", "linux-image-9.9.9-1-cloud-amd64", nil) // listed, but 404

	m, dl, err := f.fetch(t)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 kernels failed") || !strings.Contains(err.Error(), "gone (line 4): ") {
		t.Fatalf("want an error naming only the broken kernel, got %v", err)
	}
	if !errors.Is(err, ErrSomeKernelsFailed) {
		t.Errorf("a partial failure should wrap ErrSomeKernelsFailed: %v", err)
	}
	if dl.Bytes() == 0 || dl.Bytes() != f.archive.PackageBytes() {
		t.Errorf("downloader counted %d bytes, archive served %d", dl.Bytes(), f.archive.PackageBytes())
	}
	loaded, lerr := LoadManifest(f.cfg.BuildDir)
	if lerr != nil || len(loaded.Kernels) != 3 || len(m.Kernels) != 3 {
		t.Fatalf("manifest: %v", lerr)
	}
	k1, k7, gone := loaded.Kernels[0], loaded.Kernels[1], loaded.Kernels[2]
	if k1.Error != "" || k1.UnameR != "1.2.3-1-cloud-amd64" || k1.Line != 2 || k1.VM != "debian" || k1.Name != "k1" {
		t.Errorf("k1: %+v", k1)
	}
	if k1.Sysroot != f.cfg.Path("headers_extracted", "1.2.3-1-cloud-amd64") || k1.KernelDir != "/usr/src/linux-headers-1.2.3-1-cloud-amd64" {
		t.Errorf("k1 sysroot %s kerneldir %s", k1.Sysroot, k1.KernelDir)
	}
	if !slices.Equal(k1.Mounts, []string{"/usr/lib/linux-kbuild-1.2", "/usr/src"}) {
		t.Errorf("k1 mounts %v", k1.Mounts)
	}
	// The layout the compile stage relies on: with every mount at its
	// absolute path, the flavour's links reach kbuild.
	if b, err := os.ReadFile(filepath.Join(k1.HostKernelDir(), "scripts", "fixdep")); err != nil || string(b) != "\x7fELF" {
		t.Errorf("scripts/fixdep through the sysroot: %q %v", b, err)
	}
	if b, err := os.ReadFile(k1.Vmlinuz); err != nil || string(b) != "bzImage" || k1.Vmlinuz != f.cfg.Path("boot", k1.UnameR, "boot", "vmlinuz-"+k1.UnameR) {
		t.Errorf("k1 vmlinuz %s: %v", k1.Vmlinuz, err)
	}
	if k1.ModulesDir != f.cfg.Path("boot", k1.UnameR, "lib", "modules", k1.UnameR) {
		t.Errorf("k1 modules %s", k1.ModulesDir)
	}
	if k7.Error != "" || k7.UnameR != "7.3.4+deb13-cloud-amd64" || !slices.Equal(k7.Mounts, []string{"/usr/lib/linux-kbuild-7.3.4+deb13", "/usr/src"}) {
		t.Errorf("k7: %+v", k7)
	}
	if k7.Vmlinuz != filepath.Join(k7.ModulesDir, "vmlinuz") || !strings.HasSuffix(k7.ModulesDir, "usr/lib/modules/7.3.4+deb13-cloud-amd64") {
		t.Errorf("k7 split packaging: vmlinuz %s modules %s", k7.Vmlinuz, k7.ModulesDir)
	}
	if !strings.Contains(gone.Error, "404") || gone.Sysroot != "" || gone.Vmlinuz != "" {
		t.Errorf("gone: %+v", gone)
	}
	for _, want := range []string{"kernel 1.2.3-1-cloud-amd64 [k1]", "FAILED", "apt:bookworm/linux-image-9.9.9-1-cloud-amd64"} {
		if !strings.Contains(f.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, f.out.String())
		}
	}
	if _, err := os.Stat(f.cfg.Path("kernels", "linux-image-9.9.9-1-cloud-amd64_9.9.9-1_amd64.deb")); err == nil {
		t.Error("a failed package is in the cache")
	}
	if left, _ := filepath.Glob(f.cfg.Path("*", ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary trees left: %v", left)
	}

	// Second run: nothing downloaded, nothing extracted again.
	marker := filepath.Join(k1.Sysroot, "marker")
	os.WriteFile(marker, nil, 0o644)
	served := f.archive.PackageBytes()
	m2, dl2, err := f.fetch(t)
	if err == nil {
		t.Fatal("second run: the broken kernel is still broken")
	}
	if dl2.Bytes() != 0 || f.archive.PackageBytes() != served {
		t.Errorf("second run downloaded %d bytes", dl2.Bytes())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("second run re-extracted a complete sysroot")
	}
	if m2.Kernels[0].Sysroot != k1.Sysroot || !slices.Equal(m2.Kernels[1].Mounts, k7.Mounts) {
		t.Errorf("second run manifest differs: %+v", m2.Kernels[0])
	}
}

func TestFetchMalformedGridDownloadsNothing(t *testing.T) {
	f := newFixture(t, `{"headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}
{"headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64"], "kernels": "oops"}
`)
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.archive.Publish(t)
	_, dl, err := f.fetch(t)
	if err == nil || !strings.HasPrefix(err.Error(), "kernels.txt:2: ") {
		t.Fatalf("want kernels.txt:2: ..., got %v", err)
	}
	if dl.Bytes() != 0 || f.archive.PackageBytes() != 0 {
		t.Error("a malformed grid started downloads")
	}
	if _, err := os.Stat(f.cfg.BuildDir); err == nil {
		t.Error("a malformed grid created the build directory")
	}
}

func TestFetchRejectsBadPackages(t *testing.T) {
	f := newFixture(t, `{"name": "sha", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}
{"name": "evil", "headers": ["apt:trixie/linux-headers-6.6.6-1-cloud-amd64"], "kernels": ["apt:trixie/linux-image-6.6.6-1-cloud-amd64"]}
`)
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.add(t, "trixie", map[string][]E{
		"linux-headers-6.6.6-1-cloud-amd64": {
			{Name: "./usr/src/linux-headers-6.6.6-1-cloud-amd64/Makefile", Body: "x"},
			{Name: "./usr/src/escape", Link: "/etc"},
			{Name: "./usr/src/escape/evil", Body: "x"},
		},
		"linux-image-6.6.6-1-cloud-amd64": debianKernel("6.6.6-1-cloud-amd64", "6.6", false)["linux-image-6.6.6-1-cloud-amd64"],
	}, "6.6.6-1")
	f.archive.Publish(t)
	f.archive.Corrupt("bookworm", "linux-image-1.2.3-1-cloud-amd64")

	m, _, err := f.fetch(t)
	if err == nil || !strings.Contains(err.Error(), "sha (line 1): ") || !strings.Contains(err.Error(), "; evil (line 2): ") {
		t.Fatalf("want both kernels failed, got %v", err)
	}
	if e := m.Kernels[0].Error; !strings.Contains(e, "SHA256 mismatch") || !strings.Contains(e, "apt:bookworm/linux-image-1.2.3-1-cloud-amd64") {
		t.Errorf("sha: %s", e)
	}
	if e := m.Kernels[1].Error; !strings.Contains(e, "linux-headers-6.6.6-1-cloud-amd64_6.6.6-1_amd64.deb") || !strings.Contains(e, "./usr/src/escape/evil") {
		t.Errorf("evil: error should name package and entry: %s", e)
	}
	if left, _ := os.ReadDir(f.cfg.Path("kernels")); len(left) != 3 { // .partial + the good 6.6.6 image and its recorded SHA256
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("kernels cache holds %v", names)
	}
	if _, err := os.Stat(f.cfg.Path("headers_extracted", "6.6.6-1-cloud-amd64")); err == nil {
		t.Error("a refused package left a sysroot")
	}
	if left, _ := filepath.Glob(f.cfg.Path("*", ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary trees left: %v", left)
	}
}

// el7-style rpms, built by rpmbuild, referenced by local path.
func TestFetchEl7RPMs(t *testing.T) {
	const uname = "3.10.0-1160.el7.x86_64"
	devel := t.TempDir()
	kdir := filepath.Join(devel, "usr/src/kernels", uname)
	os.MkdirAll(filepath.Join(kdir, "include/generated"), 0o755)
	os.WriteFile(filepath.Join(kdir, "Makefile"), []byte("VERSION = 3\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, ".config"), []byte("CONFIG_MODULES=y\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, "include/generated/utsrelease.h"), []byte(`#define UTS_RELEASE "`+uname+"\"\n"), 0o644)
	image := t.TempDir()
	os.MkdirAll(filepath.Join(image, "boot"), 0o755)
	os.WriteFile(filepath.Join(image, "boot", "vmlinuz-"+uname), []byte("bzImage"), 0o644)
	os.MkdirAll(filepath.Join(image, "lib/modules", uname, "kernel"), 0o755)
	os.WriteFile(filepath.Join(image, "lib/modules", uname, "kernel", "x.ko"), []byte("ko"), 0o644)
	os.Symlink("/usr/src/kernels/"+uname, filepath.Join(image, "lib/modules", uname, "build"))
	develRPM := archivetest.BuildRPM(t, devel, "kernel-devel", "3.10.0", "1160.el7", "xz")
	imageRPM := archivetest.BuildRPM(t, image, "kernel", "3.10.0", "1160.el7", "gzip")

	f := newFixture(t, `{"headers": ["`+develRPM+`"], "kernels": ["file://`+imageRPM+`"]}`+"\n")
	m, dl, err := f.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	e := m.Kernels[0]
	if e.UnameR != uname || e.VM != "centos7" || e.KernelDir != "/usr/src/kernels/"+uname || !slices.Equal(e.Mounts, []string{"/usr/src"}) {
		t.Errorf("el7 entry: %+v", e)
	}
	if e.Headers[0] != develRPM || dl.Bytes() != 0 {
		t.Errorf("local packages are read in place: %v, %d bytes downloaded", e.Headers, dl.Bytes())
	}
	if b, err := os.ReadFile(e.Vmlinuz); err != nil || string(b) != "bzImage" {
		t.Errorf("vmlinuz: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.HostKernelDir(), "Makefile")); err != nil {
		t.Error(err)
	}
}

func TestFetchRefusesOneKernelTwice(t *testing.T) {
	line := `{"headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]`
	f := newFixture(t, line+`, "name": "a"}`+"\n"+line+`, "name": "b"}`+"\n")
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.archive.Publish(t)
	m, _, err := f.fetch(t)
	if err == nil || !strings.Contains(err.Error(), "b (line 2): uname -r 1.2.3-1-cloud-amd64 is also the kernel of line 1") {
		t.Fatalf("got %v", err)
	}
	if m.Kernels[0].Error != "" || m.Kernels[0].Sysroot == "" {
		t.Errorf("the first line should still be fetched: %+v", m.Kernels[0])
	}
}

// A second run on the same build directory waits for the first, then
// finds everything in place: it neither downloads again nor removes the
// first one's trees while they are being made.
func TestFetchWaitsForAnotherRun(t *testing.T) {
	f := newFixture(t, twoKernelsAndABrokenOne)
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.archive.Publish(t)
	unlock, err := lockBuildDir(f.cfg.Path(".kernel.lock"), ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	// Debris of a run in progress, which a run that does not wait would
	// delete as stale.
	inProgress := f.cfg.Path("headers_extracted", ".tmp-other")
	if err := os.MkdirAll(inProgress, 0o755); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := (&Fetcher{Config: f.cfg, Out: ui.New(&out), Keyring: f.archive.Keyring, AptEtc: t.TempDir()}).Fetch(context.Background())
		done <- err
	}()
	for !strings.Contains(out.String(), "waiting for another kernel stage") {
		select {
		case err := <-done:
			t.Fatalf("the second run did not wait for the lock: %v", err)
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := os.Stat(inProgress); err != nil {
		t.Errorf("a waiting run touched the other run's trees: %v", err)
	}
	unlock()
	if err := <-done; err == nil || !errors.Is(err, ErrSomeKernelsFailed) {
		t.Fatalf("after the lock: %v", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestFetchCancelled(t *testing.T) {
	f := newFixture(t, twoKernelsAndABrokenOne)
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.archive.Publish(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Fetcher{Config: f.cfg, Keyring: f.archive.Keyring, AptEtc: t.TempDir()}).Fetch(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if _, err := os.Stat(f.cfg.Path(layout.Manifest)); err == nil {
		t.Error("a cancelled run wrote a manifest")
	}
}

// A release name taken from package contents never becomes a path.
func TestFetchRefusesHostileRelease(t *testing.T) {
	f := newFixture(t, `{"headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}`+"\n")
	f.add(t, "bookworm", map[string][]E{
		"linux-headers-1.2.3-1-cloud-amd64": {{Name: "./usr/src/h/Makefile", Body: "x"}, {Name: "./usr/src/h/.config", Body: "x"}},
		"linux-image-1.2.3-1-cloud-amd64":   {{Name: "./boot/vmlinuz-..", Body: "x"}},
	}, "1.2.3-1")
	f.archive.Publish(t)
	m, _, err := f.fetch(t)
	if err == nil || !strings.Contains(m.Kernels[0].Error, `unusable kernel release ".."`) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(f.cfg.Path(layout.Manifest)); err != nil {
		t.Errorf("build directory damaged: %v", err)
	}
}

// addDeb puts one package with its Depends field into the fake archive.
func (f *fixture) addDeb(t *testing.T, suite, name, version string, entries []E, depends string) {
	t.Helper()
	if entries == nil { // a meta package: documentation only
		entries = []E{{Name: "./usr/share/doc/" + name + "/copyright", Body: "GPL"}}
	}
	p := filepath.Join(t.TempDir(), name+".deb")
	archivetest.WriteDeb(t, p, "xz", entries)
	f.archive.AddDepends(t, suite, name, version, p, depends)
}

func base(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

// Meta packages stand for the suite's current kernel: their kernel
// dependencies are fetched, verified and extracted like listed packages.
func TestFetchMetaPackages(t *testing.T) {
	f := newFixture(t, `{"name": "meta6", "headers": ["apt:bookworm/linux-headers-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-cloud-amd64"]}
{"name": "meta7", "headers": ["apt:trixie-backports/linux-headers-cloud-amd64"], "kernels": ["apt:trixie-backports/linux-image-cloud-amd64"]}
`)
	k6 := debianKernel("1.2.3-1-cloud-amd64", "1.2", false)
	f.addDeb(t, "bookworm", "linux-headers-cloud-amd64", "1.2.3-1", nil, "linux-headers-1.2.3-1-cloud-amd64 (= 1.2.3-1)")
	f.addDeb(t, "bookworm", "linux-image-cloud-amd64", "1.2.3-1", nil, "linux-image-1.2.3-1-cloud-amd64 (= 1.2.3-1)")
	// Like trixie's headers, these depend on the image too: the headers
	// tree must not get it.
	f.addDeb(t, "bookworm", "linux-headers-1.2.3-1-cloud-amd64", "1.2.3-1", k6["linux-headers-1.2.3-1-cloud-amd64"],
		"linux-headers-1.2.3-1-common (= 1.2.3-1), linux-image-1.2.3-1-cloud-amd64 (= 1.2.3-1) | linux-image-1.2.3-1-cloud-amd64-unsigned (= 1.2.3-1), linux-kbuild-1.2 (>= 1.2.3-1), linux-compiler-gcc-12-x86")
	f.addDeb(t, "bookworm", "linux-headers-1.2.3-1-common", "1.2.3-1", k6["linux-headers-1.2.3-1-common"], "")
	f.addDeb(t, "bookworm", "linux-kbuild-1.2", "1.2.3-1", k6["linux-kbuild-1.2"], "libc6")
	f.addDeb(t, "bookworm", "linux-image-1.2.3-1-cloud-amd64", "1.2.3-1", k6["linux-image-1.2.3-1-cloud-amd64"], "kmod, linux-base (>= 4.3~), initramfs-tools | linux-initramfs-tool")

	const u7, v7 = "7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+1"
	k7 := debianKernel(u7, "7.3.4+deb13", true)
	eq := " (= " + v7 + ")"
	f.addDeb(t, "trixie-backports", "linux-headers-cloud-amd64", v7, nil, "linux-base-cloud-amd64"+eq+", linux-headers-"+u7+eq)
	f.addDeb(t, "trixie-backports", "linux-image-cloud-amd64", v7, nil, "linux-base-cloud-amd64"+eq+", linux-image-"+u7+eq+", linux-modules-cloud-amd64"+eq)
	f.addDeb(t, "trixie-backports", "linux-image-"+u7, v7, nil, "dracut | initramfs-tools, linux-base-"+u7+eq+", linux-binary-"+u7+eq+", linux-modules-"+u7+eq+", linux-base (>= 4.17~)")
	f.addDeb(t, "trixie-backports", "linux-modules-cloud-amd64", v7, nil, "linux-modules-"+u7+eq)
	f.addDeb(t, "trixie-backports", "linux-base-cloud-amd64", v7, nil, "linux-base-"+u7+eq)
	f.addDeb(t, "trixie-backports", "linux-base-"+u7, v7, k7["linux-base-"+u7], "")
	f.addDeb(t, "trixie-backports", "linux-binary-"+u7, v7, k7["linux-binary-"+u7], "linux-base-"+u7+eq)
	f.addDeb(t, "trixie-backports", "linux-modules-"+u7, v7, k7["linux-modules-"+u7], "kmod, linux-base-"+u7+eq)
	// The image pre-depends on a linux-base only trixie-backports has.
	f.addDeb(t, "trixie-backports", "linux-base", "4.17~bpo13+1", nil, "debconf")
	f.addDeb(t, "trixie", "linux-base", "4.12.1", nil, "debconf")
	f.addDeb(t, "trixie-backports", "linux-headers-"+u7, v7, k7["linux-headers-"+u7], "gcc-14-for-host, linux-headers-7.3.4+deb13-common"+eq+", linux-kbuild-7.3.4+deb13")
	f.addDeb(t, "trixie-backports", "linux-headers-7.3.4+deb13-common", v7, k7["linux-headers-7.3.4+deb13-common"], "")
	f.addDeb(t, "bookworm", "linux-image-broken-amd64", "1", nil, "linux-image-9.9.9-1-cloud-amd64 (= 9.9.9-1)")
	// Only the base suite has this one.
	f.addDeb(t, "trixie", "linux-kbuild-7.3.4+deb13", v7, k7["linux-kbuild-7.3.4+deb13"], "pahole")
	f.archive.Publish(t)

	m, dl, err := f.fetch(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.out.String())
	}
	e6, e7 := m.Kernels[0], m.Kernels[1]
	if e6.UnameR != "1.2.3-1-cloud-amd64" || e6.KernelDir != "/usr/src/linux-headers-1.2.3-1-cloud-amd64" || e6.Vmlinuz != f.cfg.Path("boot", e6.UnameR, "boot", "vmlinuz-"+e6.UnameR) {
		t.Errorf("meta6: %+v", e6)
	}
	if w := []string{"linux-headers-cloud-amd64_1.2.3-1_amd64.deb", "linux-headers-1.2.3-1-cloud-amd64_1.2.3-1_amd64.deb", "linux-headers-1.2.3-1-common_1.2.3-1_amd64.deb", "linux-kbuild-1.2_1.2.3-1_amd64.deb"}; !slices.Equal(base(e6.Headers), w) {
		t.Errorf("meta6 headers %v, want %v", base(e6.Headers), w)
	}
	if w := []string{"linux-image-cloud-amd64_1.2.3-1_amd64.deb", "linux-image-1.2.3-1-cloud-amd64_1.2.3-1_amd64.deb"}; !slices.Equal(base(e6.Kernels), w) {
		t.Errorf("meta6 kernels %v, want %v", base(e6.Kernels), w)
	}
	if e7.UnameR != u7 || e7.Vmlinuz != filepath.Join(e7.ModulesDir, "vmlinuz") || !slices.Equal(e7.Mounts, []string{"/usr/lib/linux-kbuild-7.3.4+deb13", "/usr/src"}) {
		t.Errorf("meta7: %+v", e7)
	}
	// Everything the image needs to install: its family at the exact
	// version, and the linux-base trixie lacks.
	if w := []string{"linux-image-cloud-amd64_" + v7 + "_amd64.deb", "linux-base-cloud-amd64_" + v7 + "_amd64.deb", "linux-base-" + u7 + "_" + v7 + "_amd64.deb",
		"linux-image-" + u7 + "_" + v7 + "_amd64.deb", "linux-binary-" + u7 + "_" + v7 + "_amd64.deb", "linux-modules-" + u7 + "_" + v7 + "_amd64.deb",
		"linux-base_4.17~bpo13+1_amd64.deb", "linux-modules-cloud-amd64_" + v7 + "_amd64.deb"}; !slices.Equal(base(e7.Kernels), w) {
		t.Errorf("meta7 kernels %v, want %v", base(e7.Kernels), w)
	}
	// The modules tree has the base files' modules.order beside the modules.
	if _, err := os.Stat(filepath.Join(e7.ModulesDir, "modules.order")); err != nil {
		t.Errorf("meta7 modules tree: %v", err)
	}
	if len(e7.Resolved) != 2 || e7.Resolved[1].Ref != "apt:trixie-backports/linux-image-cloud-amd64" || !slices.Contains(e7.Resolved[1].Packages, "linux-binary-"+u7+"="+v7) {
		t.Errorf("meta7 resolved %+v", e7.Resolved)
	}
	if !strings.Contains(f.out.String(), "kernel [meta6]: apt:bookworm/linux-image-cloud-amd64 brings linux-image-1.2.3-1-cloud-amd64=1.2.3-1") {
		t.Errorf("output does not show what the meta package brought:\n%s", f.out.String())
	}
	if dl.Bytes() != f.archive.PackageBytes() {
		t.Errorf("downloaded %d bytes, archive served %d", dl.Bytes(), f.archive.PackageBytes())
	}

	// The same kernels listed package by package: nothing brought twice,
	// nothing downloaded again, the same trees.
	os.WriteFile(f.grid, []byte(`{"name": "exact6", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}
`), 0o644)
	served := f.archive.PackageBytes()
	m2, _, err := f.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	if x := m2.Kernels[0]; len(x.Headers) != 3 || len(x.Kernels) != 1 || x.UnameR != e6.UnameR || f.archive.PackageBytes() != served {
		t.Errorf("exact references: %d headers %d kernels, uname %s, %d new bytes", len(x.Headers), len(x.Kernels), x.UnameR, f.archive.PackageBytes()-served)
	}

	// A dependency the index lacks fails the kernel, naming it.
	os.WriteFile(f.grid, []byte(`{"name": "meta6", "headers": ["apt:bookworm/linux-headers-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-cloud-amd64"]}
{"name": "again", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}
{"name": "broken", "headers": ["apt:trixie-backports/linux-headers-cloud-amd64"], "kernels": ["apt:bookworm/linux-image-broken-amd64"]}
`), 0o644)
	m3, _, err := f.fetch(t)
	if err == nil || !errors.Is(err, ErrSomeKernelsFailed) {
		t.Fatalf("want some kernels failed, got %v", err)
	}
	if e := m3.Kernels[1].Error; !strings.Contains(e, "uname -r 1.2.3-1-cloud-amd64 is also the kernel of line 1") {
		t.Errorf("a meta line and an exact line for one kernel: %q", e)
	}
	if e := m3.Kernels[2].Error; !strings.Contains(e, "apt:bookworm/linux-image-broken-amd64") || !strings.Contains(e, "linux-image-9.9.9-1-cloud-amd64 (= 9.9.9-1)") || !strings.Contains(e, "not in suite bookworm") {
		t.Errorf("missing dependency: %q", e)
	}
	if m3.Kernels[0].Error != "" {
		t.Errorf("meta6 failed with the others: %s", m3.Kernels[0].Error)
	}
}

// Local and URL packages may be pinned with #sha256=; a mismatch fails the
// kernel naming the reference, and whatever no signed index or pin vouches
// for is listed as unverified in kernels.json and in the stage's output.
func TestFetchPinnedAndUnverifiedPackages(t *testing.T) {
	dir := t.TempDir()
	debs := map[string]string{}
	for name, entries := range debianKernel("4.5.6-1-cloud-amd64", "4.5", false) {
		p := filepath.Join(dir, name+".deb")
		archivetest.WriteDeb(t, p, "xz", entries)
		debs[name] = p
	}
	sum := func(p string) string {
		s, err := download.FileSHA256(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	img := debs["linux-image-4.5.6-1-cloud-amd64"]
	line := func(name, imageRef string) string {
		return `{"name": "` + name + `", "headers": ["file://` + debs["linux-headers-4.5.6-1-cloud-amd64"] + `#sha256=` + sum(debs["linux-headers-4.5.6-1-cloud-amd64"]) +
			`", "` + debs["linux-headers-4.5.6-1-common"] + `", "` + debs["linux-kbuild-4.5"] + `"], "kernels": ["` + imageRef + `"]}` + "\n"
	}
	f := newFixture(t, line("pinned", "file://"+img+"#sha256="+sum(img)))
	m, _, err := f.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	e := m.Kernels[0]
	want := []string{debs["linux-headers-4.5.6-1-common"], debs["linux-kbuild-4.5"]}
	if strings.Join(e.Unverified, " ") != strings.Join(want, " ") {
		t.Errorf("unverified %v, want the two unpinned paths %v", e.Unverified, want)
	}
	if !strings.Contains(f.out.String(), "UNVERIFIED (no signed index, no #sha256= pin): "+strings.Join(want, " ")) {
		t.Errorf("the stage does not say what is unverified:\n%s", f.out.String())
	}

	wrong := strings.Repeat("0", 64)
	f = newFixture(t, line("tampered", "file://"+img+"#sha256="+wrong))
	m, _, err = f.fetch(t)
	if err == nil || !strings.Contains(m.Kernels[0].Error, "file://"+img+"#sha256="+wrong) || !strings.Contains(m.Kernels[0].Error, "SHA256 mismatch") {
		t.Fatalf("a pin that does not match: err %v, kernel error %q", err, m.Kernels[0].Error)
	}
}

// A cached package altered on disk is caught on the next run by its
// SHA256, fetched again, and said in one line.
func TestFetchReplacesATamperedCache(t *testing.T) {
	f := newFixture(t, `{"name": "k1", "headers": ["apt:bookworm/linux-headers-1.2.3-1-cloud-amd64", "apt:bookworm/linux-headers-1.2.3-1-common", "apt:bookworm/linux-kbuild-1.2"], "kernels": ["apt:bookworm/linux-image-1.2.3-1-cloud-amd64"]}`+"\n")
	f.add(t, "bookworm", debianKernel("1.2.3-1-cloud-amd64", "1.2", false), "1.2.3-1")
	f.archive.Publish(t)
	if _, _, err := f.fetch(t); err != nil {
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(f.cfg.Path("kernels", "linux-image-*.deb"))
	if len(debs) != 1 {
		t.Fatalf("cached images: %v", debs)
	}
	b, _ := os.ReadFile(debs[0])
	b[len(b)/2] ^= 0x40
	os.WriteFile(debs[0], b, 0o644)
	_, dl, err := f.fetch(t)
	if err != nil || dl.Bytes() != int64(len(b)) {
		t.Fatalf("second run: %v, %d bytes fetched (want %d)", err, dl.Bytes(), len(b))
	}
	if !strings.Contains(f.out.String(), "cached "+debs[0]+" did not match (SHA256 ") || !strings.Contains(f.out.String(), "fetched again") {
		t.Errorf("no line about the replaced package:\n%s", f.out.String())
	}
}
