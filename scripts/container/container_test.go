package container

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSpecsListInstalledCompilers(t *testing.T) {
	specs, err := Specs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, ","); got != "bullseye,bullseye-arm64,bookworm,bookworm-arm64,trixie,trixie-arm64,sid" {
		t.Fatalf("got specs %s", got)
	}
	for _, s := range specs {
		if len(s.Compilers) == 0 {
			t.Errorf("%s: no compilers", s.Suite)
		}
		if s.Parent != nil {
			// A cross image promises the aarch64 cross gcc of each gcc
			// it lists (its clangs come from its parent) and builds
			// for its own architecture only.
			if s.Arch != "arm64" || !strings.HasPrefix(s.Tag(), Repository+":"+s.Suite+"-arm64-") || s.Parent.Suite != s.Suite {
				t.Errorf("cross spec %+v", s)
			}
			for _, c := range s.Compilers {
				if v, ok := strings.CutPrefix(c, "gcc-"); ok && !slices.Contains(strings.Fields(string(s.Dockerfile)), "gcc-"+v+"-aarch64-linux-gnu") {
					t.Errorf("%s lists %s but does not install its cross gcc", s.Name(), c)
				}
			}
			// A changed parent changes the cross image's tag.
			p := *s.Parent
			p.Dockerfile = append(slices.Clone(p.Dockerfile), '\n')
			c := s
			c.Parent = &p
			if c.Tag() == s.Tag() {
				t.Errorf("%s: tag does not follow its parent's Dockerfile", s.Name())
			}
			continue
		}
		// What the label promises, the Dockerfile installs: gcc-N with
		// g++-N, clang-N with llvm-N (llc-N for the bpf probe).
		for _, c := range s.Compilers {
			pkgs := []string{c}
			if v, ok := strings.CutPrefix(c, "gcc-"); ok {
				pkgs = append(pkgs, "g++-"+v)
			} else if v, ok := strings.CutPrefix(c, "clang-"); ok {
				pkgs = append(pkgs, "llvm-"+v)
			}
			for _, p := range pkgs {
				if !slices.Contains(strings.Fields(string(s.Dockerfile)), p) {
					t.Errorf("%s.Dockerfile lists %s but does not install %s", s.Suite, c, p)
				}
			}
		}
		if !strings.HasPrefix(s.Tag(), Repository+":"+s.Suite+"-") || len(s.Hash()) != 12 {
			t.Errorf("tag %q", s.Tag())
		}
	}
	// A changed Dockerfile changes the tag; the same one keeps it.
	a := specs[0]
	b := a
	b.Dockerfile = append(slices.Clone(a.Dockerfile), []byte("\n# changed\n")...)
	if a.Tag() == b.Tag() || a.Tag() != specs[0].Tag() {
		t.Errorf("tags: %s %s", a.Tag(), b.Tag())
	}
}

func suites(specs []Spec) string {
	var s []string
	for _, x := range specs {
		s = append(s, x.Suite)
	}
	return strings.Join(s, ",")
}

func TestNeeded(t *testing.T) {
	specs, err := Specs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ compilers, want string }{
		{"gcc-10,gcc-12,gcc-14,clang-14,clang-19", "bullseye,bookworm,trixie"},
		{"gcc-12,gcc-14,clang-14,clang-19", "bookworm,trixie"},
		{"gcc-14", "trixie"},
		{"gcc-15", "sid"},
		{"gcc-7", ""},
	} {
		if got := suites(Needed(specs, strings.Split(c.compilers, ","), nil)); got != c.want {
			t.Errorf("Needed(%s, nil) = %q, want %q", c.compilers, got, c.want)
		}
	}
}

func TestSelect(t *testing.T) {
	images := []Image{
		{Spec: Spec{Suite: "bookworm", Compilers: []string{"gcc-11", "gcc-12", "clang-14"}}, Glibc: "2.36"},
		{Spec: Spec{Suite: "trixie", Compilers: []string{"gcc-12", "gcc-14", "clang-19"}}, Glibc: "2.41"},
	}
	for _, c := range []struct{ compiler, need, suite, reason string }{
		{"gcc-12", "2.34", "bookworm", ""}, // the oldest glibc that runs it
		{"gcc-12", "2.38", "trixie", ""},   // bookworm's glibc is too old
		{"gcc-12", "", "bookworm", ""},     // no host tools to run
		{"gcc-11", "2.38", "", "builder glibc 2.36 < needed 2.38"},
		{"clang-14", "2.38", "", "builder glibc 2.36 < needed 2.38"},
		{"gcc-14", "2.43", "", "builder glibc 2.41 < needed 2.43"},
		{"gcc-7", "2.3", "", "no builder provides gcc-7"},
	} {
		img, reason := Select(images, c.compiler, c.need, "")
		if img.Suite != c.suite || reason != c.reason {
			t.Errorf("Select(%s, %s) = %q, %q; want %q, %q", c.compiler, c.need, img.Suite, reason, c.suite, c.reason)
		}
	}
}

