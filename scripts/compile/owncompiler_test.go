package compile

import (
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// The builder images as the repository defines them: what
// ChooseKernelCompiler picks from.
func repoSpecs(t *testing.T) []container.Spec {
	t.Helper()
	specs, err := container.Specs()
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func TestChooseKernelCompiler(t *testing.T) {
	specs := repoSpecs(t)
	for _, tc := range []struct {
		name, own          string
		chosen, column     string
		noteHas            string
		unknownHeaderFacts bool
	}{
		{name: "own major in an image (bullseye)", own: "gcc-10", chosen: "gcc-10", column: "gcc-10"},
		{name: "own major in two images (bookworm, trixie)", own: "gcc-12", chosen: "gcc-12", column: "gcc-12"},
		{name: "own major only in sid", own: "gcc-16", chosen: "gcc-16", column: "gcc-16"},
		{name: "nearest newer: no image has gcc-8", own: "gcc-8", chosen: "gcc-9", column: "gcc-9",
			noteHas: "gcc-9 stands in for the kernel's own gcc-8, which no builder image has"},
		{name: "el7's gcc-4 gets the oldest gcc there is", own: "gcc-4", chosen: "gcc-9", column: "gcc-9", noteHas: "gcc-9 stands in"},
		{name: "clang-built kernel: its clang", own: "clang-19", chosen: "clang-19", column: "clang-19"},
		{name: "clang-built kernel: nearest newer clang, not a gcc", own: "clang-20", chosen: "clang-21", column: "clang-21",
			noteHas: "clang-21 stands in for the kernel's own clang-20"},
		{name: "major missing, nothing newer", own: "gcc-99", column: "gcc-99",
			noteHas: "the kernel's own gcc-99 is in no builder image, nor a newer gcc"},
		{name: "headers do not name the compiler", unknownHeaderFacts: true, column: "kernel",
			noteHas: "do not name the compiler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var facts *kernel.Facts
			if !tc.unknownHeaderFacts {
				facts = &kernel.Facts{Compiler: tc.own}
			}
			ch := ChooseKernelCompiler(specs, facts)
			if ch.Chosen != tc.chosen || ch.Own != tc.own || ch.Column() != tc.column {
				t.Errorf("got %+v (column %s), want chosen %q own %q column %q", ch, ch.Column(), tc.chosen, tc.own, tc.column)
			}
			if (tc.noteHas == "") != (ch.Note == "") || !strings.Contains(ch.Note, tc.noteHas) {
				t.Errorf("note %q, want one containing %q", ch.Note, tc.noteHas)
			}
		})
	}
	// Facts without a compiler are as good as none.
	if ch := ChooseKernelCompiler(specs, &kernel.Facts{BTF: true}); ch.Chosen != "" || ch.Column() != "kernel" {
		t.Errorf("facts without a compiler: %+v", ch)
	}
}

func TestCompilerNote(t *testing.T) {
	for _, tc := range []struct{ compiler, own, forKernel, want string }{
		{"gcc-12", "gcc-14", "", "gcc-12 is older than the kernel's own gcc-14"},
		{"gcc-10", "gcc-12", "", "gcc-10 is older than the kernel's own gcc-12"},
		{"gcc-14", "gcc-14", "", ""},
		{"gcc-14", "gcc-14", "gcc-14", ""},
		{"gcc-14", "gcc-12", "", ""},   // newer than the kernel's own: nothing to say
		{"gcc-12", "clang-19", "", ""}, // another kind: not older, just other
		{"gcc-12", "", "", ""},         // own compiler unknown
		{"gcc-14", "gcc-13", "gcc-13", "gcc-14 stands in for the kernel's own gcc-13, which no builder image has (the nearest newer)"},
	} {
		if got := CompilerNote(tc.compiler, tc.own, tc.forKernel); got != tc.want {
			t.Errorf("CompilerNote(%s, %s, %q) = %q, want %q", tc.compiler, tc.own, tc.forKernel, got, tc.want)
		}
	}
}

func TestFailureReasonNamesOlderCompiler(t *testing.T) {
	k := &kernel.Entry{UnameR: "6.12.117+deb13-cloud-amd64", Facts: &kernel.Facts{Compiler: "gcc-14"}}
	j := Job{Driver: layout.Kmod, Compiler: "gcc-12", Kernel: k}
	const why = "gcc-12: error: unrecognized command-line option '-fmin-function-alignment=16'"
	rec := results.Compile{Status: results.CompileFail, Reason: why}
	annotate(&rec, j)
	want := why + "; gcc-12 is older than the kernel's own gcc-14"
	if rec.Reason != want {
		t.Fatalf("reason %q, want %q", rec.Reason, want)
	}
	annotate(&rec, j) // a kept record is annotated again: once is enough
	if rec.Reason != want {
		t.Errorf("annotated twice: %q", rec.Reason)
	}
	// A success says nothing, and a cell of the kernel's own compiler
	// records that it was planned for it.
	ok := results.Compile{Status: results.CompileOK}
	annotate(&ok, Job{Driver: layout.Kmod, Compiler: "gcc-14", Kernel: k, ForKernel: "gcc-14"})
	if ok.Reason != "" || ok.ForKernel != "gcc-14" {
		t.Errorf("own-compiler success: %+v", ok)
	}
}

func TestPlanKernelCompiler(t *testing.T) {
	in := testInputs(t)
	in.Kernels[0].Facts = &kernel.Facts{Compiler: "gcc-12"}
	in.Kernels[1].Facts = &kernel.Facts{Compiler: "gcc-13"} // stands in: say no image has it
	in.Compilers = []string{"clang-19"}
	in.KernelChoices = map[string]KernelChoice{}
	specs := []container.Spec{in.Images[0].Spec, in.Images[1].Spec}
	for _, k := range in.Kernels {
		in.KernelChoices[CellKernel(k)] = ChooseKernelCompiler(specs, k.Facts)
	}
	jobs, skips := Plan(in)
	j, s := byCell(jobs, skips)
	var kmods []string
	for _, x := range jobs {
		if x.Driver == layout.Kmod {
			kmods = append(kmods, x.Cells[0].String()+" for "+x.ForKernel)
		}
	}
	want := []string{"gcc-12/6.1.0-50-cloud-amd64/kmod for gcc-12", "gcc-14/6.12.117+deb13-cloud-amd64/kmod for gcc-13"}
	if strings.Join(kmods, ", ") != strings.Join(want, ", ") {
		t.Errorf("kmod jobs %v, want exactly %v: one per kernel, with its own compiler", kmods, want)
	}
	if got := j["gcc-12/6.1.0-50-cloud-amd64/kmod"].Image.Suite; got != "bookworm" {
		t.Errorf("6.1's own gcc-12 built in %s, want bookworm", got)
	}
	// The broken kernel has no facts: its own-compiler cell is a skip in
	// the "kernel" column, with the kernel's own reason.
	if r := s["kernel/5.10.0-32-cloud-amd64/kmod"]; !strings.HasPrefix(r, ReasonNoHeaders) {
		t.Errorf("broken kernel's own-compiler cell: skip %q", r)
	}
	// bpf and modern_bpf keep the listed clang.
	for _, cell := range []string{"clang-19/6.1.0-50-cloud-amd64/bpf", "clang-19/6.12.117+deb13-cloud-amd64/modern_bpf"} {
		if _, ok := j[cell]; !ok {
			t.Errorf("%s not built", cell)
		}
	}

	// Named as well, the kernel's own compiler is one cell, not two.
	in.Compilers = []string{"gcc-12", "clang-19"}
	jobs, _ = Plan(in)
	n := 0
	for _, x := range jobs {
		if x.Driver == layout.Kmod && x.Kernel.UnameR == "6.1.0-50-cloud-amd64" {
			n++
			if x.ForKernel != "gcc-12" {
				t.Errorf("6.1's gcc-12 kmod: ForKernel %q", x.ForKernel)
			}
		}
	}
	if n != 1 {
		t.Errorf("6.1: %d kmod jobs, want 1", n)
	}
}
