package loop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// agentPackage is the guest agent's import path, relative to the module.
const agentPackage = "./scripts/guest/agent"

// AgentPath is where BuildAgent puts the guest agent of arch: vm/agent,
// or vm/agent-<arch> for a foreign architecture.
func AgentPath(cfg *config.Config, arch string) string {
	if layout.ArchOf(arch) == layout.Amd64 {
		return cfg.Path("vm", "agent")
	}
	return cfg.Path("vm", "agent-"+arch)
}

// BuildAgent compiles the guest agent as a static linux binary for arch
// (Debian's name, which is Go's GOARCH for amd64 and arm64) at AgentPath.
// Every loop builds it again (Go's build cache makes that a fraction of a
// second when nothing changed), so an agent left by an older source never
// runs.
func BuildAgent(ctx context.Context, cfg *config.Config, arch string) (string, error) {
	arch = layout.ArchOf(arch)
	dst := AgentPath(cfg, arch)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := fmt.Sprintf("%s.tmp%d", dst, os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", tmp, agentPackage)
	cmd.Dir = cfg.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guest agent (%s in %s): %w\n%s", agentPackage, cfg.Root, err, b)
	}
	if err := fsx.Rename(tmp, dst); err != nil {
		return "", err
	}
	return dst, nil
}
