package vagrant

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// haltCounter is a VM lifecycle that only counts halts.
type haltCounter struct{ halts int }

func (h *haltCounter) Up(context.Context, string) error { return nil }
func (h *haltCounter) Halt(context.Context, string, bool) error {
	h.halts++
	return nil
}
func (h *haltCounter) SSHConfig(context.Context, string) (sshx.Config, error) {
	return sshx.Config{}, nil
}

// A halt an interrupted loop recorded (it could not see it to its end in
// mage's few seconds after Ctrl-C) is finished by the next loop, once.
func TestFinishPendingHalt(t *testing.T) {
	cfg, err := config.Parse(func(k string) string { return map[string]string{"VM_BUILD_DIR": t.TempDir()}[k] }, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	cli := &haltCounter{}
	out := ui.Discard()
	if err := finishPendingHalt(t.Context(), cfg, cli, out, "ubuntu"); err != nil || cli.halts != 0 {
		t.Fatalf("nothing pending: %v, %d halts", err, cli.halts)
	}
	p := haltPendingPath(cfg, "ubuntu")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("2026-01-01T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := finishPendingHalt(t.Context(), cfg, cli, out, "ubuntu"); err != nil {
			t.Fatal(err)
		}
	}
	if cli.halts != 1 {
		t.Errorf("%d halts, want 1", cli.halts)
	}
	if _, err := os.Stat(p); err == nil {
		t.Errorf("%s still there after the halt", p)
	}
}

// Init destroys the VM before it creates it anew: a halt an interrupted
// loop recorded is then moot, and the loop after init must not halt the
// new VM for it (under emulation, a boot for nothing). A destroy that
// fails leaves the record.
func TestInitDropsPendingHalt(t *testing.T) {
	for _, destroyFails := range []bool{false, true} {
		dir := t.TempDir()
		cfg, err := config.Parse(func(k string) string { return map[string]string{"VM_BUILD_DIR": dir}[k] }, repoRoot(t))
		if err != nil {
			t.Fatal(err)
		}
		// A vagrant whose up fails, so init stops right after the destroy.
		bin := filepath.Join(t.TempDir(), "vagrant")
		exit := 0
		if destroyFails {
			exit = 1
		}
		writeFile(t, bin, fmt.Sprintf("#!/bin/sh\ncase $1 in destroy) exit %d;; up) exit 1;; esac\n", exit))
		cli := &CLI{Bin: bin, Dir: dir, Provider: "libvirt"}
		p := haltPendingPath(cfg, "debian")
		writeFile(t, p, "2026-01-01T00:00:00Z\n")
		if err := initGroup(t.Context(), cfg, ui.Discard(), cli, &kernel.Manifest{}, "debian"); err == nil {
			t.Fatal("init with a vagrant that cannot bring the VM up succeeded")
		}
		_, err = os.Stat(p)
		if kept := err == nil; kept != destroyFails {
			t.Errorf("destroy fails %v: halt record kept %v", destroyFails, kept)
		}
	}
}
