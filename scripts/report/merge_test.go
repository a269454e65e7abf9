package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// writeShards cuts the results of a whole run into one file per group of
// kernels, as the shards of that run record them, under dir/shard-K/.
func writeShards(t *testing.T, whole *results.File, dir string, groups ...[]string) {
	t.Helper()
	for i, ks := range groups {
		// Each shard builds its own drivers_test, with the same outcome.
		s := &results.File{Run: whole.Run, Builds: whole.Builds}
		s.Run.Shard = &results.Shard{Index: i + 1, Count: len(groups), Grid: "g1"}
		for _, c := range whole.Cells {
			for _, k := range ks {
				if c.Kernel == k {
					s.Cells = append(s.Cells, c)
				}
			}
		}
		if err := results.Save(filepath.Join(dir, "shard-"+string(rune('1'+i)), "results.json"), s); err != nil {
			t.Fatal(err)
		}
	}
}

// The shards of a run, merged by VM_RESULTS, render the same matrices,
// Markdown and JUnit as the whole run.
func TestWriteMergedShardsEqualsWholeRun(t *testing.T) {
	ctx := context.Background()
	whole := &config.Config{BuildDir: filepath.Join(t.TempDir(), "build")}
	copyFile(t, "testdata/every_status.json", whole.Path(layout.Results))
	if err := Write(ctx, whole, ui.Discard()); err != nil {
		t.Fatal(err)
	}

	f := loadTestdata(t, "every_status.json")
	shards := t.TempDir()
	writeShards(t, f, shards,
		[]string{"6.1.0-50-cloud-amd64", "7.3.4+deb13-cloud-amd64"},
		[]string{"5.10.0-32-cloud-amd64", "6.12.117+deb13-cloud-amd64"})
	merged := &config.Config{BuildDir: filepath.Join(t.TempDir(), "build"), Results: []string{filepath.Join(shards, "*", "results.json")}}
	var out bytes.Buffer
	if err := Write(ctx, merged, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "result: merging 2 shards: 1/2 "+filepath.Join(shards, "shard-1", "results.json")) {
		t.Errorf("output does not name the shards it merged:\n%s", out.String())
	}
	for _, name := range []string{CompiledPNG, SuccessPNG, MarkdownMD, JUnitXML} {
		a, err := os.ReadFile(whole.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(merged.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s of the merged shards differs from the whole run's", name)
		}
	}
	m, err := results.Load(merged.Path(layout.Results))
	if err != nil || len(m.Cells) != len(f.Cells) {
		t.Fatalf("merged results.json: %d cells, %v", len(m.Cells), err)
	}
}

func TestWriteMergeRefusesOtherSources(t *testing.T) {
	f := loadTestdata(t, "every_status.json")
	shards := t.TempDir()
	writeShards(t, f, shards, []string{"6.1.0-50-cloud-amd64"}, []string{"5.10.0-32-cloud-amd64"})
	second := filepath.Join(shards, "shard-2", "results.json")
	if err := results.Update(second, func(f *results.File) error { f.Run.SourceHash = "0123456789abcdef"; return nil }); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{BuildDir: filepath.Join(t.TempDir(), "build"), Results: []string{filepath.Join(shards, "shard-1", "results.json"), second}}
	err := Write(context.Background(), cfg, ui.Discard())
	if err == nil || !strings.Contains(err.Error(), "cannot merge "+filepath.Join(shards, "shard-1", "results.json")+" and "+second+": they built different libs sources") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(cfg.Path(MarkdownMD)); err == nil {
		t.Error("a refused merge wrote the matrices")
	}
}

func TestWriteResultsPatternMatchesNothing(t *testing.T) {
	cfg := &config.Config{BuildDir: filepath.Join(t.TempDir(), "build"), Results: []string{filepath.Join(t.TempDir(), "*", "results.json")}}
	if err := Write(context.Background(), cfg, ui.Discard()); err == nil || !strings.Contains(err.Error(), "VM_RESULTS") {
		t.Fatalf("got %v", err)
	}
}
