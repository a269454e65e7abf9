package apt

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
)

// The default grid's kernel references against Debian's real, signed
// indexes of this machine's mirror (slow: four suites' indexes). Whatever
// the current ABIs, each kernel brings every package of its family that
// its image depends on: for 5.10, 6.1 and 6.12 the image alone; for 7.x
// the image, binary, modules and base files of one ABI, and a linux-base
// from trixie-backports when trixie's is too old for the image.
func TestE2EResolveDebianKernels(t *testing.T) {
	cfg := e2etest.Config(t, nil)
	mirror := cfg.Mirror
	if mirror == "" {
		sources, err := HostSources("/etc/apt")
		if err != nil {
			t.Fatal(err)
		}
		if mirror, _, err = Mirror(sources); err != nil {
			t.Fatal(err)
		}
	}
	r := &Resolver{Mirror: mirror, StateDir: cfg.Path("apt")}
	suites := []string{"bullseye", "bookworm", "trixie", "trixie-backports"}
	var qs []Query
	for _, s := range suites {
		qs = append(qs, Query{Suite: s, Package: "linux-image-cloud-amd64", Follow: BootPackage})
	}
	ans := r.ResolveAll(context.Background(), qs)
	abi := regexp.MustCompile(`^linux-image-([0-9].*-cloud-amd64)$`)
	for i, a := range ans {
		if a.Err != nil {
			t.Errorf("%s: %v", qs[i], a.Err)
			continue
		}
		var got []string
		uname := ""
		for _, d := range a.Deps {
			got = append(got, d.Name)
			if m := abi.FindStringSubmatch(d.Name); m != nil {
				uname = m[1]
			}
			if d.Version == "" || len(d.SHA256) != 64 {
				t.Errorf("%s: %s lacks a version or checksum: %+v", qs[i], d.Name, d)
			}
		}
		t.Logf("%s %s brings %s", qs[i], a.Package.Version, strings.Join(got, " "))
		if uname == "" {
			t.Errorf("%s: no ABI image among %v", qs[i], got)
			continue
		}
		if qs[i].Suite != "trixie-backports" {
			if want := []string{"linux-image-" + uname}; !slices.Equal(got, want) {
				t.Errorf("%s: deps %v, want %v", qs[i], got, want)
			}
			continue
		}
		for _, want := range []string{"linux-base-cloud-amd64", "linux-modules-cloud-amd64", "linux-image-" + uname,
			"linux-binary-" + uname, "linux-modules-" + uname, "linux-base-" + uname} {
			if !slices.Contains(got, want) {
				t.Errorf("%s: %s missing from %v", qs[i], want, got)
			}
		}
		for _, d := range a.Deps {
			if d.Name == "linux-base" && d.Suite != "trixie-backports" {
				t.Errorf("%s: linux-base from %s", qs[i], d.Suite)
			}
		}
	}
}
