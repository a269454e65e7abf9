package report

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Markdown renders the matrices as GitHub Markdown, ready to paste into an
// issue: the compiled and success tables, then every failed cell under its
// own anchor (the tables link there) with its reason and log, then the
// skips grouped by reason. With links false, cells are plain emoji and the
// columns are padded, for a terminal. d, when not nil, is listed first.
func Markdown(f *results.File, d *Diff, links bool) string {
	g := NewGrid(f)
	var b strings.Builder
	b.WriteString("# Driver compatibility matrix\n\n")
	if line := runLine(f.Run); line != "" {
		b.WriteString(line + ".\n")
	}
	b.WriteString("Log paths are relative to the build directory.\n\n")
	if d != nil {
		b.WriteString(d.Markdown())
		b.WriteString("\n")
	}
	for _, m := range []Matrix{Compiled, Success} {
		_, notes := titles(g, m, results.Run{})
		heading := "Compiled"
		if m == Success {
			heading = "Compiled, loaded and captured events in a VM"
		}
		fmt.Fprintf(&b, "## %s\n\n", heading)
		var legend []string
		for _, s := range States(m) {
			legend = append(legend, s.Emoji()+" "+s.Label())
		}
		if g.HasHoles() {
			legend = append(legend, "(blank) not in the grid")
		}
		for _, mk := range g.Marks() {
			legend = append(legend, code(mk.Symbol())+" "+mk.Label())
		}
		fmt.Fprintf(&b, "%s. %s\n\n", strings.Join(legend, " · "), notes[len(notes)-1])
		writeTable(&b, g, m, links)
		b.WriteString("\n")
	}
	writeStandIns(&b, g)
	writeBuilds(&b, f)
	writeFailures(&b, g, links)
	writeSkips(&b, g)
	return b.String()
}

