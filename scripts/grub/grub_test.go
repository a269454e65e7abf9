package grub

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEl7(t *testing.T) {
	entries, err := Parse(readTestdata(t, "el7-grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Fatalf("got %d entries, want 5: %+v", len(entries), entries)
	}
	want := []string{"6.0.0-1.el7.elrepo.x86_64", "5.19.0-1.el7.elrepo.x86_64", "5.4.215-1.el7.elrepo.x86_64", "3.10.0-1160.el7.x86_64"}
	if got := Kernels(entries); !slices.Equal(got, want) {
		t.Errorf("Kernels = %v, want %v", got, want)
	}
	if !entries[4].Recovery() {
		t.Errorf("rescue entry %q not seen as recovery", entries[4].Title)
	}
	if entries[1].Title != "CentOS Linux (5.19.0-1.el7.elrepo.x86_64) 7 (Core)" || len(entries[1].Parents) != 0 {
		t.Errorf("entry 1 = %+v", entries[1])
	}
}

func TestEl7Default(t *testing.T) {
	cfg := readTestdata(t, "el7-grub.cfg")
	for unameR, want := range map[string]string{
		"6.0.0-1.el7.elrepo.x86_64":   "0",
		"5.4.215-1.el7.elrepo.x86_64": "2",
		"3.10.0-1160.el7.x86_64":      "3",
	} {
		got, err := El7Default(cfg, unameR)
		if err != nil {
			t.Errorf("%s: %v", unameR, err)
			continue
		}
		if got != want {
			t.Errorf("El7Default(%s) = %q, want %q", unameR, got, want)
		}
	}
}

func TestMissingKernel(t *testing.T) {
	for _, f := range []string{"el7-grub.cfg", "ubuntu-grub.cfg"} {
		cfg := readTestdata(t, f)
		_, err1 := El7Default(cfg, "5.10.16-1.el7.elrepo.x86_64")
		_, err2 := TitleDefault(cfg, "5.10.16-1.el7.elrepo.x86_64")
		for _, err := range []error{err1, err2} {
			var nf *NotFoundError
			if !errors.As(err, &nf) {
				t.Fatalf("%s: error %v is not a NotFoundError", f, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "kernel 5.10.16-1.el7.elrepo.x86_64 not found in grub, consider destroying and rebuilding the VM") {
				t.Errorf("%s: message %q", f, msg)
			}
		}
	}
}

func TestParseUbuntu(t *testing.T) {
	entries, err := Parse(readTestdata(t, "ubuntu-grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	// Ubuntu, 4 kernels x (normal, recovery) in the submenu, 2 memtest.
	if len(entries) != 11 {
		t.Fatalf("got %d entries, want 11", len(entries))
	}
	first := entries[0]
	if first.Title != "Ubuntu" || first.IndexPath() != "0" || first.Kernel != "5.19.17-051917-generic" {
		t.Errorf("first entry = %+v", first)
	}
	sub := entries[3]
	if sub.TitlePath() != "Advanced options for Ubuntu>Ubuntu, with Linux 5.9.16-050916-generic" || sub.IndexPath() != "1>2" {
		t.Errorf("submenu entry = %+v (%s, %s)", sub, sub.TitlePath(), sub.IndexPath())
	}
	if !entries[4].Recovery() || entries[3].Recovery() {
		t.Errorf("recovery detection wrong: %q %q", entries[3].Title, entries[4].Title)
	}
	memtest := entries[9]
	if memtest.Title != "Memory test (memtest86+)" || memtest.Kernel != "" || memtest.IndexPath() != "2" {
		t.Errorf("memtest entry = %+v", memtest)
	}
}

func TestTitleDefaultUbuntu(t *testing.T) {
	cfg := readTestdata(t, "ubuntu-grub.cfg")
	for _, k := range []string{"5.19.17-051917-generic", "5.4.0-150-generic", "4.16.18-041618-generic"} {
		got, err := TitleDefault(cfg, k)
		if err != nil {
			t.Fatal(err)
		}
		// The newest kernel is also booted by the top-level "Ubuntu"
		// entry; the submenu entry must win because it names the kernel.
		if want := "Advanced options for Ubuntu>Ubuntu, with Linux " + k; got != want {
			t.Errorf("TitleDefault(%s) = %q, want %q", k, got, want)
		}
	}
}

func TestParseQuotingAndNesting(t *testing.T) {
	cfg := `
submenu "Old \"kernels\"" {
	menuentry 'It'\''s 6.1' --id x {
		linux /usr/lib/modules/6.1.0-50-cloud-amd64/vmlinuz root=/dev/vda1
	}
	submenu 'Deeper' {
		menuentry Plain\ title {
			linux /vmlinuz-7.3.4+deb13-cloud-amd64
		}
	}
}
menuentry 'Last' { # a comment
	linux /boot/vmlinuz-5.10.0-32-cloud-amd64
}
`
	entries, err := Parse([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(entries))
	for i, e := range entries {
		got[i] = e.TitlePath() + " | " + e.IndexPath() + " | " + e.Kernel
	}
	want := []string{
		`Old "kernels">It's 6.1 | 0>0 | 6.1.0-50-cloud-amd64`,
		`Old "kernels">Deeper>Plain title | 0>1>0 | 7.3.4+deb13-cloud-amd64`,
		`Last | 1 | 5.10.0-32-cloud-amd64`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	for name, cfg := range map[string]string{
		"unclosed": "menuentry 'a' {\n linux /vmlinuz-1\n",
		"extra":    "menuentry 'a' {\n}\n}\n",
		"quote":    "menuentry 'a {\n}\n",
	} {
		if _, err := Parse([]byte(cfg)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: err = %v, want an error naming the line", name, err)
		}
	}
}

func TestSetVar(t *testing.T) {
	in := readTestdata(t, "ubuntu-default-grub")
	value := "Advanced options for Ubuntu>Ubuntu, with Linux 5.4.0-150-generic"
	out := SetVar(in, "GRUB_DEFAULT", value)
	if got, ok := Var(out, "GRUB_DEFAULT"); !ok || got != value {
		t.Errorf("Var after SetVar = %q, %v", got, ok)
	}
	if strings.Count(string(out), "GRUB_DEFAULT=") != 1 {
		t.Errorf("GRUB_DEFAULT assigned more than once:\n%s", out)
	}
	if !strings.Contains(string(out), "\nGRUB_DEFAULT=\""+value+"\"\n") {
		t.Errorf("GRUB_DEFAULT line not double-quoted in place:\n%s", out)
	}
	// Everything else is kept, comments included.
	if len(strings.Split(string(out), "\n")) != len(strings.Split(string(in), "\n")) {
		t.Errorf("line count changed:\n%s", out)
	}
	if !strings.Contains(string(out), "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`") {
		t.Errorf("other settings changed:\n%s", out)
	}

	// A file without the variable gets it appended; special characters
	// survive a round trip.
	odd := `a "b" $c`
	out = SetVar([]byte("GRUB_TIMEOUT=1"), "GRUB_DEFAULT", odd)
	if got, _ := Var(out, "GRUB_DEFAULT"); got != odd {
		t.Errorf("round trip = %q, want %q", got, odd)
	}
	if got, _ := Var(out, "GRUB_TIMEOUT"); got != "1" {
		t.Errorf("GRUB_TIMEOUT = %q", got)
	}
	if v, _ := Var(readTestdata(t, "el7-default-grub"), "GRUB_DEFAULT"); v != "saved" {
		t.Errorf("el7 GRUB_DEFAULT = %q", v)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(readFuzzSeed(f, "el7-grub.cfg"))
	f.Add(readFuzzSeed(f, "ubuntu-grub.cfg"))
	f.Fuzz(func(t *testing.T, cfg []byte) {
		entries, err := Parse(cfg)
		if err != nil {
			return
		}
		for _, e := range entries {
			if len(e.Index) != len(e.Parents)+1 {
				t.Fatalf("entry %+v: index depth %d, parents %d", e, len(e.Index), len(e.Parents))
			}
		}
	})
}

func readFuzzSeed(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}
