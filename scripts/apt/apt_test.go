package apt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/apt/apttest"
)

func TestHostSources(t *testing.T) {
	etc := t.TempDir()
	os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(etc, "sources.list"), []byte(`# comment
deb-src http://src.example.invalid/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://one.example.invalid/debian/ bookworm main contrib # trailing
deb http://one.example.invalid/debian-security bookworm-security main
`), 0o644)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "debian.sources"), []byte(`Types: deb deb-src
# a comment
URIs: http://one.example.invalid/debian
Suites: bookworm-updates bookworm-backports
Components: main

Types: deb
URIs: http://off.example.invalid/debian
Suites: sid
Enabled: no
`), 0o644)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "other.list.disabled"), []byte("deb http://no.example.invalid/x y main\n"), 0o644)
	src, err := HostSources(etc)
	if err != nil {
		t.Fatal(err)
	}
	if len(src) != 3 {
		t.Fatalf("got %d sources, want 3: %+v", len(src), src)
	}
	mirror, suites, err := Mirror(src)
	if err != nil || mirror != "http://one.example.invalid/debian" {
		t.Fatalf("mirror %q, %v", mirror, err)
	}
	if strings.Join(suites, " ") != "bookworm bookworm-updates bookworm-backports" {
		t.Errorf("default suites %v", suites)
	}
	if SecurityArchive(mirror) != "http://one.example.invalid/debian-security" {
		t.Errorf("security archive %s", SecurityArchive(mirror))
	}
	if _, _, err := Mirror(nil); err == nil || !strings.Contains(err.Error(), "VM_DEBIAN_MIRROR") {
		t.Errorf("no sources: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	less := [][2]string{
		{"6.1.176-1", "6.1.176-2"},
		{"6.1.9-1", "6.1.10-1"},
		{"7.3.4-1~bpo13+1", "7.3.4-1"},
		{"1.0~rc1", "1.0"},
		{"1.0", "1.0+deb12u1"},
		{"1.0a", "1.0b"},
		{"1.0", "1:0.1"},
		{"6.12.117-1", "6.12.117-1+b1"},
		{"1.0-1", "1.0.1-1"},
	}
	for _, p := range less {
		if CompareVersions(p[0], p[1]) >= 0 || CompareVersions(p[1], p[0]) <= 0 {
			t.Errorf("want %s < %s", p[0], p[1])
		}
	}
	if CompareVersions("1.01-1", "1.1-1") != 0 {
		t.Error("1.01-1 should equal 1.1-1")
	}
}

func write(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "p.deb")
	os.WriteFile(p, []byte(body), 0o644)
	return p
}

