package compile

import (
	"bytes"
	"debug/elf"
	"os"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/report"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// elfComment reads the .comment section of an ELF file: the compilers
// that built its objects ("GCC: (Debian 12.2.0-14+deb12u1) 12.2.0").
func elfComment(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	s := f.Section(".comment")
	if s == nil {
		t.Fatalf("%s: no .comment", path)
	}
	b, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.ReplaceAll(b, []byte{0}, []byte("\n")))
}

// TestE2EKernelCompiler compiles the CI grid (plus a kernel whose headers
// failed) with VM_COMPILERS=kernel,clang-19: one kmod per kernel, built
// with the gcc of the kernel's own major version (bookworm's 6.1: gcc-12;
// trixie's 6.12: gcc-14), the probes with clang-19, the kernels' facts in
// results.json. Compile only, no VMs.
func TestE2EKernelCompiler(t *testing.T) {
	cfg := compileConfigFor(t, 2, "kernel,clang-19")
	k61, k612 := e2etest.CIKernels(t, cfg.BuildDir)
	if err := Run(t.Context(), cfg, ui.New(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	f, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]string{k61: "gcc-12", k612: "gcc-14"}
	kmods := map[string][]string{}
	for _, c := range f.Cells {
		if c.Driver == layout.Kmod {
			kmods[c.Kernel] = append(kmods[c.Kernel], c.Compiler)
		}
	}
	for k, gcc := range own {
		if got := kmods[k]; len(got) != 1 || got[0] != gcc {
			t.Errorf("%s: kmod cells %v, want exactly one, with %s", k, got, gcc)
			continue
		}
		c := f.Find(k, gcc, layout.Kmod)
		if c.Compile.Status != results.CompileOK || c.Compile.ForKernel != gcc {
			t.Errorf("%s: %+v", c.ID(), c.Compile)
			continue
		}
		// The module's objects were compiled by that gcc, and its log
		// says why it was chosen.
		_, major := results.SplitCompiler(gcc)
		if com := elfComment(t, cfg.Path(c.Compile.Artifact)); !strings.Contains(com, ") "+strings.TrimPrefix(gcc, "gcc-")+".") {
			t.Errorf("%s: .comment %q does not name gcc %d", c.ID(), com, major)
		}
		if log, _ := os.ReadFile(cfg.Path(c.Compile.Log)); !strings.Contains(string(log), gcc+" is the kernel's own compiler") {
			t.Errorf("%s: the log does not say it is the kernel's own compiler", c.ID())
		}
		if facts := f.FactsOf(k); facts == nil || facts.Compiler != gcc || !facts.BTF {
			t.Errorf("%s: facts %+v in results.json", k, facts)
		}
	}
	// The kernel whose headers failed: its own-compiler cell is a skip
	// that says so, in the "kernel" column.
	if c := f.Find("5.10.0-99-cloud-amd64", "kernel", layout.Kmod); c == nil || c.Compile.Status != results.CompileSkip ||
		!strings.HasPrefix(c.Compile.Reason, ReasonNoHeaders) {
		t.Errorf("broken kernel's own-compiler cell: %+v", c)
	}
	// bpf and modern_bpf keep the listed clang.
	for _, k := range []string{k61, k612} {
		for _, d := range []string{layout.BPF, layout.ModernBPF} {
			if c := f.Find(k, "clang-19", d); c == nil || c.Compile.Status != results.CompileOK {
				t.Errorf("clang-19/%s/%s: %+v", k, d, c)
			}
		}
	}
	if n := len(f.Cells); n != 3*(1+2) {
		t.Errorf("%d cells, want 9: one kmod and two probes per kernel", n)
	}
	// The matrix names each kernel's facts and marks its own compiler's
	// cell, once per table.
	md := report.Markdown(f, nil, false)
	t.Logf("matrix:\n%s", md)
	for k, gcc := range own {
		n := 0
		for _, line := range strings.Split(md, "\n") {
			if strings.HasPrefix(line, "| "+k+" ") {
				n++
				if !strings.Contains(line, "| "+gcc+" · BTF ") || strings.Count(line, "*") != 1 {
					t.Errorf("row of %s: %q, want its facts and one own-compiler mark", k, line)
				}
			}
		}
		if n != 2 {
			t.Errorf("%s: %d table rows, want 2", k, n)
		}
	}
}
