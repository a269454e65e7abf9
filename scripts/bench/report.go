package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
)

// ReportFile is the bench report, relative to the build directory.
const ReportFile = "bench.json"

// SchemaVersion is bumped whenever a field of Report changes meaning.
const SchemaVersion = 1

// Groups of figures, in the order they are measured and shown.
const (
	GroupCompileCold = "compile-cold"
	GroupCompileWarm = "compile-warm"
	GroupBoot        = "boot"
	GroupLoop        = "loop"
	GroupMemory      = "memory"
)

// Groups lists every group a complete report holds.
var Groups = []string{GroupCompileCold, GroupCompileWarm, GroupBoot, GroupLoop, GroupMemory}

// Units of figures.
const (
	Seconds = "s"
	Ratio   = "x"
	Percent = "%"
	MiB     = "MiB"
	Count   = "cells"
)

// Report is the content of build/bench.json: one run of the bench.
type Report struct {
	Schema    int       `json:"schema"`
	Time      time.Time `json:"time"`
	CPUs      int       `json:"cpus"`
	Accel     string    `json:"accel"` // kvm or tcg
	Grid      string    `json:"grid"`  // the kernel grid file
	Kernels   []string  `json:"kernels"`
	Compilers []string  `json:"compilers"`
	Drivers   []string  `json:"drivers"`
	Source    string    `json:"source"` // the driver tree built
	// Load is the host's 1-minute load average when the bench started
	// and when it ended: other work on the machine, which the figures
	// include.
	Load []float64 `json:"loadavg_1min,omitempty"`
	// Note says what the figures are worth (shared machine, emulation).
	Note    string   `json:"note,omitempty"`
	Figures []Figure `json:"figures"`
}

// Figure is one measured value. Value is NaN (null in JSON) when it could
// not be measured; Error then says why.
type Figure struct {
	Group string  `json:"group"`
	Name  string  `json:"name"`
	Value float64 `json:"-"`
	Unit  string  `json:"unit"`
	// Runs is the number of repetitions Value is the median of (1: a
	// single run).
	Runs int `json:"runs"`
	// Goal is the limit the figure is held against ("<= 0.6"); empty for
	// figures that only inform.
	Goal string `json:"goal,omitempty"`
	// Met is whether Value meets Goal; nil when there is no goal, no value,
	// or the goal does not apply on this machine (Note says why).
	Met   *bool  `json:"met,omitempty"`
	CPUs  int    `json:"cpus"`
	Accel string `json:"accel"`
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

// MarshalJSON writes Value as a number, or null when it is not a number.
func (f Figure) MarshalJSON() ([]byte, error) {
	type plain Figure
	var v *float64
	if !math.IsNaN(f.Value) && !math.IsInf(f.Value, 0) {
		r := math.Round(f.Value*1000) / 1000
		v = &r
	}
	return json.Marshal(struct {
		plain
		Value *float64 `json:"value"`
	}{plain(f), v})
}

// UnmarshalJSON reads Value back, null as NaN.
func (f *Figure) UnmarshalJSON(b []byte) error {
	type plain Figure
	var aux struct {
		plain
		Value *float64 `json:"value"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*f = Figure(aux.plain)
	f.Value = math.NaN()
	if aux.Value != nil {
		f.Value = *aux.Value
	}
	return nil
}

// Goal is a limit a figure must stay at or under (or strictly under).
type Goal struct {
	Limit  float64
	Strict bool   // Value < Limit rather than <=
	Unit   string // shown after the limit: "x", "%"
}

// String shows the goal as written in the issue.
func (g Goal) String() string {
	op := "<="
	if g.Strict {
		op = "<"
	}
	return fmt.Sprintf("%s %s%s", op, trimFloat(g.Limit), g.Unit)
}

// Met reports whether v meets the goal; false for a value that is not a
// number.
func (g Goal) Met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if g.Strict {
		return v < g.Limit
	}
	return v <= g.Limit
}

// Judge sets f's goal and whether it is met. A figure without a value
// stays undecided.
func (f *Figure) Judge(g Goal) {
	f.Goal = g.String()
	if math.IsNaN(f.Value) {
		f.Met = nil
		return
	}
	met := g.Met(f.Value)
	f.Met = &met
}

// Median is the median of xs, NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Fraction is a/b, NaN when either is not a number or b is not positive.
func Fraction(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// Sort orders the figures by group (the order of Groups), keeping the
// order of measurement within a group.
func (r *Report) Sort() {
	slices.SortStableFunc(r.Figures, func(a, b Figure) int {
		return slices.Index(Groups, a.Group) - slices.Index(Groups, b.Group)
	})
}

// Check reports every group of Groups that has no figure, so a report
// that lost a whole measurement says so.
func (r *Report) Check() error {
	var missing []string
	for _, g := range Groups {
		if !slices.ContainsFunc(r.Figures, func(f Figure) bool { return f.Group == g }) {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("bench report: no figures for %s", strings.Join(missing, ", "))
	}
	return nil
}

// Write writes the report to path atomically.
func (r *Report) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench report %s: %w", path, err)
	}
	return fsx.WriteFile(path, append(b, '\n'), 0o644)
}

// Table renders the figures as a plain-text table, one figure a line,
// under a header line with the machine's CPU count and accelerator.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bench: %d CPUs, accel %s, %d kernels, source %s", r.CPUs, r.Accel, len(r.Kernels), r.Source)
	if len(r.Load) == 2 {
		fmt.Fprintf(&b, ", load average %.1f at start, %.1f at end", r.Load[0], r.Load[1])
	}
	b.WriteString("\n")
	rows := [][]string{{"GROUP", "FIGURE", "VALUE", "RUNS", "GOAL", "MET"}}
	for _, f := range r.Figures {
		met := "-"
		if f.Met != nil {
			met = map[bool]string{true: "met", false: "NOT MET"}[*f.Met]
		}
		goal := f.Goal
		if goal == "" {
			goal = "-"
		}
		val := formatValue(f.Value, f.Unit)
		if f.Error != "" {
			val = "error"
		}
		rows = append(rows, []string{f.Group, f.Name, val, fmt.Sprint(f.Runs), goal, met})
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, row := range rows {
		var cols []string
		for i, c := range row {
			if i == 2 || i == 3 {
				cols = append(cols, fmt.Sprintf("%*s", widths[i], c))
			} else {
				cols = append(cols, fmt.Sprintf("%-*s", widths[i], c))
			}
		}
		b.WriteString(strings.TrimRight(strings.Join(cols, "  "), " ") + "\n")
	}
	for _, f := range r.Figures {
		if f.Error != "" {
			fmt.Fprintf(&b, "error: %s: %s\n", f.Name, f.Error)
		} else if f.Note != "" {
			fmt.Fprintf(&b, "note: %s: %s\n", f.Name, f.Note)
		}
	}
	if r.Note != "" {
		fmt.Fprintf(&b, "note: %s\n", r.Note)
	}
	return strings.TrimRight(b.String(), "\n")
}

func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch unit {
	case Seconds:
		return fmt.Sprintf("%.1f s", v)
	case Ratio:
		return fmt.Sprintf("%.2f x", v)
	case MiB:
		return fmt.Sprintf("%.0f MiB", v)
	case Count:
		return fmt.Sprintf("%.0f cells", v)
	case Percent:
		return fmt.Sprintf("%.2f %%", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}
