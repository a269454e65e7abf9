package archivetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildRPM builds a real binary rpm NAME-VERSION-RELEASE.x86_64.rpm with
// rpmbuild from the tree under root (every top directory of root is
// packaged), with the given payload compression ("gzip", "xz" or "zstd").
// It skips the test when rpmbuild is not installed (Debian package rpm).
func BuildRPM(t testing.TB, root, name, version, release, payload string) string {
	t.Helper()
	if _, err := exec.LookPath("rpmbuild"); err != nil {
		t.Skip("rpmbuild not found: install the Debian package rpm to test .rpm extraction")
	}
	io := map[string]string{"gzip": "w9.gzdio", "xz": "w6.xzdio", "zstd": "w19.zstdio"}[payload]
	if io == "" {
		t.Fatalf("payload %q: want gzip, xz or zstd", payload)
	}
	top, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range top {
		files = append(files, "/"+e.Name())
	}
	work := t.TempDir()
	spec := filepath.Join(work, name+".spec")
	text := fmt.Sprintf(`Name: %s
Version: %s
Release: %s
Summary: test package
License: GPL
BuildArch: x86_64
AutoReqProv: no
%%description
test package
%%install
cp -a %s/. %%{buildroot}/
%%files
%s
`, name, version, release, root, strings.Join(files, "\n"))
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmbuild", "-bb",
		"--define", "_topdir "+filepath.Join(work, "top"),
		"--define", "_build_id_links none",
		"--define", "__os_install_post %{nil}",
		"--define", "_binary_payload "+io,
		spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpm := filepath.Join(work, "top", "RPMS", "x86_64", fmt.Sprintf("%s-%s-%s.x86_64.rpm", name, version, release))
	if _, err := os.Stat(rpm); err != nil {
		t.Fatalf("rpmbuild made no %s: %v", rpm, err)
	}
	return rpm
}
