package results

import "testing"

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
