package results

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

var (
	kernels   = []string{"5.10.0-32-cloud-amd64", "6.1.0-50-cloud-amd64", "6.12.117+deb13-cloud-amd64"}
	compilers = []string{"gcc-12", "clang-19"}
	drivers   = []string{layout.Kmod, layout.BPF, layout.ModernBPF}
)

// wholeRun is a run of the whole grid, with every status somewhere.
func wholeRun() *File {
	f := &File{Schema: SchemaVersion, Run: Run{
		Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), SourceHash: "aa11", Tree: "libs 0.20.0",
		Provider: "qemu", Accel: "tcg", Compilers: compilers, Drivers: drivers,
		Grid: GridID(kernels, compilers, drivers),
	}}
	tests := []Test{{Status: TestPass, Events: 100}, {Status: TestFail, Kind: KindLoad}, {Status: TestError}}
	i := 0
	for _, k := range kernels {
		for _, c := range compilers {
			for _, d := range CompilerDrivers(c) {
				f.SetCompile(k, c, d, Compile{Status: CompileOK})
				f.SetTest(k, c, d, tests[i%len(tests)])
				i++
			}
		}
	}
	f.SetCompile(kernels[0], "gcc-12", layout.Kmod, Compile{Status: CompileFail, Reason: "error"})
	f.Sort()
	return f
}

// shardsOf cuts whole into shards by kernel, as sharded runs record them.
func shardsOf(whole *File, of [][]string) []Input {
	var out []Input
	for i, ks := range of {
		s := &File{Schema: SchemaVersion, Run: whole.Run}
		s.Run.Shard = &Shard{Index: i + 1, Count: len(of), Grid: "g1"}
		s.Run.Grid = GridID(ks, compilers, drivers)
		s.Run.Time = whole.Run.Time.Add(-time.Duration(i) * time.Minute)
		for _, c := range whole.Cells {
			if slices.Contains(ks, c.Kernel) {
				s.Cells = append(s.Cells, c)
			}
		}
		out = append(out, Input{Path: "shard-" + string(rune('1'+i)) + "/results.json", File: s})
	}
	return out
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMergeEqualsTheWholeRun(t *testing.T) {
	whole := wholeRun()
	in := shardsOf(whole, [][]string{{kernels[1]}, {kernels[0], kernels[2]}})
	// In any order of the files.
	for _, order := range [][]Input{in, {in[1], in[0]}} {
		m, missing, err := Merge(order)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) != 0 {
			t.Errorf("missing shards %v", missing)
		}
		if got, want := jsonOf(t, m.Cells), jsonOf(t, whole.Cells); got != want {
			t.Errorf("merged cells differ from the whole run's:\n%s\nwant\n%s", got, want)
		}
		if m.Run.Grid != whole.Run.Grid || m.Run.Shard != nil || !m.Run.Time.Equal(whole.Run.Time) ||
			m.Run.Provider != "qemu" || m.Run.Accel != "tcg" || m.Run.Tree != "libs 0.20.0" {
			t.Errorf("merged run %+v, want the whole run's %+v", m.Run, whole.Run)
		}
	}
}

func TestMergeWithAShardMissing(t *testing.T) {
	in := shardsOf(wholeRun(), [][]string{{kernels[0]}, {kernels[1]}, {kernels[2]}})
	m, missing, err := Merge([]Input{in[0], in[2]})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []int{2}) || m.Run.Grid != "" || len(m.Cells) != len(in[0].File.Cells)+len(in[2].File.Cells) {
		t.Errorf("missing %v, grid %q, %d cells", missing, m.Run.Grid, len(m.Cells))
	}
}

func TestMergeRefuses(t *testing.T) {
	cut := func() []Input { return shardsOf(wholeRun(), [][]string{{kernels[0]}, {kernels[1], kernels[2]}}) }
	for name, tc := range map[string]struct {
		change func(in []Input)
		want   string
	}{
		"other source": {func(in []Input) { in[1].File.Run.SourceHash = "bb22"; in[1].File.Run.Tree = "libs main" }, "they built different libs sources (libs 0.20.0, source aa11 and libs main, source bb22)"},
		"other grid":   {func(in []Input) { in[1].File.Run.Shard.Grid = "g2" }, "shards of different grids"},
		"other count":  {func(in []Input) { in[1].File.Run.Shard.Count = 3 }, "shard 1/2 and shard 2/3 cut the grid into different numbers"},
		"same shard":   {func(in []Input) { in[1].File.Run.Shard.Index = 1 }, "both are shard 1/2"},
		"whole run":    {func(in []Input) { in[1].File.Run.Shard = nil }, "shard-2/results.json is not a shard"},
		"same cell": {func(in []Input) {
			in[1].File.Cells = append(in[1].File.Cells, in[0].File.Cells[0])
		}, "both hold cell " + "gcc-12/" + kernels[0] + "/kmod (shards overlap)"},
	} {
		t.Run(name, func(t *testing.T) {
			in := cut()
			tc.change(in)
			_, _, err := Merge(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "cannot merge shard-1/results.json and shard-2/results.json: ") {
				t.Errorf("got %v, want an error naming both files and %q", err, tc.want)
			}
		})
	}
}

func TestMergeOneFile(t *testing.T) {
	whole := wholeRun()
	m, missing, err := Merge([]Input{{Path: "results.json", File: whole}})
	if err != nil || m != whole || missing != nil {
		t.Errorf("one file: %v %v", missing, err)
	}
}
