package kernel

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/download"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// e2eConfig is the configuration of the end-to-end tests: the CI grid in
// the shared end-to-end build directory, so packages are downloaded once
// for all test packages.
func e2eConfig(t *testing.T) *config.Config {
	return e2etest.Config(t, nil)
}

// Real Debian kernels from two suites download, verify against the signed
// indexes and extract; a second run downloads nothing.
func TestE2EKernelFetch(t *testing.T) {
	cfg := e2eConfig(t)
	ctx := context.Background()
	m, err := (&Fetcher{Config: cfg, Out: ui.New(testWriter{t})}).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The CI grid names meta packages: the kernels are bookworm's and
	// trixie's current ones, whatever their ABI number.
	want := []*regexp.Regexp{
		regexp.MustCompile(`^6\.1\.0-[0-9]+-cloud-amd64$`),
		regexp.MustCompile(`^6\.12\.[0-9]+\+deb13-cloud-amd64$`),
	}
	if len(m.Kernels) != len(want) {
		t.Fatalf("%d kernels, want %d", len(m.Kernels), len(want))
	}
	for i, e := range m.Kernels {
		if !want[i].MatchString(e.UnameR) || e.Error != "" {
			t.Errorf("kernel %d: %q %s, want %s", i, e.UnameR, e.Error, want[i])
			continue
		}
		// What the meta packages brought is on record, and is what was
		// extracted: the image package of this very release.
		if len(e.Resolved) != 2 || !slices.Contains(e.Resolved[1].Packages, "linux-image-"+e.UnameR+"="+versionOf(e.Resolved[1].Packages[0])) {
			t.Errorf("%s: resolved %+v", e.UnameR, e.Resolved)
		}
		if n := len(e.Headers); n != 4 || len(e.Kernels) != 2 {
			t.Errorf("%s: %d header and %d kernel packages, want 4 (meta, flavour, -common, kbuild) and 2 (meta, image)", e.UnameR, n, len(e.Kernels))
		}
		if e.KernelDir != "/usr/src/linux-headers-"+e.UnameR || len(e.Mounts) != 2 || e.Mounts[1] != "/usr/src" || !strings.HasPrefix(e.Mounts[0], "/usr/lib/linux-kbuild-") {
			t.Errorf("%s: kernel dir %s mounts %v", e.UnameR, e.KernelDir, e.Mounts)
		}
		for _, f := range []string{"Makefile", ".config", "include/generated/autoconf.h", "Module.symvers"} {
			if _, err := os.Stat(filepath.Join(e.HostKernelDir(), f)); err != nil {
				t.Errorf("%s: %v", e.UnameR, err)
			}
		}
		// The flavour's scripts link resolves once the mounts are in place:
		// follow it by hand inside the sysroot.
		link, err := os.Readlink(filepath.Join(e.HostKernelDir(), "scripts"))
		if err != nil {
			t.Errorf("%s: scripts link: %v", e.UnameR, err)
		} else if target := filepath.Join(e.KernelDir, link); !slices.ContainsFunc(e.Mounts, func(m string) bool { return strings.HasPrefix(target, m+"/") }) {
			t.Errorf("%s: scripts -> %s is outside the mounts %v", e.UnameR, target, e.Mounts)
		} else if _, err := os.Stat(filepath.Join(e.Sysroot, target, "basic", "fixdep")); err != nil {
			t.Errorf("%s: kbuild host tools missing: %v", e.UnameR, err)
		}
		if fi, err := os.Stat(e.Vmlinuz); err != nil || fi.Size() < 1<<20 {
			t.Errorf("%s: vmlinuz %s: %v", e.UnameR, e.Vmlinuz, err)
		}
		if _, err := os.Stat(filepath.Join(e.ModulesDir, "modules.order")); err != nil {
			t.Errorf("%s: modules: %v", e.UnameR, err)
		}
	}
	dl := download.New(nil, 4)
	if _, err := (&Fetcher{Config: cfg, Out: ui.New(testWriter{t}), Downloads: dl}).Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if dl.Bytes() != 0 {
		t.Errorf("second run downloaded %d bytes of packages, want 0", dl.Bytes())
	}
	if _, err := LoadManifest(cfg.BuildDir); err != nil {
		t.Error(err)
	}
}

// versionOf is the VERSION of NAME=VERSION.
func versionOf(nameVersion string) string {
	_, v, _ := strings.Cut(nameVersion, "=")
	return v
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