func TestGlibcVersion(t *testing.T) {
	for in, want := range map[string]string{"2.36-9+deb12u10": "2.36", "2.41-12": "2.41", "2.31-13+deb11u11\n": "2.31", "junk": ""} {
		if got := glibcVersion(in); got != want {
			t.Errorf("glibcVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadStream(t *testing.T) {
	var log bytes.Buffer
	id, err := readStream(strings.NewReader(`{"stream":"Step 1/2 : FROM x\n"}
{"stream":" ---\u003e 1234\n"}
{"aux":{"ID":"sha256:abcd"}}
{"stream":"Successfully built abcd\n"}
`), &log)
	if err != nil || id != "abcd" || !strings.Contains(log.String(), "Step 1/2") {
		t.Fatalf("id %q err %v log %q", id, err, log.String())
	}
	_, err = readStream(strings.NewReader(`{"stream":"E: Unable to locate package gcc-99\n"}
{"error":"The command returned a non-zero code: 100"}
`), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "non-zero code: 100") || !strings.Contains(err.Error(), "gcc-99") {
		t.Fatalf("want the error with its context, got %v", err)
	}
}

func TestTarTree(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "usr/lib"), 0o755)
	os.MkdirAll(filepath.Join(dir, "dev/pts"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/lib/a.so"), []byte("elf"), 0o755)
	os.WriteFile(filepath.Join(dir, "dev/null-ish"), []byte("x"), 0o644)
	os.Symlink("usr/lib", filepath.Join(dir, "lib"))
	var buf bytes.Buffer
	if err := tarTree(dir, &buf); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h.Linkname
	}
	for _, w := range []string{"usr/", "usr/lib/", "usr/lib/a.so", "lib", "dev/"} {
		if _, ok := got[w]; !ok {
			t.Errorf("archive lacks %s: %v", w, got)
		}
	}
	if got["lib"] != "usr/lib" {
		t.Errorf("symlink target %q", got["lib"])
	}
	if _, ok := got["dev/null-ish"]; ok {
		t.Errorf("/dev contents archived")
	}
}

func TestConnectUnreachableDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-such-docker.sock"))
	_, err := Connect(t.Context())
	if err == nil {
		t.Fatal("Connect to a missing socket succeeded")
	}
	msg := err.Error()
	for _, w := range []string{"unreachable", "no-such-docker.sock", "dockerd", "systemctl start docker"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q: %s", w, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
}

func TestOnThisHost(t *testing.T) {
	for host, want := range map[string]bool{
		"unix:///var/run/docker.sock":           true,
		"unix:///work/build/engine/docker.sock": true,
		"npipe:////./pipe/docker_engine":        true,
		"tcp://127.0.0.1:2375":                  false, // same machine, but the rule is the scheme
		"tcp://builder.example:2376":            false,
		"ssh://user@builder.example":            false,
		"http://builder.example:2375":           false,
	} {
		if got := OnThisHost(host); got != want {
			t.Errorf("OnThisHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// An ssh:// engine is reached through `ssh HOST docker system dial-stdio`:
// here a stand-in ssh on PATH that records its arguments and runs the
// docker CLI's dial-stdio against the system engine.
func TestConnectSSH(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("needs the docker CLI")
	}
	c, err := net.Dial("unix", "/var/run/docker.sock")
	if err != nil {
		t.Skipf("needs the system engine: %v", err)
	}
	c.Close()
	bin := t.TempDir()
	argsFile := filepath.Join(bin, "args")
	script := "#!/bin/sh\necho \"$@\" >> " + argsFile + "\nexec " + docker + " -H unix:///var/run/docker.sock system dial-stdio\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_HOST", "ssh://builder@build-host.invalid:2222")
	e, err := Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.Remote() || e.Host() != "ssh://builder@build-host.invalid:2222" {
		t.Errorf("Remote() %v, Host() %q", e.Remote(), e.Host())
	}
	if err := e.Alive(t.Context()); err != nil {
		t.Error(err)
	}
	args, _ := os.ReadFile(argsFile)
	if want := "-o ConnectTimeout=30 -l builder -p 2222 -- build-host.invalid docker system dial-stdio\n"; !strings.HasPrefix(string(args), want) {
		t.Errorf("ssh ran with %q, want %q", args, want)
	}

	// ssh's own complaint reaches the error.
	os.WriteFile(filepath.Join(bin, "ssh"), []byte("#!/bin/sh\necho 'ssh: connect to host build-host.invalid port 2222: Connection refused' >&2\nexit 255\n"), 0o755)
	_, err = Connect(t.Context())
	if err == nil || !strings.Contains(err.Error(), "Connection refused") || !strings.Contains(err.Error(), "ssh://builder@build-host.invalid:2222") {
		t.Errorf("unreachable ssh engine: %v", err)
	}
}
