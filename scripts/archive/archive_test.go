package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"

	"github.com/falcosecurity/libs/test/vm/scripts/archive/archivetest"
)

// entry is one member of a crafted package.
type entry = archivetest.Entry

var mtime = archivetest.MTime

func compress(t testing.TB, data []byte, kind string) []byte {
	return archivetest.Compress(t, data, kind)
}

// writeDeb writes a .deb with the given data.tar compression ("" = none).
func writeDeb(t testing.TB, dir, name, comp string, entries []entry) string {
	p := filepath.Join(dir, name)
	archivetest.WriteDeb(t, p, comp, entries)
	return p
}

func rpmHeaderBytes(tags map[int32]string) []byte {
	var index, store bytes.Buffer
	for tag, val := range tags {
		binary.Write(&index, binary.BigEndian, rpmIndexEntry{Tag: tag, Type: typeString, Offset: int32(store.Len()), Count: 1})
		store.WriteString(val + "\x00")
	}
	var b bytes.Buffer
	b.Write(rpmHeaderMagic)
	b.Write([]byte{0, 0, 0, 0})
	binary.Write(&b, binary.BigEndian, uint32(len(tags)))
	binary.Write(&b, binary.BigEndian, uint32(store.Len()))
	b.Write(index.Bytes())
	b.Write(store.Bytes())
	return b.Bytes()
}

// writeRPM writes a minimal rpm (lead, signature, header, cpio payload)
// whose layout follows the rpm file format.
func writeRPM(t testing.TB, dir, name, comp string, entries []entry) string {
	t.Helper()
	var payload bytes.Buffer
	cw := cpio.NewWriter(&payload)
	for i, e := range entries {
		h := &cpio.Header{Name: e.Name, Mode: cpio.TypeReg | 0o644, Size: int64(len(e.Body)), ModTime: mtime, Inode: int64(i + 1), Links: 1}
		body := e.Body
		switch {
		case e.Dir:
			h.Mode, h.Size = cpio.TypeDir|0o755, 0
		case e.Link != "":
			h.Mode, h.Size, body = cpio.TypeSymlink|0o777, int64(len(e.Link)), e.Link
		}
		if err := cw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		cw.Write([]byte(body))
	}
	cw.Close()
	var b bytes.Buffer
	lead := make([]byte, rpmLeadSize)
	copy(lead, rpmLeadMagic)
	b.Write(lead)
	sig := rpmHeaderBytes(map[int32]string{1000: "sha"})
	b.Write(sig)
	b.Write(make([]byte, (8-len(sig)%8)%8))
	b.Write(rpmHeaderBytes(map[int32]string{tagPayloadFormat: "cpio", tagPayloadCompressor: comp, 1000: "kernel-devel"}))
	b.Write(compress(t, payload.Bytes(), comp))
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var goodEntries = []entry{
	{Name: "./usr/", Dir: true},
	{Name: "./usr/src/", Dir: true},
	{Name: "./usr/src/linux-headers-1.0-common/Makefile", Body: "include stuff\n"},
	{Name: "./usr/src/linux-headers-1.0-flavour/.config", Body: "CONFIG_X=y\n"},
	{Name: "./usr/src/linux-headers-1.0-flavour/scripts", Link: "../../lib/linux-kbuild-1.0/scripts"},
	{Name: "./usr/src/linux-headers-1.0-flavour/abs", Link: "/usr/src/linux-headers-1.0-common"},
	{Name: "./usr/lib/linux-kbuild-1.0/scripts/fixdep", Body: "ELF"},
}

func checkGood(t *testing.T, dest string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dest, "usr/src/linux-headers-1.0-common/Makefile"))
	if err != nil || string(b) != "include stuff\n" {
		t.Fatalf("Makefile: %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dest, "usr/src/linux-headers-1.0-flavour/.config"))
	if err != nil || !fi.ModTime().Equal(mtime) {
		t.Fatalf(".config mtime not kept: %v %v", fi, err)
	}
	for link, want := range map[string]string{
		"usr/src/linux-headers-1.0-flavour/scripts": "../../lib/linux-kbuild-1.0/scripts",
		"usr/src/linux-headers-1.0-flavour/abs":     "/usr/src/linux-headers-1.0-common",
	} {
		if got, err := os.Readlink(filepath.Join(dest, link)); err != nil || got != want {
			t.Errorf("symlink %s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dest, "usr/src/linux-headers-1.0-flavour/scripts/fixdep")); err != nil || string(b) != "ELF" {
		t.Errorf("relative symlink does not resolve inside the tree: %q %v", b, err)
	}
}

func TestExtractDebCompressions(t *testing.T) {
	for _, comp := range []string{"", "gz", "xz", "zst"} {
		t.Run("data.tar."+comp, func(t *testing.T) {
			dir := t.TempDir()
			pkg := writeDeb(t, dir, "p.deb", comp, goodEntries)
			dest := filepath.Join(dir, "root")
			os.Mkdir(dest, 0o755)
			if err := Extract(context.Background(), pkg, dest); err != nil {
				t.Fatal(err)
			}
			checkGood(t, dest)
		})
	}
}

func TestExtractRPMCompressions(t *testing.T) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			pkg := writeRPM(t, dir, "p.rpm", comp, goodEntries)
			dest := filepath.Join(dir, "root")
			os.Mkdir(dest, 0o755)
			if err := Extract(context.Background(), pkg, dest); err != nil {
				t.Fatal(err)
			}
			checkGood(t, dest)
		})
	}
}

