package kernel

import (
	"fmt"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/grid"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// ShardKernels returns the kernels of g this run takes: all of them, or
// with VM_SHARD=K/N those grid.Split deals to shard K, weighing each
// kernel by its cells. The later stages see only these kernels (they read
// the manifest), so a shard fetches, compiles and tests nothing else.
func ShardKernels(cfg *config.Config, g *grid.Grid) ([]grid.Kernel, error) {
	if cfg.Shard.Whole() {
		return g.Kernels, nil
	}
	cells := results.CellsPerKernel(cfg.Compilers, cfg.Drivers)
	ks, err := g.Shard(cfg.Shard.Index, cfg.Shard.Count, func(grid.Kernel) int { return cells })
	if err != nil {
		return nil, fmt.Errorf("VM_SHARD=%s: %w", cfg.Shard, err)
	}
	return ks, nil
}

func kernelNames(ks []grid.Kernel) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.Name
	}
	return out
}
