package report

import (
	"fmt"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Change is one cell whose outcome differs between two runs.
type Change struct {
	Cell     results.Cell // the cell now (for vanished cells: as it was)
	Was, Now State
	// Lost: the cell is missing from a run of the same grid (run.grid is
	// equal), so it was not dropped from the grid, its record was lost.
	Lost bool
}

// Diff is what changed between an earlier run and this one.
type Diff struct {
	Previous    string   // where the earlier results were read from
	Regressions []Change // worked before, does not now
	Fixes       []Change // failed before, works now
	Changed     []Change // any other change of outcome
	New         []Change // cells the earlier run did not have
	Vanished    []Change // cells that left the grid
}

// Compare diffs the outcome of every cell of prev against cur.
//
// A regression is a cell that passed and now is anything else: a test
// failure, an infra error, a skip, not run, not compiled, or missing from
// a run of the same grid. The one exception is a cell that compiled again
// from new inputs and awaits its test: no answer yet, so no regression.
// A cell that compiled (untested) regresses when it no longer compiles
// (fail or skip), cannot be tested (error), or is missing from the same
// grid. A fix is a cell that failed, errored or did not compile and now
// passes, or that did not compile and now does.
func Compare(prev, cur *results.File) *Diff {
	d := &Diff{}
	pg, cg := NewGrid(prev), NewGrid(cur)
	sameGrid := prev.Run.Grid != "" && prev.Run.Grid == cur.Run.Grid
	for _, c := range cur.Sorted() {
		old := pg.Cell(c.Kernel, c.Compiler, c.Driver)
		now := cg.Cell(c.Kernel, c.Compiler, c.Driver)
		if old == nil {
			d.New = append(d.New, Change{Cell: c, Was: StateNone, Now: outcome(now)})
			continue
		}
		ch := Change{Cell: c, Was: outcome(old), Now: outcome(now)}
		switch {
		case ch.Was == ch.Now:
		case regressed(ch.Was, now):
			d.Regressions = append(d.Regressions, ch)
		case fixed(ch.Was, ch.Now):
			d.Fixes = append(d.Fixes, ch)
		default:
			d.Changed = append(d.Changed, ch)
		}
	}
	for _, c := range prev.Sorted() {
		if cg.Cell(c.Kernel, c.Compiler, c.Driver) != nil {
			continue
		}
		ch := Change{Cell: c, Was: outcome(&c), Now: StateNone, Lost: sameGrid}
		if sameGrid && (ch.Was == StatePass || ch.Was == StateCompiled) {
			d.Regressions = append(d.Regressions, ch)
		} else {
			d.Vanished = append(d.Vanished, ch)
		}
	}
	return d
}

// regressed reports whether a cell whose outcome was was is worse now.
func regressed(was State, now *results.Cell) bool {
	s := outcome(now)
	switch was {
	case StatePass:
		return s != StatePass && s != StateCompiled
	case StateCompiled:
		compileSkipped := now.Compile != nil && now.Compile.Status == results.CompileSkip
		return s == StateNotCompiled || s == StateError || compileSkipped
	}
	return false
}

// fixed reports whether a cell got better: a failure (wrong events
// included), error or compile failure that passes now, or a compile
// failure that compiles now.
func fixed(was, now State) bool {
	switch now {
	case StatePass:
		return was.bad()
	case StateCompiled:
		return was == StateNotCompiled
	}
	return false
}

// Summary is the one-line count of the diff.
func (d *Diff) Summary() string {
	n := func(k int, one, many string) string { return fmt.Sprintf("%d %s", k, plural(k, one, many)) }
	return strings.Join([]string{
		n(len(d.Regressions), "regression", "regressions"),
		n(len(d.Fixes), "fix", "fixes"),
		n(len(d.New), "new cell", "new cells"),
		n(len(d.Vanished), "vanished cell", "vanished cells"),
		n(len(d.Changed), "other change", "other changes"),
	}, ", ")
}

// listLimit caps the new, vanished and other changed cells listed; a new
// kernel or compiler adds a whole row or column of them. Regressions and
// fixes are always listed in full.
const listLimit = 10

// Lines renders the diff for a terminal, one line per change.
func (d *Diff) Lines() []string {
	out := []string{fmt.Sprintf("changes since %s: %s", d.Previous, d.Summary())}
	section := func(tag string, list []Change, limit int) {
		for i, ch := range list {
			if limit > 0 && i == limit {
				out = append(out, fmt.Sprintf("  %-10s ... and %d more", tag, len(list)-limit))
				break
			}
			out = append(out, fmt.Sprintf("  %-10s %s: %s%s", tag, ch.Cell.ID(), ch.describe(), reasonSuffix(ch.reason())))
		}
	}
	section("REGRESSION", d.Regressions, 0)
	section("fixed", d.Fixes, 0)
	section("changed", d.Changed, listLimit)
	section("new", d.New, listLimit)
	section("vanished", d.Vanished, listLimit)
	return out
}

// Markdown renders the diff as a section of the Markdown report.
func (d *Diff) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Changes since the previous run\n\nAgainst `%s`: %s.\n\n", d.Previous, d.Summary())
	section := func(title string, list []Change, limit int) {
		if len(list) == 0 {
			return
		}
		fmt.Fprintf(&b, "**%s**\n\n", title)
		for i, ch := range list {
			if limit > 0 && i == limit {
				fmt.Fprintf(&b, "- ... and %d more\n", len(list)-limit)
				break
			}
			fmt.Fprintf(&b, "- `%s`: %s%s\n", ch.Cell.ID(), ch.describe(), codeSuffix(ch.reason()))
		}
		b.WriteString("\n")
	}
	section("Regressions", d.Regressions, 0)
	section("Fixes", d.Fixes, 0)
	section("Other changes", d.Changed, listLimit)
	section("New cells", d.New, listLimit)
	section("Vanished cells", d.Vanished, listLimit)
	return b.String()
}

func (ch Change) describe() string {
	switch {
	case ch.Was == StateNone:
		return ch.Now.Label()
	case ch.Lost:
		return "was " + ch.Was.Label() + ", missing from a run of the same grid"
	case ch.Now == StateNone:
		return "was " + ch.Was.Label()
	}
	return ch.Was.Label() + " -> " + ch.Now.Label()
}

// reason is why a cell that changed for the worse is what it is now.
func (ch Change) reason() string {
	if ch.Now.bad() || ch.Now == StateSkip || ch.Now == StateNotRun {
		return cellReason(ch.Cell)
	}
	return ""
}

// cellReason is the reason the failing stage of a cell gave.
func cellReason(c results.Cell) string {
	if c.Compile != nil && c.Compile.Status != results.CompileOK {
		return c.Compile.Reason
	}
	if c.Test != nil {
		return c.Test.Reason
	}
	return ""
}