// writeBuilds lists the builds that belong to no cell (drivers_test per
// clang) with their status and log: a drivers_test that did not build is
// why behaviour cells are errors.
func writeBuilds(b *strings.Builder, f *results.File) {
	if len(f.Builds) == 0 {
		return
	}
	b.WriteString("## Behaviour test builds\n\n| build | compiler | status | time | log |\n|---|---|---|---|---|\n")
	for _, bd := range f.Builds {
		status := bd.Status
		if bd.Reason != "" {
			status += ": " + code(bd.Reason)
		}
		comp := bd.Compiler
		if comp == "" {
			comp = "—"
		}
		log := ""
		if bd.Log != "" {
			log = code(bd.Log)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %.0f s | %s |\n", bd.Name, comp, status, bd.Seconds, log)
	}
	b.WriteString("\n")
}

// FactsHeading is the heading of the column of kernel facts.
const FactsHeading = "own compiler · facts"

// writeStandIns lists the kmod cells built with a newer compiler than the
// kernel's own, which no builder image has: a reader must know that the
// answer is about that compiler.
func writeStandIns(b *strings.Builder, g *Grid) {
	var lines []string
	for _, k := range g.Kernels {
		for _, c := range g.Columns {
			cell := g.Cell(k, c.Compiler, layout.Kmod)
			if g.MarkOf(cell) == MarkStandIn {
				lines = append(lines, fmt.Sprintf("- %s · %s: the kernel's own %s is in no builder image; built with the nearest newer, %s\n",
					cell.Compiler, cell.Kernel, cell.Compile.ForKernel, cell.Compiler))
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("## Compilers standing in for a kernel's own\n\n")
	b.WriteString(strings.Join(lines, ""))
	b.WriteString("\n")
}

func writeTable(b *strings.Builder, g *Grid, m Matrix, links bool) {
	header := []string{"kernel"}
	if g.HasFacts() {
		header = append(header, g.FactsHeading())
	}
	for _, c := range g.Columns {
		for _, d := range c.Drivers {
			header = append(header, c.Compiler+" "+d)
		}
	}
	rows := [][]string{header}
	for _, k := range g.Kernels {
		row := []string{k}
		if g.HasFacts() {
			row = append(row, g.FactsLabel(k))
		}
		for _, c := range g.Columns {
			for _, d := range c.Drivers {
				cell := g.Cell(k, c.Compiler, d)
				s := StateOf(m, cell)
				text := s.Emoji()
				if links && s.bad() {
					text = fmt.Sprintf("[%s](#%s)", text, Anchor(*cell))
				}
				row = append(row, text+g.MarkOf(cell).Symbol())
			}
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(header))
	if !links {
		for _, r := range rows {
			for i, c := range r {
				widths[i] = max(widths[i], displayWidth(c))
			}
		}
	}
	pad := func(s string, w int) string { return s + strings.Repeat(" ", max(0, w-displayWidth(s))) }
	for i, r := range rows {
		b.WriteString("|")
		for j, c := range r {
			b.WriteString(" " + pad(c, widths[j]) + " |")
		}
		b.WriteString("\n")
		if i == 0 {
			b.WriteString("|")
			for j := range r {
				if j == 0 || (j == 1 && header[1] == g.FactsHeading()) {
					b.WriteString(" " + strings.Repeat("-", max(3, widths[j])) + " |")
				} else {
					b.WriteString(" :" + strings.Repeat("-", max(1, widths[j]-2)) + ": |")
				}
			}
			b.WriteString("\n")
		}
	}
}

// displayWidth approximates the columns a string takes in a terminal:
// the status emoji take two, the variation selector none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r == 0xfe0f:
		case r >= 0x2600 && r <= 0x27bf, r >= 0x1f000:
			n += 2
		default:
			n++
		}
	}
	return n
}

var anchorUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// Anchor is the Markdown anchor of a cell's failure details.
func Anchor(c results.Cell) string {
	return "fail-" + strings.Trim(anchorUnsafe.ReplaceAllString(strings.ToLower(c.ID()), "-"), "-")
}

// failedCells lists the cells that failed either stage, in grid order.
func failedCells(g *Grid) []*results.Cell {
	var out []*results.Cell
	for _, k := range g.Kernels {
		for _, c := range g.Columns {
			for _, d := range c.Drivers {
				cell := g.Cell(k, c.Compiler, d)
				if StateOf(Compiled, cell).bad() || StateOf(Success, cell).bad() {
					out = append(out, cell)
				}
			}
		}
	}
	return out
}

func writeFailures(b *strings.Builder, g *Grid, anchors bool) {
	failed := failedCells(g)
	if len(failed) == 0 {
		b.WriteString("## Failures\n\nNone.\n\n")
		return
	}
	fmt.Fprintf(b, "## Failures\n\n%d %s.\n\n", len(failed), plural(len(failed), "cell", "cells"))
	for _, c := range failed {
		b.WriteString("### ")
		if anchors {
			fmt.Fprintf(b, "<a id=\"%s\"></a>", Anchor(*c))
		}
		fmt.Fprintf(b, "%s · %s · %s\n\n", c.Compiler, c.Kernel, c.Driver)
		if c.Compile != nil && (c.Compile.Status == results.CompileFail || c.Compile.Status == results.CompileError) {
			what := "compile failed"
			if c.Compile.Status == results.CompileError {
				what = "compile infra error"
			}
			fmt.Fprintf(b, "- **%s**%s\n", what, codeSuffix(c.Compile.Reason))
			if c.Compile.Log != "" {
				fmt.Fprintf(b, "- compile log: %s\n", code(c.Compile.Log))
			}
		} else if t := c.Test; t != nil {
			what := "test failed"
			if t.Status == results.TestError {
				what = "infra error"
			} else if t.Kind != "" {
				what = fmt.Sprintf("test failed (%s)", t.Kind)
			}
			fmt.Fprintf(b, "- **%s**%s\n", what, codeSuffix(t.Reason))
			fmt.Fprintf(b, "- events: %d, attempts: %d\n", t.Events, t.Attempts)
			if bh := t.Behaviour; bh != nil && len(bh.Failing) > 0 {
				fmt.Fprintf(b, "- behaviour (drivers_test, %s): %d of %d tests failed:\n", bh.Mode, bh.Failed, bh.Passed+bh.Failed+bh.Skipped)
				for _, name := range bh.Failing {
					fmt.Fprintf(b, "  - %s%s\n", code(name), codeSuffix(bh.Failures[name]))
				}
			}
			if t.Log != "" {
				fmt.Fprintf(b, "- test log: %s\n", code(t.Log))
			}
		}
		b.WriteString("\n")
	}
}

// code quotes s as inline code, so that compiler messages such as
// "<command-line>: error" show as they are; the fence is longer than any
// run of backticks in s.
func code(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

func codeSuffix(r string) string {
	if strings.TrimSpace(r) == "" {
		return ""
	}
	return ": " + code(r)
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + strings.ReplaceAll(r, "\n", " ")
}

// writeSkips groups skipped cells by reason, which is mostly a handful of
// reasons ("no BTF", "not in this libs version") across many cells.
func writeSkips(b *strings.Builder, g *Grid) {
	byReason := map[string][]string{}
	var reasons []string
	for _, k := range g.Kernels {
		for _, c := range g.Columns {
			for _, d := range c.Drivers {
				cell := g.Cell(k, c.Compiler, d)
				if StateOf(Success, cell) != StateSkip {
					continue
				}
				r := ""
				if cell.Compile != nil && cell.Compile.Status == results.CompileSkip {
					r = cell.Compile.Reason
				} else if cell.Test != nil {
					r = cell.Test.Reason
				}
				if r == "" {
					r = "no reason given"
				}
				if _, ok := byReason[r]; !ok {
					reasons = append(reasons, r)
				}
				byReason[r] = append(byReason[r], cell.ID())
			}
		}
	}
	if len(reasons) == 0 {
		return
	}
	slices.SortStableFunc(reasons, func(a, b string) int { return len(byReason[b]) - len(byReason[a]) })
	b.WriteString("## Skipped\n\n")
	for _, r := range reasons {
		ids := byReason[r]
		const show = 3
		list := strings.Join(ids[:min(show, len(ids))], ", ")
		if len(ids) > show {
			list += fmt.Sprintf(" and %d more", len(ids)-show)
		}
		fmt.Fprintf(b, "- %s: %d %s (%s)\n", code(r), len(ids), plural(len(ids), "cell", "cells"), list)
	}
	b.WriteString("\n")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
