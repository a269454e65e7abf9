// Package result is the result stage: from build/results.json alone it
// draws the driver compatibility matrices (PNG with gonum/plot, Markdown,
// JUnit XML) and compares the run with the previous one it rendered, so a
// regression is the first thing a reader sees.
package result

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Output files, relative to the build directory.
const (
	CompiledPNG = "driver_compat_matrix_compiled.png"
	SuccessPNG  = "driver_compat_matrix_success.png"
	MarkdownMD  = "driver_compat_matrix.md"
	JUnitXML    = "results.junit.xml"
)

// Write renders cfg.Path("results.json"): it prints the changes since the
// previous rendered run first, writes the matrices and the JUnit report
// into the build directory (each file atomically), prints the Markdown
// tables, and keeps a copy of the results in the history. With
// cfg.FailOnRegr it returns an error when a cell regressed, after writing
// everything.
func Write(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	path := cfg.Path("results.json")
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return fmt.Errorf("result: no %s yet: run the compile stage first", path)
	}
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	f, err := results.Parse(path, data)
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("result: %s: %w", path, err)
	}
	if len(f.Cells) == 0 {
		return fmt.Errorf("result: %s has no cells: run the compile stage first", path)
	}

	hist := History{Dir: cfg.Path(HistoryDir)}
	prevPath, err := hist.Record(data, time.Now())
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	var diff *Diff
	if prevPath != "" {
		prev, err := results.Load(prevPath)
		if err != nil {
			return fmt.Errorf("result: previous run: %w", err)
		}
		diff = Compare(prev, f)
		diff.Previous = rel(cfg.BuildDir, prevPath)
		for _, l := range diff.Lines() {
			out.Linef("%s", l)
		}
		out.Linef("")
	} else {
		out.Linef("no earlier results in %s to compare with", rel(cfg.BuildDir, hist.Dir))
	}

	g := NewGrid(f)
	files := []struct {
		name   string
		render func() ([]byte, error)
	}{
		{CompiledPNG, func() ([]byte, error) { return NewLayout(g, Compiled, f.Run).PNG() }},
		{SuccessPNG, func() ([]byte, error) { return NewLayout(g, Success, f.Run).PNG() }},
		{MarkdownMD, func() ([]byte, error) { return []byte(Markdown(f, diff, true)), nil }},
		{JUnitXML, func() ([]byte, error) { return JUnit(f) }},
	}
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := file.render()
		if err != nil {
			return fmt.Errorf("result: %s: %w", file.name, err)
		}
		if err := results.WriteFileAtomic(cfg.Path(file.name), b); err != nil {
			return fmt.Errorf("result: %w", err)
		}
	}

	out.Linef("%s", strings.TrimRight(Markdown(f, nil, false), "\n"))
	var names []string
	for _, file := range files {
		names = append(names, file.name)
	}
	out.Linef("wrote %s in %s", strings.Join(names, ", "), cfg.BuildDir)
	if !g.HasTests() {
		out.Linef("no test results yet: the success matrix shows compile results only")
	}
	if diff != nil && len(diff.Regressions) > 0 {
		msg := fmt.Sprintf("%d %s since %s", len(diff.Regressions), plural(len(diff.Regressions), "regression", "regressions"), diff.Previous)
		if cfg.FailOnRegr {
			return fmt.Errorf("result: %s (VM_FAIL_ON_REGRESSION=1)", msg)
		}
		out.Linef("%s (set VM_FAIL_ON_REGRESSION=1 to fail on them)", msg)
	}
	return nil
}

// rel shows path relative to the build directory's parent, e.g.
// build/history/....json, or as it is when that fails.
func rel(buildDir, path string) string {
	if r, err := filepath.Rel(filepath.Dir(buildDir), path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
