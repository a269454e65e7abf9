package initramfs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cavaliergopher/cpio"
)

// read lists an archive with an independent newc reader.
func read(t *testing.T, r io.Reader) map[string]*cpio.Header {
	t.Helper()
	out := map[string]*cpio.Header{}
	cr := cpio.NewReader(r)
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		body, err := io.ReadAll(cr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Mode&cpio.ModeType == cpio.TypeSymlink && h.Linkname == "" {
			h.Linkname = string(body)
		} else if h.Mode.IsRegular() {
			h.Linkname = "data:" + string(body)
		}
		out[h.Name] = h
	}
}

func TestRoundTrip(t *testing.T) {
	host := t.TempDir()
	if err := os.MkdirAll(filepath.Join(host, "lib", "x86_64-linux-gnu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "lib", "x86_64-linux-gnu", "libc.so.6"), []byte("odd-sized content"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/x86_64-linux-gnu/libc.so.6", filepath.Join(host, "lib", "libc.so")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "agent"), []byte("#!agent"), 0o700); err != nil {
		t.Fatal(err)
	}

	a := New()
	a.Bytes("/plan.json", []byte(`{"cells":[]}`), 0o644)
	if err := a.File("/init", filepath.Join(host, "agent")); err != nil {
		t.Fatal(err)
	}
	if err := a.Tree("/roots/0", host); err != nil {
		t.Fatal(err)
	}
	a.CharDev("/dev/console", 5, 1, 0o600)
	a.Dir("/proc", 0o555)
	if err := a.File("/missing", filepath.Join(host, "nope")); err == nil {
		t.Error("File of a missing host file succeeded")
	}

	dst := filepath.Join(t.TempDir(), "initrd.gz")
	if err := a.Write(dst, true); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got := read(t, gz)

	want := map[string]struct {
		mode uint32
		link string
	}{
		"plan.json":                              {cpio.TypeReg | 0o644, `data:{"cells":[]}`},
		"init":                                   {cpio.TypeReg | 0o700, "data:#!agent"},
		"roots":                                  {cpio.TypeDir | 0o755, ""},
		"roots/0/lib/x86_64-linux-gnu/libc.so.6": {cpio.TypeReg | 0o755, "data:odd-sized content"},
		"roots/0/lib/libc.so":                    {cpio.TypeSymlink | 0o777, "/lib/x86_64-linux-gnu/libc.so.6"},
		"dev":                                    {cpio.TypeDir | 0o755, ""},
		"dev/console":                            {cpio.TypeChar | 0o600, ""},
		"proc":                                   {cpio.TypeDir | 0o555, ""},
	}
	for name, w := range want {
		h := got[name]
		if h == nil {
			t.Errorf("%s missing; archive has %d entries", name, len(got))
			continue
		}
		if uint32(h.Mode) != w.mode || h.Linkname != w.link {
			t.Errorf("%s: mode %o link %q, want %o %q", name, h.Mode, h.Linkname, w.mode, w.link)
		}
		if h.ModTime.Unix() != Mtime {
			t.Errorf("%s: mtime %s, want the fixed %d", name, h.ModTime.UTC(), Mtime)
		}
	}
	if _, ok := got["missing"]; ok {
		t.Error("failed File call left an entry")
	}
}

func TestDeterministicAndDevice(t *testing.T) {
	build := func() []byte {
		a := New()
		a.CharDev("dev/console", 5, 1, 0o600)
		a.Bytes("b", []byte("x"), 0o644)
		a.Bytes("a/c", []byte("yz"), 0o644)
		var buf bytes.Buffer
		if _, err := a.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	one, two := build(), build()
	if !bytes.Equal(one, two) {
		t.Error("equal inputs gave different archives")
	}
	if len(one)%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", len(one))
	}
	// rdevmajor and rdevminor are header fields 11 and 12 (hex, 8 wide).
	i := bytes.Index(one, []byte("dev/console\x00"))
	if i < 110 {
		t.Fatalf("dev/console header not found")
	}
	hdr := string(one[i-110 : i])
	if hdr[78:86] != "00000005" || hdr[86:94] != "00000001" {
		t.Errorf("rdev fields %q %q, want 5 1", hdr[78:86], hdr[86:94])
	}
}
