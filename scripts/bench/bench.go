// Package bench measures the pipeline against its limits in one run: cold
// and warm compile grids, the boot floor against a test cell, the VM loop
// at one and at N jobs, and peak memory. Every figure is a ratio or a time
// measured in the same run, so noisy shared machines still compare.
package bench

import (
	"context"
	"errors"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Run measures the pipeline and writes build/bench.json.
func Run(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	return errors.New("bench: not implemented yet")
}
