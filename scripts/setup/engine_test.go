package setup

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

func TestPrivateEngineDir(t *testing.T) {
	for _, c := range []struct {
		host, dir string
		ok        bool
	}{
		{"", "", false}, // the client's default: the system engine
		{"unix:///var/run/docker.sock", "", false},
		{"unix:///run/docker.sock", "", false},
		{"tcp://127.0.0.1:2375", "", false},
		{"unix:///run/user/1000/podman.sock", "", false},
		{"unix:///work/build/engine/docker.sock", "/work/build/engine", true},
	} {
		t.Setenv("DOCKER_HOST", c.host)
		_, dir, ok := PrivateEngineDir()
		if dir != c.dir || ok != c.ok {
			t.Errorf("DOCKER_HOST=%q: got %q %v, want %q %v", c.host, dir, ok, c.dir, c.ok)
		}
	}
}

// An engine on another machine is never started here: setup says where to
// start it, and starts nothing on this host.
func TestStartDockerRemote(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("StartDocker asks for root first")
	}
	for _, host := range []string{"tcp://127.0.0.1:1", "ssh://nobody@127.0.0.1:1"} {
		t.Setenv("DOCKER_HOST", host)
		err := StartDocker(context.Background(), ui.New(io.Discard))
		if err == nil || !strings.Contains(err.Error(), "is not on this host: start it there") || !strings.Contains(err.Error(), host) {
			t.Errorf("DOCKER_HOST=%s: %v", host, err)
		}
	}
}

// A second engine gets a bridge of its own, named from its state
// directory within Linux's 15 characters, made once.
func TestEngineBridge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a bridge needs root")
	}
	dir := t.TempDir()
	name, err := EngineBridge(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	if len(name) > 15 || !strings.HasPrefix(name, "tvm") {
		t.Errorf("bridge name %q", name)
	}
	if _, err := net.InterfaceByName(name); err != nil {
		t.Errorf("bridge %s not there: %v", name, err)
	}
	if again, err := EngineBridge(dir); err != nil || again != name {
		t.Errorf("second call: %q, %v; want %q", again, err, name)
	}
	if other, err := EngineBridge(t.TempDir()); err != nil || other == name {
		t.Errorf("another directory's bridge: %q, %v", other, err)
	} else {
		exec.Command("ip", "link", "del", other).Run()
	}
}

// The bridges of stopped engines under a directory go; a running
// engine's (its dockerd.pid names a live process) stays.
func TestRemoveEngineBridges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a bridge needs root")
	}
	root := t.TempDir()
	stopped, running := filepath.Join(root, "e2e", "engine-a"), filepath.Join(root, "e2e", "engine-b")
	var names []string
	for _, dir := range []string{stopped, running} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "dockerd.log"), nil, 0o644)
		name, err := EngineBridge(dir)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	}
	os.WriteFile(filepath.Join(stopped, "dockerd.pid"), []byte("999999999\n"), 0o644)
	os.WriteFile(filepath.Join(running, "dockerd.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	removed, err := RemoveEngineBridges(root)
	if err != nil || len(removed) != 1 || removed[0] != names[0] {
		t.Errorf("removed %v, %v; want %s", removed, err, names[0])
	}
	if _, err := net.InterfaceByName(names[0]); err == nil {
		t.Errorf("bridge %s of a stopped engine still there", names[0])
	}
	if _, err := net.InterfaceByName(names[1]); err != nil {
		t.Errorf("bridge %s of a running engine removed: %v", names[1], err)
	}
}
