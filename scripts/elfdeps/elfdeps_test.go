package elfdeps

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// hostFile reads a file of the host system (Debian), skipping when absent.
func hostFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Skipf("host file %s: %v", name, err)
	}
	return b
}

// mergedUsrRoot builds a root like Debian's: /lib -> usr/lib, the loader
// reached through an absolute symlink, libc through a soname symlink.
func mergedUsrRoot(t *testing.T) fstest.MapFS {
	libc := hostFile(t, "/usr/lib/x86_64-linux-gnu/libc.so.6")
	ld := hostFile(t, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	tru := hostFile(t, "/usr/bin/true")
	return fstest.MapFS{
		"lib":                            {Data: []byte("usr/lib"), Mode: os.ModeSymlink},
		"lib64":                          {Data: []byte("usr/lib64"), Mode: os.ModeSymlink},
		"usr/lib64/ld-linux-x86-64.so.2": {Data: []byte("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), Mode: os.ModeSymlink},
		"usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": {Data: ld},
		"usr/lib/x86_64-linux-gnu/libc.so.6":            {Data: []byte("libc-2.99.so"), Mode: os.ModeSymlink},
		"usr/lib/x86_64-linux-gnu/libc-2.99.so":         {Data: libc},
		"usr/bin/true":                                  {Data: tru, Mode: 0o755},
	}
}

func TestClosureResolvesInsideRoot(t *testing.T) {
	root := mergedUsrRoot(t)
	got, err := Closure(root, "/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Path: "/usr/bin/true", Real: "/usr/bin/true"},
		{Path: "/lib64/ld-linux-x86-64.so.2", Real: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{Path: "/lib/x86_64-linux-gnu/libc.so.6", Real: "/usr/lib/x86_64-linux-gnu/libc-2.99.so"},
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("closure lacks %+v; got %+v", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("closure has %d files, want %d: %+v", len(got), len(want), got)
	}
}

func TestClosureMissingLibraryNamesIt(t *testing.T) {
	root := mergedUsrRoot(t)
	delete(root, "usr/lib/x86_64-linux-gnu/libc-2.99.so")
	_, err := Closure(root, "/usr/bin/true")
	if err == nil || !strings.Contains(err.Error(), "libc.so.6") || !strings.Contains(err.Error(), "/usr/bin/true") {
		t.Fatalf("want an error naming libc.so.6 and its user, got %v", err)
	}
}

func TestClosureOfHostBinary(t *testing.T) {
	hostFile(t, "/usr/bin/ls")
	got, err := Closure(os.DirFS("/"), "/usr/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, f.Path)
	}
	for _, w := range []string{"/usr/bin/ls", "/lib64/ld-linux-x86-64.so.2", "libc.so.6", "libselinux.so.1"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, w) }) {
			t.Errorf("closure of ls lacks %s: %v", w, names)
		}
	}
}

func TestResolveLoop(t *testing.T) {
	root := fstest.MapFS{
		"a": {Data: []byte("b"), Mode: os.ModeSymlink},
		"b": {Data: []byte("/a"), Mode: os.ModeSymlink},
	}
	if _, err := Resolve(root, "/a"); !errors.Is(err, ErrLoop) {
		t.Fatalf("want ErrLoop, got %v", err)
	}
}

func TestLdSoConf(t *testing.T) {
	root := fstest.MapFS{
		"etc/ld.so.conf":              {Data: []byte("include /etc/ld.so.conf.d/*.conf\n")},
		"etc/ld.so.conf.d/local.conf": {Data: []byte("# local\n/opt/lib\n")},
	}
	if got := ldSoConfDirs(root); !slices.Equal(got, []string{"/opt/lib"}) {
		t.Fatalf("got %v", got)
	}
}

func TestGlibcNeedsOfHostBinary(t *testing.T) {
	f, err := os.Open("/usr/bin/ls")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	got, err := GlibcNeeds(f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "2.2.5") || CompareVersions(MaxVersion(got...), "2.14") < 0 {
		t.Fatalf("ls needs %v; want 2.2.5 and something >= 2.14", got)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"2.36", "2.38", -1}, {"2.38", "2.38", 0}, {"2.4", "2.38", -1}, {"2.3.4", "2.3", 1}, {"3.0", "2.41", 1}} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := MaxVersion("2.2.5", "2.38", "2.14", "2.4"); got != "2.38" {
		t.Errorf("MaxVersion = %s", got)
	}
}

// aarch64Header is the ELF header of an aarch64 shared object, all a
// machine check reads.
func aarch64Header() []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	h[16], h[18] = 3, 183 // ET_DYN, EM_AARCH64
	return h
}

// A multiarch root holds a library under the same name for two machines:
// the closure takes the one of the binary's machine, as the loader does.
func TestClosureSkipsOtherMachines(t *testing.T) {
	root := mergedUsrRoot(t)
	root["usr/lib/aarch64-linux-gnu/libc.so.6"] = &fstest.MapFile{Data: aarch64Header()}
	root["etc/ld.so.conf"] = &fstest.MapFile{Data: []byte("/usr/lib/aarch64-linux-gnu\n")}
	got, err := Closure(root, "/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, File{Path: "/lib/x86_64-linux-gnu/libc.so.6", Real: "/usr/lib/x86_64-linux-gnu/libc-2.99.so"}) {
		t.Errorf("closure took another machine's libc: %+v", got)
	}
	delete(root, "usr/lib/x86_64-linux-gnu/libc.so.6")
	_, err = Closure(root, "/usr/bin/true")
	if err == nil || !strings.Contains(err.Error(), "needs libc.so.6: no x86-64 build of it") {
		t.Errorf("closure without an x86-64 libc: %v", err)
	}
	if m, ok := Machine(strings.NewReader(string(aarch64Header()))); !ok || MachineName(m) != "aarch64" {
		t.Errorf("Machine = %v, %v", m, ok)
	}
}