func TestResolveAll(t *testing.T) {
	a := apttest.New(t)
	a.Add(t, "bookworm", "linux-kbuild-6.1", "6.1.170-1", write(t, "old"))
	a.Add(t, "bookworm", "linux-kbuild-6.1", "6.1.176-1", write(t, "new"))
	a.Add(t, "trixie-backports", "linux-binary-7.3.4+deb13-cloud-amd64", "7.3.4-1~bpo13+1", write(t, "bin"))
	a.Add(t, "bookworm-security", "linux-image-6.1.0-50-cloud-amd64", "6.1.176-1", write(t, "sec"))
	a.Publish(t)
	r := &Resolver{Mirror: a.Mirror, DefaultSuites: []string{"bookworm"}, StateDir: t.TempDir(), Keyring: a.Keyring}
	ans := r.ResolveAll(context.Background(), []Query{
		{Package: "linux-kbuild-6.1"},
		{Suite: "bookworm", Package: "linux-kbuild-6.1", Version: "6.1.170-1"},
		{Suite: "trixie-backports", Package: "linux-binary-7.3.4+deb13-cloud-amd64"},
		{Suite: "bookworm-security", Package: "linux-image-6.1.0-50-cloud-amd64"},
		{Suite: "bookworm", Package: "linux-kbuild-6.1", Version: "9"},
		{Suite: "bookworm", Package: "no-such-package"},
		{Suite: "nosuite", Package: "x"},
	})
	if p := ans[0].Package; ans[0].Err != nil || p.Version != "6.1.176-1" || p.Size != 3 || len(p.SHA256) != 64 || p.URL != a.Mirror+"/"+p.Filename {
		t.Errorf("newest: %+v %v", p, ans[0].Err)
	}
	if p := ans[1].Package; ans[1].Err != nil || p.Version != "6.1.170-1" {
		t.Errorf("pinned: %+v %v", p, ans[1].Err)
	}
	if p := ans[2].Package; ans[2].Err != nil || p.Suite != "trixie-backports" || p.FileName() != "linux-binary-7.3.4+deb13-cloud-amd64_7.3.4-1~bpo13+1_amd64.deb" {
		t.Errorf("backports: %+v %v", p, ans[2].Err)
	}
	if p := ans[3].Package; ans[3].Err != nil || !strings.HasPrefix(p.URL, a.Mirror+"-security/pool/") {
		t.Errorf("security suite must come from <mirror>-security: %+v %v", p, ans[3].Err)
	}
	for i, want := range map[int]string{4: "version 9 is not in suite bookworm", 5: "package no-such-package is not in suite bookworm", 6: "nosuite/InRelease: HTTP 404"} {
		if ans[i].Err == nil || !strings.Contains(ans[i].Err.Error(), want) {
			t.Errorf("query %d: want %q, got %v", i, want, ans[i].Err)
		}
	}
	// A second run reuses the cached Packages.xz: only InRelease is fetched.
	first := r.IndexBytes()
	r2 := &Resolver{Mirror: a.Mirror, DefaultSuites: []string{"bookworm"}, StateDir: r.StateDir, Keyring: a.Keyring}
	if ans := r2.ResolveAll(context.Background(), []Query{{Suite: "bookworm", Package: "linux-kbuild-6.1"}}); ans[0].Err != nil {
		t.Fatal(ans[0].Err)
	}
	inrelease, _ := os.ReadFile(filepath.Join(r.StateDir, "bookworm", "InRelease.verified"))
	if r2.IndexBytes() == 0 || r2.IndexBytes() >= first || r2.IndexBytes() > int64(len(inrelease))+2048 {
		t.Errorf("re-run fetched %d index bytes (first run %d): want only InRelease", r2.IndexBytes(), first)
	}
}

func TestResolveRejectsBadIndexes(t *testing.T) {
	a := apttest.New(t)
	a.Add(t, "bookworm", "linux-kbuild-6.1", "6.1.176-1", write(t, "x"))
	a.Publish(t)
	q := []Query{{Suite: "bookworm", Package: "linux-kbuild-6.1"}}

	// Signed by a key that is not in the keyring.
	other := apttest.New(t)
	r := &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: other.Keyring}
	if ans := r.ResolveAll(context.Background(), q); ans[0].Err == nil || !strings.Contains(ans[0].Err.Error(), "signature") {
		t.Errorf("unknown key: %v", ans[0].Err)
	}
	// Text changed after signing.
	a.Tamper("bookworm")
	r = &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: a.Keyring}
	if ans := r.ResolveAll(context.Background(), q); ans[0].Err == nil || !strings.Contains(ans[0].Err.Error(), "signature") {
		t.Errorf("tampered InRelease: %v", ans[0].Err)
	}
	// Packages.xz that does not match the signed checksum: refused, not cached.
	b := apttest.New(t)
	b.Add(t, "trixie", "linux-kbuild-6.12", "6.12.1-1", write(t, "x"))
	b.Publish(t)
	b.CorruptIndex("trixie")
	r = &Resolver{Mirror: b.Mirror, StateDir: t.TempDir(), Keyring: b.Keyring}
	if ans := r.ResolveAll(context.Background(), []Query{{Suite: "trixie", Package: "linux-kbuild-6.12"}}); ans[0].Err == nil || !strings.Contains(ans[0].Err.Error(), "SHA256 mismatch") {
		t.Errorf("corrupt Packages.xz: %v", ans[0].Err)
	}
	if _, err := os.Stat(filepath.Join(r.StateDir, "trixie", "Packages.xz")); err == nil {
		t.Error("a corrupt index was cached")
	}
	// No keyring at all: refuse rather than trust.
	r = &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: filepath.Join(t.TempDir(), "none.gpg")}
	if ans := r.ResolveAll(context.Background(), q); ans[0].Err == nil || !strings.Contains(ans[0].Err.Error(), "debian-archive-keyring") {
		t.Errorf("missing keyring: %v", ans[0].Err)
	}
}

