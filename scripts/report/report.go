// Package report is the result stage (target `result`): from build/results.json alone it
// draws the driver compatibility matrices (PNG with gonum/plot, Markdown,
// JUnit XML) and compares the run with the previous one it rendered, so a
// regression is the first thing a reader sees.
package report

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
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

// Write renders cfg.Path(layout.Results), or with VM_RESULTS the merge of
// the results files it names (results.Merge): it prints the changes since the
// previous rendered run first, writes the matrices and the JUnit report
// into the build directory (each file atomically), prints the Markdown
// tables, and keeps a copy of the results in the history. With
// cfg.FailOnRegr it returns an error when a cell regressed, after writing
// everything.
func Write(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	f, data, err := load(cfg, out)
	if err != nil {
		return err
	}
	if len(f.Cells) == 0 {
		return fmt.Errorf("result: %s has no cells: run the compile stage first", cfg.Path(layout.Results))
	}

	hist := History{Dir: cfg.Path(layout.History)}
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
		if err := fsx.WriteFile(cfg.Path(file.name), b, 0o644); err != nil {
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

// load reads the results to render: build/results.json, or the files
// VM_RESULTS names, merged. It returns them and their content as the
// history keeps it.
func load(cfg *config.Config, out *ui.Printer) (*results.File, []byte, error) {
	if len(cfg.Results) == 0 {
		return loadOne(cfg.Path(layout.Results), "run the compile stage first")
	}
	paths, err := resultsFiles(cfg.Results)
	if err != nil {
		return nil, nil, err
	}
	var in []results.Input
	var data []byte
	for _, p := range paths {
		f, d, err := loadOne(p, "VM_RESULTS names it")
		if err != nil {
			return nil, nil, err
		}
		in, data = append(in, results.Input{Path: p, File: f}), d
	}
	f, missing, err := results.Merge(in)
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	if len(in) == 1 {
		return f, data, nil
	}
	var shards []string
	for _, x := range in {
		shards = append(shards, x.File.Run.Shard.String()+" "+x.Path)
	}
	out.Linef("result: merging %d shards: %s", len(in), strings.Join(shards, ", "))
	if len(missing) > 0 {
		out.Linef("result: no results for shard %s of %d: their kernels are not in the matrices", joinInts(missing), in[0].File.Run.Shard.Count)
	}
	data, err = json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	data = append(data, '\n')
	// The merge is kept as build/results.json, unless that file is one of
	// the shards (it stays this build directory's own).
	own := cfg.Path(layout.Results)
	if !slices.Contains(paths, own) {
		if err := fsx.WriteFile(own, data, 0o644); err != nil {
			return nil, nil, fmt.Errorf("result: %w", err)
		}
	}
	return f, data, nil
}

// loadOne reads and checks one results file; hint says what to do when
// it does not exist.
func loadOne(path, hint string) (*results.File, []byte, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, fmt.Errorf("result: no %s yet: %s", path, hint)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	f, err := results.Parse(path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, nil, fmt.Errorf("result: %s: %w", path, err)
	}
	return f, data, nil
}

// resultsFiles expands VM_RESULTS: each entry is a file, or a glob that
// must match at least one. The list is sorted and without duplicates.
func resultsFiles(patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("result: VM_RESULTS %s: %w", p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("result: VM_RESULTS %s: no such file", p)
		}
		out = append(out, matches...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func joinInts(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ", ")
}

// rel shows path relative to the build directory's parent, e.g.
// build/history/....json, or as it is when that fails.
func rel(buildDir, path string) string {
	if r, err := filepath.Rel(filepath.Dir(buildDir), path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
