package apt

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/apt/apttest"
)

func names(ps []Package) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+"="+p.Version+"@"+p.Suite)
	}
	return out
}

// Meta packages bring the kernel packages they depend on, from the index
// alone, the way Debian's packages are laid out.
func TestResolveDependencies(t *testing.T) {
	a := apttest.New(t)
	add := func(suite, name, version, depends string) {
		a.AddDepends(t, suite, name, version, write(t, name+version), depends)
	}
	// bookworm: the 6.x layout; an image rebuild newer than the one the
	// meta package pins, and a kbuild too old for the headers' constraint.
	add("bookworm", "linux-image-cloud-amd64", "6.1.176-1", "linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)")
	add("bookworm", "linux-image-6.1.0-50-cloud-amd64", "6.1.176-1", "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool")
	add("bookworm", "linux-image-6.1.0-50-cloud-amd64", "6.1.180-1", "kmod")
	add("bookworm", "linux-headers-cloud-amd64", "6.1.176-1", "linux-headers-6.1.0-50-cloud-amd64 (= 6.1.176-1)")
	add("bookworm", "linux-headers-6.1.0-50-cloud-amd64", "6.1.176-1", "linux-headers-6.1.0-50-common (= 6.1.176-1), linux-kbuild-6.1 (>= 6.1.176-1), linux-compiler-gcc-12-x86")
	add("bookworm", "linux-headers-6.1.0-50-common", "6.1.176-1", "")
	add("bookworm", "linux-kbuild-6.1", "6.1.170-1", "")
	add("bookworm", "linux-kbuild-6.1", "6.1.176-1", "libc6 (>= 2.34)")
	add("bookworm", "linux-image-broken-amd64", "1", "linux-image-9.9.9-1-cloud-amd64 (= 1)")
	add("bookworm", "linux-image-cycle-a", "1", "linux-image-cycle-b, linux-image-cycle-a")
	add("bookworm", "linux-image-cycle-b", "1", "linux-image-cycle-a (= 1)")
	// trixie: alternatives, first that exists wins.
	add("trixie", "linux-headers-6.12.9+deb13-cloud-amd64", "6.12.9-1", "linux-base (>= 4.12~), linux-headers-6.12.9+deb13-common (= 6.12.9-1), linux-image-6.12.9+deb13-cloud-amd64-unsigned (= 6.12.9-1) | linux-image-6.12.9+deb13-cloud-amd64 (= 6.12.9-1), linux-kbuild-6.12.9+deb13, gcc-14")
	add("trixie", "linux-headers-6.12.9+deb13-common", "6.12.9-1", "")
	add("trixie", "linux-image-6.12.9+deb13-cloud-amd64", "6.12.9-1", "kmod")
	add("trixie", "linux-kbuild-6.12.9+deb13", "6.12.9-1", "")
	add("trixie", "linux-kbuild-7.3.4+deb13", "7.3.4-1~bpo13+1", "pahole")
	// trixie-backports: the 7.x layout, with a dependency only the base
	// suite has.
	v7 := "7.3.4-1~bpo13+1"
	add("trixie-backports", "linux-image-cloud-amd64", v7, "linux-base-cloud-amd64 (= "+v7+"), linux-image-7.3.4+deb13-cloud-amd64 (= "+v7+"), linux-modules-cloud-amd64 (= "+v7+")")
	add("trixie-backports", "linux-image-7.3.4+deb13-cloud-amd64", v7, "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-amd64 (= "+v7+"), linux-binary-7.3.4+deb13-cloud-amd64 (= "+v7+"), linux-modules-7.3.4+deb13-cloud-amd64 (= "+v7+")")
	add("trixie-backports", "linux-binary-7.3.4+deb13-cloud-amd64", v7, "linux-base-7.3.4+deb13-cloud-amd64 (= "+v7+")")
	add("trixie-backports", "linux-modules-7.3.4+deb13-cloud-amd64", v7, "kmod, linux-base-7.3.4+deb13-cloud-amd64 (= "+v7+")")
	add("trixie-backports", "linux-modules-cloud-amd64", v7, "linux-base-cloud-amd64 (= "+v7+"), linux-modules-7.3.4+deb13-cloud-amd64 (= "+v7+")")
	add("trixie-backports", "linux-base-cloud-amd64", v7, "")
	add("trixie-backports", "linux-base-7.3.4+deb13-cloud-amd64", v7, "")
	add("trixie-backports", "linux-headers-7.3.4+deb13-cloud-amd64", v7, "gcc-14-for-host, linux-kbuild-7.3.4+deb13")
	a.Publish(t)

	r := &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: a.Keyring}
	ans := r.ResolveAll(context.Background(), []Query{
		{Suite: "bookworm", Package: "linux-image-cloud-amd64", Follow: KernelPackage},
		{Suite: "bookworm", Package: "linux-headers-cloud-amd64", Follow: KernelPackage},
		{Suite: "bookworm", Package: "linux-image-6.1.0-50-cloud-amd64", Version: "6.1.176-1", Follow: KernelPackage},
		{Suite: "bookworm", Package: "linux-headers-6.1.0-50-cloud-amd64"},
		{Suite: "trixie", Package: "linux-headers-6.12.9+deb13-cloud-amd64", Follow: KernelPackage},
		{Suite: "trixie", Package: "linux-headers-6.12.9+deb13-cloud-amd64", Follow: HeaderPackage},
		{Suite: "trixie-backports", Package: "linux-image-cloud-amd64", Follow: BootPackage},
		{Suite: "trixie-backports", Package: "linux-headers-7.3.4+deb13-cloud-amd64", Follow: HeaderPackage},
		{Suite: "bookworm", Package: "linux-image-cycle-a", Follow: KernelPackage},
		{Suite: "bookworm", Package: "linux-image-broken-amd64", Follow: KernelPackage},
	})
	want := [][]string{
		{"linux-image-6.1.0-50-cloud-amd64=6.1.176-1@bookworm"},
		{"linux-headers-6.1.0-50-cloud-amd64=6.1.176-1@bookworm", "linux-headers-6.1.0-50-common=6.1.176-1@bookworm", "linux-kbuild-6.1=6.1.176-1@bookworm"},
		nil, // an image depends on no other kernel package
		nil, // no Follow: the package alone
		{"linux-headers-6.12.9+deb13-common=6.12.9-1@trixie", "linux-image-6.12.9+deb13-cloud-amd64=6.12.9-1@trixie", "linux-kbuild-6.12.9+deb13=6.12.9-1@trixie"},
		{"linux-headers-6.12.9+deb13-common=6.12.9-1@trixie", "linux-kbuild-6.12.9+deb13=6.12.9-1@trixie"},
		{"linux-base-cloud-amd64=" + v7 + "@trixie-backports", "linux-image-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports", "linux-base-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports",
			"linux-binary-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports", "linux-modules-7.3.4+deb13-cloud-amd64=" + v7 + "@trixie-backports", "linux-modules-cloud-amd64=" + v7 + "@trixie-backports"},
		{"linux-kbuild-7.3.4+deb13=" + v7 + "@trixie"},
		{"linux-image-cycle-b=1@bookworm"},
	}
	for i, w := range want {
		if ans[i].Err != nil {
			t.Errorf("query %d: %v", i, ans[i].Err)
			continue
		}
		if got := names(ans[i].Deps); !slices.Equal(got, w) {
			t.Errorf("query %d (%s): deps\n got %v\nwant %v", i, ans[i].Package.Name, got, w)
		}
		for _, p := range ans[i].Deps {
			if len(p.SHA256) != 64 || p.Size == 0 || !strings.HasPrefix(p.URL, a.Mirror+"/pool/") {
				t.Errorf("query %d: dependency %s lacks what a verified download needs: %+v", i, p.Name, p)
			}
		}
	}
	if p := ans[0].Package; p.Name != "linux-image-cloud-amd64" || p.Version != "6.1.176-1" {
		t.Errorf("meta package itself: %+v", p)
	}
	err := ans[9].Err
	for _, s := range []string{"apt:bookworm/linux-image-broken-amd64", "linux-image-9.9.9-1-cloud-amd64 (= 1)", "not in suite bookworm"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("missing dependency: want %q in %v", s, err)
		}
	}
}

