package loop

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Seed is the seed of a loop's kernel order: VM_SEED, or one picked now
// (printed by the loop, so that VM_SEED can repeat it).
func Seed(cfg *config.Config) int64 {
	if cfg.Seed != 0 {
		return cfg.Seed
	}
	return time.Now().UnixNano() & (1<<62 - 1)
}

// Shuffle puts xs in the order seed gives, the same for every provider.
func Shuffle[T any](xs []T, seed int64) {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>32|1))
	r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
}

// LogPath is where a cell's test log goes (layout.TestLog).
func LogPath(cfg *config.Config, c results.Cell) string {
	return cfg.Path(layout.TestLog(c.Compiler, c.Kernel, c.Driver))
}

// Outcome is a cell's final outcome in one loop, for its summary.
type Outcome struct {
	Cell     results.Cell
	Outcome  guest.Outcome
	Log      string // relative to the build dir
	Attempts int
	// Seconds, Load and Capture are the final attempt's (see Attempt).
	Seconds, Load, Capture float64
}

// Summary collects the final outcomes of a loop's cells; it is safe for
// concurrent use by the loop's workers.
type Summary struct {
	mu   sync.Mutex
	list []Outcome
}

// Add records one cell's final outcome.
func (s *Summary) Add(o Outcome) {
	s.mu.Lock()
	s.list = append(s.list, o)
	s.mu.Unlock()
}

// Len is the number of cells recorded.
func (s *Summary) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list)
}

// List is the outcomes recorded, in the order they came.
func (s *Summary) List() []Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list)
}

// outcomeOrder is the order of the summary's counts: pass first, then the
// failures by kind, skips, errors; an outcome not listed comes after them.
var outcomeOrder = []string{"pass", "fail/load", "fail/events", "fail/warn", "fail/exit", "fail/panic", "skip", "error"}

// Print prints one line of counts for the loop and one line per cell that
// did not pass.
func (s *Summary) Print(out *ui.Printer, wall time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]int{}
	var bad []Outcome
	for _, o := range s.list {
		counts[o.Outcome.String()]++
		if o.Outcome.Status != guest.Pass {
			bad = append(bad, o)
		}
	}
	kinds := slices.Clone(outcomeOrder)
	var other []string
	for k := range counts {
		if !slices.Contains(kinds, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	var parts []string
	for _, k := range append(kinds, other...) {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	line := fmt.Sprintf("test: %d cells in %s", len(s.list), wall.Round(time.Second))
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	out.Linef("%s", line)
	for _, o := range bad {
		out.Linef("  %s %s: %s (log %s)", o.Outcome, o.Cell.ID(), o.Outcome.Reason, filepath.ToSlash(o.Log))
	}
}
