package results

import (
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

func TestUpsertKeepsTheOtherStage(t *testing.T) {
	f := &File{}
	f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Compile{Status: CompileOK, Log: "a.log"})
	f.SetTest("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Test{Status: TestPass, Events: 99})
	f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Compile{Status: CompileOK, Log: "b.log"})
	f.SetCompile("6.1.0-50-cloud-amd64", "gcc-11", "kmod", Compile{Status: CompileFail})
	if len(f.Cells) != 2 {
		t.Fatalf("got %d cells, want 2", len(f.Cells))
	}
	c := f.Find("6.1.0-50-cloud-amd64", "gcc-12", "kmod")
	if c == nil || c.Compile.Log != "b.log" || c.Test == nil || c.Test.Events != 99 {
		t.Fatalf("cell after re-compile: %+v", c)
	}
	if f.Find("6.1.0-50-cloud-amd64", "gcc-12", "bpf") != nil {
		t.Error("Find returned a cell that was never recorded")
	}
	if !f.Delete("6.1.0-50-cloud-amd64", "gcc-11", "kmod") || len(f.Cells) != 1 {
		t.Errorf("Delete left %d cells", len(f.Cells))
	}
}

// A re-compile from other inputs (another key) makes the old test record
// stale: it must not survive, or the VM stage would keep a pass of the old
// artifact for the new one.
func TestUpsertDropsTestOfAnOlderArtifact(t *testing.T) {
	f := &File{}
	f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Compile{Status: CompileOK, Key: "k1"})
	f.SetTest("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Test{Status: TestPass, Events: 99})
	f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Compile{Status: CompileOK, Key: "k1"})
	if c := f.Find("6.1.0-50-cloud-amd64", "gcc-12", "kmod"); c.Test == nil {
		t.Fatal("same key: test record dropped")
	}
	f.SetCompile("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Compile{Status: CompileOK, Key: "k2"})
	if c := f.Find("6.1.0-50-cloud-amd64", "gcc-12", "kmod"); c.Test != nil || c.Compile.Key != "k2" {
		t.Fatalf("new key: cell %+v, test %+v", c, c.Test)
	}
}

func TestValidate(t *testing.T) {
	f := &File{}
	f.SetTest("6.1.0-50-cloud-amd64", "gcc-12", "kmod", Test{Status: "passed"})
	if err := f.Validate(); err == nil {
		t.Fatal("unknown test status accepted")
	}
	f.Cells[0].Test.Status = TestPass
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A grid's identity depends on its axes, not on their order, and tells
// kernels from compilers.
func TestGridID(t *testing.T) {
	a := GridID([]string{"6.1", "6.12"}, []string{"gcc-12", "clang-19"}, []string{"kmod", "bpf"})
	if b := GridID([]string{"6.12", "6.1", "6.1"}, []string{"clang-19", "gcc-12"}, []string{"bpf", "kmod"}); a != b {
		t.Errorf("order or duplicates change the identity: %s %s", a, b)
	}
	for _, other := range []string{
		GridID([]string{"6.1"}, []string{"gcc-12", "clang-19"}, []string{"kmod", "bpf"}),
		GridID([]string{"6.1", "6.12"}, []string{"gcc-12"}, []string{"kmod", "bpf"}),
		GridID([]string{"6.1", "6.12"}, []string{"gcc-12", "clang-19"}, []string{"kmod"}),
		GridID([]string{"6.1", "6.12", "gcc-12"}, []string{"clang-19"}, []string{"kmod", "bpf"}),
	} {
		if other == a {
			t.Errorf("a different grid has the same identity %s", a)
		}
	}
	if p := DriverOKPath(Cell{Kernel: "6.1", Compiler: "gcc-12", Driver: layout.Kmod}); p != "driver_ok/gcc-12/6.1.ko" {
		t.Errorf("kmod driver_ok %q", p)
	}
	if p := DriverOKPath(Cell{Kernel: "6.1", Compiler: "clang-19", Driver: layout.ModernBPF}); p != "" {
		t.Errorf("modern_bpf driver_ok %q", p)
	}
}
