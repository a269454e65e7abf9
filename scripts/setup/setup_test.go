package setup

import (
	"strings"
	"testing"
)

func TestRequirementsFor(t *testing.T) {
	want := map[string][2]string{ // name -> {for Run, for Test}: required, optional or hidden
		"docker engine":   {"required", "required"},
		"cmake":           {"required", "required"},
		"sshd":            {"hidden", "required"},
		"rpmbuild":        {"hidden", "required"},
		"vagrant":         {"optional", "required"},
		"vagrant-libvirt": {"optional", "required"},
		"VirtualBox":      {"optional", "optional"},
		// Needed by grids with arm64 kernels (below) and by the tests.
		"qemu-system-aarch64":  {"optional", "required"},
		"arm64 cross builders": {"optional", "optional"}, // built by the container stage
	}
	level := func(r Requirement, p Purpose) string {
		required, shown := r.For(p, nil)
		switch {
		case !shown:
			return "hidden"
		case required:
			return "required"
		}
		return "optional"
	}
	seen := map[string]bool{}
	for _, r := range Requirements() {
		seen[r.Name] = true
		if r.Check == nil {
			t.Errorf("%s: no check", r.Name)
		}
		if len(r.Packages) == 0 && r.Fix == "" {
			t.Errorf("%s: nothing says how to fix it", r.Name)
		}
		if w, ok := want[r.Name]; ok {
			if got := [2]string{level(r, Run), level(r, Test)}; got != w {
				t.Errorf("%s: run/test %v, want %v", r.Name, got, w)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no requirement %q", name)
		}
	}
	for _, r := range Requirements() {
		amd, _ := r.For(Run, []string{"amd64"})
		arm, _ := r.For(Run, []string{"amd64", "arm64"})
		if r.Name == "qemu-system-aarch64" && (amd || !arm) {
			t.Errorf("%s: required for an amd64 grid %v, for a grid with arm64 %v", r.Name, amd, arm)
		}
		if r.Name == "qemu-system-x86_64" && (!amd || !arm) {
			t.Errorf("%s: required for an amd64 grid %v, for a grid with arm64 %v", r.Name, amd, arm)
		}
	}
}

func TestFixNamesACommand(t *testing.T) {
	for _, r := range Requirements() {
		if f := r.fix(); !strings.Contains(f, "install") && !strings.Contains(f, "go run mage.go ") {
			t.Errorf("%s: fix %q names no command", r.Name, f)
		}
	}
}
