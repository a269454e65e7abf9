package results

import (
	"fmt"
	"slices"
	"strings"
)

// Input is one results file to merge and the path it was read from (for
// errors).
type Input struct {
	Path string
	File *File
}

// Merge joins the results of the shards of one run (VM_SHARD) into the
// results of the whole grid: every cell of every shard, as it is. One
// input is returned as it is. It refuses, naming both files, inputs that
// do not fit together: different libs sources, different grids (or cuts
// of a grid into a different number of shards), a file that is not a
// shard, two copies of one shard, or a cell in two files.
//
// The merged run has no shard when every shard of the grid is there; its
// run.grid is then what a whole run of the grid records. missing lists
// the shard indexes no input holds.
func Merge(in []Input) (merged *File, missing []int, err error) {
	if len(in) == 0 {
		return nil, nil, fmt.Errorf("merge: no results files")
	}
	if len(in) == 1 {
		return in[0].File, nil, nil
	}
	first := in[0]
	owner := map[string]string{} // cell ID -> path
	shards := map[int]string{}   // shard index -> path
	for _, x := range in {
		if err := fits(first, x); err != nil {
			return nil, nil, err
		}
		s := x.File.Run.Shard
		if prev, dup := shards[s.Index]; dup {
			return nil, nil, fmt.Errorf("cannot merge %s and %s: both are shard %s", prev, x.Path, s)
		}
		shards[s.Index] = x.Path
		for _, c := range x.File.Cells {
			if prev, dup := owner[c.ID()]; dup {
				return nil, nil, fmt.Errorf("cannot merge %s and %s: both hold cell %s (shards overlap)", prev, x.Path, c.ID())
			}
			owner[c.ID()] = x.Path
		}
	}

	f := &File{Schema: SchemaVersion}
	r := first.File.Run
	f.Run = Run{
		SourceHash: r.SourceHash, Source: r.Source, Tree: r.Tree,
		Compilers: r.Compilers, Drivers: r.Drivers,
	}
	var providers, accels []string
	seed := r.Seed
	for _, x := range in {
		xr := x.File.Run
		if xr.Time.After(f.Run.Time) {
			f.Run.Time = xr.Time
		}
		providers = appendNew(providers, xr.Provider)
		accels = appendNew(accels, xr.Accel)
		if xr.Seed != seed {
			seed = 0 // each shard shuffled its own kernels
		}
		f.Cells = append(f.Cells, x.File.Cells...)
		for _, k := range x.File.Kernels {
			f.SetKernel(k)
		}
		for _, b := range x.File.Builds {
			// Each shard built its own: a failure anywhere is shown.
			if have := f.FindBuild(b.Name, b.Compiler, b.Arch); have == nil || have.Status == CompileOK {
				f.SetBuild(b)
			}
		}
	}
	f.Run.Provider, f.Run.Accel, f.Run.Seed = strings.Join(providers, ", "), strings.Join(accels, ", "), seed
	f.Sort()
	if len(r.Compilers) > 0 {
		var kernels []string
		for _, c := range f.Cells {
			kernels = append(kernels, c.Kernel)
		}
		f.Run.Grid = GridID(kernels, r.Compilers, r.Drivers)
	}
	for i := 1; i <= r.Shard.Count; i++ {
		if _, ok := shards[i]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		// A part of the grid: not what a whole run would record.
		f.Run.Grid = ""
	}
	return f, missing, nil
}

// fits reports why x cannot be merged with first, or nil.
func fits(first, x Input) error {
	a, b := first.File.Run, x.File.Run
	fail := func(format string, args ...any) error {
		return fmt.Errorf("cannot merge %s and %s: %s", first.Path, x.Path, fmt.Sprintf(format, args...))
	}
	for _, y := range []Input{first, x} {
		if y.File.Run.Shard == nil {
			return fail("%s is not a shard (a run without VM_SHARD holds the whole grid)", y.Path)
		}
	}
	if a.SourceHash != b.SourceHash || (a.SourceHash == "" && a.Tree != b.Tree) {
		return fail("they built different libs sources (%s and %s)", sourceLabel(a), sourceLabel(b))
	}
	if a.Shard.Grid != b.Shard.Grid {
		return fail("they are shards of different grids (kernels, compilers or drivers differ: grid %s and %s)", a.Shard.Grid, b.Shard.Grid)
	}
	if a.Shard.Count != b.Shard.Count {
		return fail("shard %s and shard %s cut the grid into different numbers of shards", a.Shard, b.Shard)
	}
	return nil
}

func sourceLabel(r Run) string {
	label := r.Tree
	if label == "" {
		label = "unknown tree"
	}
	if r.SourceHash != "" {
		label += ", source " + r.SourceHash[:min(12, len(r.SourceHash))]
	}
	return label
}

func appendNew(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