func TestReleaseChecksum(t *testing.T) {
	rel := []byte("Origin: Debian\nMD5Sum:\n 0123 10 main/binary-amd64/Packages.xz\nSHA256:\n " + strings.Repeat("a", 64) + " 1234 main/binary-amd64/Packages.xz\n " + strings.Repeat("b", 64) + " 99 main/binary-arm64/Packages.xz\n")
	sum, size, err := releaseChecksum(rel, "main/binary-amd64/Packages.xz")
	if err != nil || sum != strings.Repeat("a", 64) || size != 1234 {
		t.Errorf("got %s %d %v", sum, size, err)
	}
	if _, _, err := releaseChecksum(rel, "main/binary-i386/Packages.xz"); err == nil {
		t.Error("missing entry accepted")
	}
}

// An InRelease past its Valid-Until is refused (a stale mirror, or an old
// index replayed), unless expired indexes are accepted on purpose; suites
// without the field never expire.
func TestValidUntil(t *testing.T) {
	a := apttest.New(t)
	a.Add(t, "trixie-backports", "linux-kbuild-7.3.4+deb13", "7.3.4-1~bpo13+1", write(t, "k"))
	a.Add(t, "bookworm", "linux-kbuild-6.1", "6.1.176-1", write(t, "k"))
	until := time.Date(2026, 12, 8, 2, 13, 34, 0, time.UTC)
	a.ValidUntil = map[string]time.Time{"trixie-backports": until}
	a.Publish(t)
	q := []Query{{Suite: "trixie-backports", Package: "linux-kbuild-7.3.4+deb13"}, {Suite: "bookworm", Package: "linux-kbuild-6.1"}}
	at := func(now time.Time, allow bool) (*Resolver, []Answer) {
		r := &Resolver{Mirror: a.Mirror, StateDir: t.TempDir(), Keyring: a.Keyring, AllowExpired: allow, Now: func() time.Time { return now }}
		return r, r.ResolveAll(context.Background(), q)
	}
	if _, ans := at(until.Add(-time.Hour), false); ans[0].Err != nil || ans[1].Err != nil {
		t.Fatalf("valid index refused: %v, %v", ans[0].Err, ans[1].Err)
	}
	_, ans := at(until.Add(time.Hour), false)
	if ans[0].Err == nil || !strings.Contains(ans[0].Err.Error(), "expired on Tue, 08 Dec 2026 02:13:34 UTC") || !strings.Contains(ans[0].Err.Error(), "VM_APT_ALLOW_EXPIRED=1") {
		t.Errorf("expired index: %v", ans[0].Err)
	}
	if ans[1].Err != nil {
		t.Errorf("a suite without Valid-Until expired: %v", ans[1].Err)
	}
	r, ans := at(until.Add(time.Hour), true)
	if ans[0].Err != nil || !strings.Contains(strings.Join(r.Notes(), "\n"), "accepted (VM_APT_ALLOW_EXPIRED=1)") {
		t.Errorf("expired index accepted on purpose: %v, notes %v", ans[0].Err, r.Notes())
	}
}
