package apt

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/apt/apttest"
)

// indexArchive serves the real Packages stanzas of testdata/index (see its
// README) for the given suites.
func indexArchive(t *testing.T, suites ...string) *apttest.Archive {
	t.Helper()
	a := apttest.New(t)
	for _, s := range suites {
		b, err := os.ReadFile(filepath.Join("testdata", "index", s))
		if err != nil {
			t.Fatal(err)
		}
		a.AddStanzas(t, s, string(b))
	}
	a.Publish(t)
	return a
}

// What the grid's meta packages bring, on Debian's real dependency data
// for the four packagings the default grid follows: 5.10 (bullseye), 6.1
// (bookworm) and 6.12 (trixie) ship the kernel in the image package alone;
// 7.x (trixie-backports) splits it into image, binary, modules and the
// per-kernel base files, with meta packages for each, and pre-depends on a
// linux-base newer than trixie's.
func TestResolveDebianPackagings(t *testing.T) {
	a := indexArchive(t, "bullseye", "bookworm", "trixie", "trixie-backports")
	r := &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: a.Keyring}
	const v7 = "7.3.4-1~bpo13+1"
	for _, tc := range []struct {
		q    Query
		want []string
	}{
		{Query{Suite: "bullseye", Package: "linux-image-cloud-amd64", Follow: BootPackage},
			[]string{"linux-image-5.10.0-32-cloud-amd64=5.10.223-1@bullseye"}},
		{Query{Suite: "bullseye", Package: "linux-headers-cloud-amd64", Follow: HeaderPackage},
			[]string{"linux-headers-5.10.0-32-cloud-amd64=5.10.223-1@bullseye", "linux-headers-5.10.0-32-common=5.10.223-1@bullseye", "linux-kbuild-5.10=5.10.223-1@bullseye"}},
		{Query{Suite: "bookworm", Package: "linux-image-cloud-amd64", Follow: BootPackage},
			[]string{"linux-image-6.1.0-50-cloud-amd64=6.1.176-1@bookworm"}},
		{Query{Suite: "bookworm", Package: "linux-headers-cloud-amd64", Follow: HeaderPackage},
			[]string{"linux-headers-6.1.0-50-cloud-amd64=6.1.176-1@bookworm", "linux-headers-6.1.0-50-common=6.1.176-1@bookworm", "linux-kbuild-6.1=6.1.176-1@bookworm"}},
		// A base suite brings no helper, even one the headers name
		// (linux-image-... | ...-unsigned is not a header package).
		{Query{Suite: "trixie", Package: "linux-image-cloud-amd64", Follow: BootPackage},
			[]string{"linux-image-6.12.117+deb13-cloud-amd64=6.12.117-1@trixie"}},
		{Query{Suite: "trixie", Package: "linux-headers-cloud-amd64", Follow: HeaderPackage},
			[]string{"linux-headers-6.12.117+deb13-cloud-amd64=6.12.117-1@trixie", "linux-headers-6.12.117+deb13-common=6.12.117-1@trixie", "linux-kbuild-6.12.117+deb13=6.12.117-1@trixie"}},
		// The 7.x image: every package of its family it depends on, at the
		// exact version (7.2.12's image is in the index too), and
		// trixie-backports' linux-base, because the image pre-depends on
		// linux-base (>= 4.17~) and trixie has 4.12.1. kmod, dracut and
		// initramfs-tools are satisfied by trixie and stay out.
		{Query{Suite: "trixie-backports", Package: "linux-image-cloud-amd64", Follow: BootPackage},
			[]string{
				"linux-base-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-base-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-image-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-binary-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-modules-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-base=4.17~bpo13+1@trixie-backports",
				"linux-modules-cloud-amd64=" + v7 + "@trixie-backports",
			}},
		// Named by its ABI, the image brings the same packages but the
		// meta ones.
		{Query{Suite: "trixie-backports", Package: "linux-image-7.3.4+deb13-cloud-amd64", Follow: BootPackage},
			[]string{
				"linux-base-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-binary-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-modules-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-base=4.17~bpo13+1@trixie-backports",
			}},
		// The 7.x headers want linux-base (>= 4.12~), which trixie
		// satisfies, and the per-kernel base files, which only
		// trixie-backports has.
		{Query{Suite: "trixie-backports", Package: "linux-headers-cloud-amd64", Follow: HeaderPackage},
			[]string{
				"linux-base-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-base-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-headers-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
				"linux-headers-7.3.4+deb13-common=" + v7 + "@trixie-backports",
				"linux-kbuild-7.3.4+deb13=" + v7 + "@trixie-backports",
			}},
	} {
		ans := r.ResolveAll(context.Background(), []Query{tc.q})[0]
		if ans.Err != nil {
			t.Errorf("%s: %v", tc.q, ans.Err)
			continue
		}
		if got := names(ans.Deps); !slices.Equal(got, tc.want) {
			t.Errorf("%s: deps\n got %v\nwant %v", tc.q, got, tc.want)
		}
	}
}

// The 7.x image's linux-base comes from trixie-backports only because
// trixie cannot satisfy it: without trixie in the picture (its index
// unreadable), nothing is known about the base system and no helper is
// brought, while the kernel's own packages still are.
func TestResolveHelperNeedsBaseSuite(t *testing.T) {
	a := indexArchive(t, "trixie-backports")
	r := &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: a.Keyring}
	ans := r.ResolveAll(context.Background(), []Query{{Suite: "trixie-backports", Package: "linux-image-7.3.4+deb13-cloud-amd64", Follow: BootPackage}})[0]
	if ans.Err != nil {
		t.Fatal(ans.Err)
	}
	got := names(ans.Deps)
	if slices.ContainsFunc(got, func(s string) bool { return s == "linux-base=4.17~bpo13+1@trixie-backports" }) || len(got) != 3 {
		t.Errorf("deps %v, want the three kernel packages and no helper", got)
	}
}
