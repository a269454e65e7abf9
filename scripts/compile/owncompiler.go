package compile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// KernelChoice is the compiler that builds a kernel's kmod for
// VM_COMPILERS=kernel: the kernel's own compiler (its major version), or,
// when no builder image has that version, the nearest newer one of the
// same kind.
type KernelChoice struct {
	Own    string // the kernel's own compiler, gcc-14 or clang-19; "" when its headers do not say
	Chosen string // the compiler that builds the cell; "" when there is none
	// Note says what the choice means for the cell: why there is none (the
	// cell's skip reason), or that a newer compiler stands in for Own.
	Note string
}

// Column is the compiler axis entry the cell is recorded under: the
// compiler chosen, else the kernel's own (a skip in its column), else
// "kernel".
func (c KernelChoice) Column() string {
	switch {
	case c.Chosen != "":
		return c.Chosen
	case c.Own != "":
		return c.Own
	}
	return config.KernelCompilerName
}

// ChooseKernelCompiler picks the compiler of a kernel's own-compiler cell
// among what the builder images provide (specs: every image the repository
// defines, built or not, sid included). It is pure.
func ChooseKernelCompiler(specs []container.Spec, facts *kernel.Facts) KernelChoice {
	if facts == nil || facts.Compiler == "" {
		return KernelChoice{Note: "the kernel's headers do not name the compiler that built it"}
	}
	own := facts.Compiler
	kind, major := results.SplitCompiler(own)
	best, bestV := "", -1
	for _, s := range specs {
		for _, c := range s.Compilers {
			k, v := results.SplitCompiler(c)
			if k == kind && v >= major && (bestV < 0 || v < bestV) {
				best, bestV = c, v
			}
		}
	}
	switch {
	case best == "":
		return KernelChoice{Own: own, Note: fmt.Sprintf("the kernel's own %s is in no builder image, nor a newer %s", own, kind)}
	case best != own:
		return KernelChoice{Own: own, Chosen: best, Note: StandInNote(best, own)}
	}
	return KernelChoice{Own: own, Chosen: own}
}

// StandInNote says that compiler builds a kernel's cell in place of the
// kernel's own, which no builder image has.
func StandInNote(compiler, own string) string {
	return fmt.Sprintf("%s stands in for the kernel's own %s, which no builder image has (the nearest newer)", compiler, own)
}

// CompilerNote is what a kmod cell's failure adds to its reason about the
// kernel's own compiler own: that the cell's compiler is older than it, or
// a newer one standing in for it (forKernel set: VM_COMPILERS=kernel
// planned the cell); "" when neither applies.
func CompilerNote(compiler, own, forKernel string) string {
	if own == "" || compiler == own {
		return ""
	}
	if forKernel != "" && forKernel != compiler {
		return StandInNote(compiler, forKernel)
	}
	k, v := results.SplitCompiler(compiler)
	ok, ov := results.SplitCompiler(own)
	if k == ok && v >= 0 && v < ov {
		return fmt.Sprintf("%s is older than the kernel's own %s", compiler, own)
	}
	return ""
}

// withNote appends note to a failure reason once.
func withNote(reason, note string) string {
	if note == "" || strings.HasSuffix(reason, note) {
		return reason
	}
	if reason == "" {
		return note
	}
	return reason + "; " + note
}

// KernelCompilers returns the compilers the kernels' own-compiler cells
// need, for the builder images to build, in compiler order.
func KernelCompilers(choices map[string]KernelChoice) []string {
	var out []string
	for _, c := range choices {
		if c.Chosen != "" && !slices.Contains(out, c.Chosen) {
			out = append(out, c.Chosen)
		}
	}
	slices.SortFunc(out, results.CompareCompilers)
	return out
}