func TestParseDepends(t *testing.T) {
	got, err := parseDepends("a (>= 1.0~), b:any | c (=2) [amd64], d (<< 3) <!nocheck>,, e(<=4)")
	if err != nil {
		t.Fatal(err)
	}
	var flat []string
	for _, alts := range got {
		var s []string
		for _, d := range alts {
			s = append(s, d.String())
		}
		flat = append(flat, strings.Join(s, " | "))
	}
	if w := "a (>= 1.0~); b | c (= 2); d (<< 3); e (<= 4)"; strings.Join(flat, "; ") != w {
		t.Errorf("got %q, want %q", strings.Join(flat, "; "), w)
	}
	if _, err := parseDepends("a (>= 1"); err == nil {
		t.Error("unclosed constraint accepted")
	}
	for _, c := range []struct {
		d    dep
		v    string
		want bool
	}{
		{dep{"x", "=", "1-1"}, "1-1", true}, {dep{"x", "=", "1-1"}, "1-2", false},
		{dep{"x", ">=", "6.1.176-1"}, "6.1.170-1", false}, {dep{"x", ">=", "6.1.176-1"}, "6.1.176-1", true},
		{dep{"x", "<<", "2"}, "2", false}, {dep{"x", ">>", "2"}, "2.1", true}, {dep{"x", "", ""}, "0", true},
	} {
		if c.d.satisfies(c.v) != c.want {
			t.Errorf("%s satisfied by %s: want %v", c.d, c.v, c.want)
		}
	}
	for name, want := range map[string]bool{
		"linux-image-cloud-amd64": true, "linux-headers-6.1.0-50-common": true, "linux-kbuild-6.1": true,
		"linux-binary-7.3.4+deb13-cloud-amd64": true, "linux-modules-cloud-amd64": true,
		"linux-base-7.3.4+deb13-cloud-amd64": true, "linux-base-cloud-amd64": true,
		"kmod": false, "initramfs-tools": false, "linux-base": false, "linux-baseline": false,
		"linux-compiler-gcc-12-x86": false, "gcc-14": false,
	} {
		if KernelPackage(name) != want {
			t.Errorf("KernelPackage(%s) = %v", name, !want)
		}
	}
	if BaseSuite("trixie-backports") != "trixie" || BaseSuite("bookworm-security") != "bookworm" || BaseSuite("bookworm") != "" {
		t.Error("BaseSuite")
	}
}
