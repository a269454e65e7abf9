package vm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
)

func testConfig(t *testing.T, provider string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(func(k string) string {
		return map[string]string{"VM_BUILD_DIR": t.TempDir(), "VM_PROVIDER": provider}[k]
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestProvider(t *testing.T) {
	cfg := testConfig(t, "libvirt")
	if p, err := Provider(cfg); err != nil || p.Name() != "libvirt" {
		t.Errorf("explicit provider: %v %v", p, err)
	}
	cfg.Provider = "auto"
	t.Setenv("PATH", t.TempDir())
	if p, err := Provider(cfg); err != nil || p.Name() != "qemu" {
		t.Errorf("auto without vagrant: %v %v", p, err)
	}
	bin := t.TempDir()
	for _, tool := range []string{"vagrant", "VBoxManage"} {
		if err := os.WriteFile(filepath.Join(bin, tool), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	if p, err := Provider(cfg); err != nil || p.Name() != "virtualbox" {
		t.Errorf("auto with vagrant and VirtualBox: %v %v", p, err)
	}
}

// VM_PROVIDER accepts exactly the registered providers, and auto.
func TestProvidersMatchConfig(t *testing.T) {
	names := []string{"auto"}
	for _, p := range Providers {
		names = append(names, p.Name())
	}
	if !slices.Equal(names, config.Providers) {
		t.Errorf("registered providers %v, config.Providers %v", names, config.Providers)
	}
}
