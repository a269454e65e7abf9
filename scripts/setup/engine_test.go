package setup

import (
	"context"
	"io"
	"os"
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
