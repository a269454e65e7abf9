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
)

// agentPackage is the guest agent's import path, relative to the module.
const agentPackage = "./scripts/guest/agent"

// AgentPath is where BuildAgent puts the guest agent.
func AgentPath(cfg *config.Config) string { return cfg.Path("vm", "agent") }

// BuildAgent compiles the guest agent as a static linux/amd64 binary at
// AgentPath. Every loop builds it again (Go's build cache makes that a
// fraction of a second when nothing changed), so an agent left by an
// older source never runs.
func BuildAgent(ctx context.Context, cfg *config.Config) (string, error) {
	dst := AgentPath(cfg)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := dst + ".tmp"
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", tmp, agentPackage)
	cmd.Dir = cfg.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guest agent (%s in %s): %w\n%s", agentPackage, cfg.Root, err, b)
	}
	if err := fsx.Rename(tmp, dst); err != nil {
		return "", err
	}
	return dst, nil
}