// Every escape attempt must be refused with an error naming package and
// entry, and must leave nothing outside the destination.
func TestExtractRejectsEscapes(t *testing.T) {
	cases := map[string]struct {
		entries []entry
		entry   string
	}{
		"dotdot":        {[]entry{{Name: "./usr/../../evil", Body: "x"}}, "./usr/../../evil"},
		"absolute name": {[]entry{{Name: "/tmp/evil", Body: "x"}}, "/tmp/evil"},
		"through absolute symlink": {[]entry{
			{Name: "./usr/escape", Link: "OUTSIDE"},
			{Name: "./usr/escape/evil", Body: "x"},
		}, "./usr/escape/evil"},
		"through relative symlink": {[]entry{
			{Name: "./up", Link: "../.."},
			{Name: "./up/evil", Body: "x"},
		}, "./up/evil"},
		"hard link out": {[]entry{{Name: "./h", Hard: true, Link: "../../etc/passwd"}}, "./h"},
	}
	for _, format := range []string{"deb", "rpm"} {
		for name, c := range cases {
			if format == "rpm" && strings.HasPrefix(name, "hard") {
				continue // cpio expresses hard links by inode, not by name
			}
			t.Run(format+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				outside := filepath.Join(dir, "outside")
				os.Mkdir(outside, 0o755)
				entries := make([]entry, len(c.entries))
				for i, e := range c.entries {
					e.Link = strings.ReplaceAll(e.Link, "OUTSIDE", outside)
					entries[i] = e
				}
				var pkg string
				if format == "deb" {
					pkg = writeDeb(t, dir, "evil.deb", "gz", entries)
				} else {
					pkg = writeRPM(t, dir, "evil.rpm", "gzip", entries)
				}
				dest := filepath.Join(dir, "a", "b", "root")
				os.MkdirAll(dest, 0o755)
				err := Extract(context.Background(), pkg, dest)
				var ee *EntryError
				if !errors.As(err, &ee) || !errors.Is(err, ErrUnsafe) {
					t.Fatalf("want an unsafe-entry error, got %v", err)
				}
				if ee.Entry != c.entry || !strings.Contains(err.Error(), filepath.Base(pkg)) {
					t.Errorf("error %q should name package %s and entry %s", err, filepath.Base(pkg), c.entry)
				}
				for _, p := range []string{filepath.Join(outside, "evil"), filepath.Join(dir, "evil"), filepath.Join(dir, "a", "evil")} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s was written outside the destination", p)
					}
				}
			})
		}
	}
}

func TestExtractRejectsNonPackages(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.deb")
	os.WriteFile(p, []byte("<html>not found</html>"), 0o644)
	if err := Extract(context.Background(), p, dir); err == nil || !strings.Contains(err.Error(), "x.deb") {
		t.Fatalf("want an error naming x.deb, got %v", err)
	}
	// A deb cut in the middle of its data member fails, not half-succeeds.
	full := writeDeb(t, dir, "full.deb", "gz", goodEntries)
	b, _ := os.ReadFile(full)
	cut := filepath.Join(dir, "cut.deb")
	os.WriteFile(cut, b[:len(b)-40], 0o644)
	dest := filepath.Join(dir, "root")
	os.Mkdir(dest, 0o755)
	if err := Extract(context.Background(), cut, dest); err == nil {
		t.Fatal("a truncated .deb extracted without error")
	}
}

func TestExtractStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	pkg := writeDeb(t, dir, "p.deb", "gz", goodEntries)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Extract(ctx, pkg, dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// A real rpm, built by rpmbuild, with an el7-style kernel-devel layout.
func TestExtractRealRPM(t *testing.T) {
	for _, payload := range []string{"gzip", "xz", "zstd"} {
		t.Run(payload, func(t *testing.T) {
			src := t.TempDir()
			kdir := filepath.Join(src, "usr/src/kernels/3.10.0-1160.el7.x86_64")
			os.MkdirAll(filepath.Join(kdir, "include/generated"), 0o755)
			os.WriteFile(filepath.Join(kdir, "Makefile"), []byte("VERSION = 3\n"), 0o644)
			os.WriteFile(filepath.Join(kdir, ".config"), []byte("CONFIG_X=y\n"), 0o644)
			os.Symlink("Makefile", filepath.Join(kdir, "Makefile.link"))
			os.MkdirAll(filepath.Join(src, "lib/modules/3.10.0-1160.el7.x86_64"), 0o755)
			os.Symlink("/usr/src/kernels/3.10.0-1160.el7.x86_64", filepath.Join(src, "lib/modules/3.10.0-1160.el7.x86_64/build"))
			rpm := archivetest.BuildRPM(t, src, "kernel-devel", "3.10.0", "1160.el7", payload)
			dest := t.TempDir()
			if err := Extract(context.Background(), rpm, dest); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dest, "usr/src/kernels/3.10.0-1160.el7.x86_64/Makefile.link"))
			if err != nil || string(b) != "VERSION = 3\n" {
				t.Errorf("Makefile via relative link: %q %v", b, err)
			}
			if l, err := os.Readlink(filepath.Join(dest, "lib/modules/3.10.0-1160.el7.x86_64/build")); err != nil || l != "/usr/src/kernels/3.10.0-1160.el7.x86_64" {
				t.Errorf("absolute build link: %q %v", l, err)
			}
		})
	}
}
