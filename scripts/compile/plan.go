package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/libstree"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Skip reasons that are the same for every cell they apply to.
const (
	ReasonNotInLibs   = "not in this libs version"
	ReasonNoHeaders   = "no headers"
	ReasonModernClang = "modern_bpf needs clang >= 12"
)

// CellID names one cell of the grid.
type CellID struct{ Kernel, Compiler, Driver string }

func (c CellID) String() string { return c.Compiler + "/" + c.Kernel + "/" + c.Driver }

// Job is one container run: a kmod or bpf cell, a modern_bpf build shared
// by every kernel's cell of that clang, or the shared scap-open.
type Job struct {
	Driver   string
	Compiler string
	HostGCC  string        // the image's gcc-N that configures the tree
	Arch     string        // the architecture it builds for (layout.Amd64, layout.Arm64)
	Kernel   *kernel.Entry // nil for modern_bpf and scap-open
	Image    container.Image
	Recipe   Recipe   // what the container runs
	Key      string   // cache key: equal key, no rebuild
	Cells    []CellID // the cells that record this job's outcome
	Artifact string   // relative to the build dir
	Log      string   // relative to the build dir
	// ForKernel is set on a kmod job that VM_COMPILERS=kernel planned: the
	// kernel's own compiler, which Compiler is or stands in for.
	ForKernel string
}

// Own is the compiler of the job's kernel as its headers name it, or "".
func (j Job) Own() string {
	if j.Kernel == nil || j.Kernel.Facts == nil {
		return ""
	}
	return j.Kernel.Facts.Compiler
}

// Name is the job's name in lines and the summary.
func (j Job) Name() string {
	suffix := ""
	if a := layout.ArchOf(j.Arch); a != layout.Amd64 {
		suffix = "-" + a
	}
	switch {
	case j.Driver == layout.ScapOpen:
		return "scap-open" + suffix
	case j.Driver == layout.DriversTest:
		return j.Compiler + "/drivers_test" + suffix
	case j.Kernel == nil:
		return j.Compiler + "/" + j.Driver + suffix
	}
	return j.Compiler + "/" + j.Kernel.UnameR + "/" + j.Driver
}

// Skip is a cell that is not built, and why.
type Skip struct {
	Cell   CellID
	Reason string
}

// Inputs is what planning needs to know about the world.
type Inputs struct {
	Kernels    []kernel.Entry
	GlibcNeed  map[string]string // uname -r -> newest GLIBC_x.y its kbuild host tools need
	Images     []container.Image
	Compilers  []string
	Drivers    []string
	Tree       *libstree.Tree // what the source tree declares: the recipes follow it
	SourceHash string         // sha256 of libs-src.tar.gz
	ScapOpen   bool           // build the shared scap-open
	// Behaviour builds drivers_test (VM_BEHAVIOUR is not off) when the
	// tree has it: once per clang of a modern_bpf build, or, for a grid
	// with kmod cells and no such build, once with the newest image's
	// newest clang.
	Behaviour bool
	// KernelChoices are, with VM_COMPILERS=kernel, the compiler of each
	// kernel's own-compiler kmod cell, by the kernel's cell name (uname -r,
	// or its grid name when it failed before that was known).
	KernelChoices map[string]KernelChoice
}

// CellKernel is the name cells give a kernel: its uname -r, or, for a
// kernel that failed before its release was known (e.g. its packages did
// not download), its grid name: a cell without a kernel name would make
// results.json unreadable.
func CellKernel(k kernel.Entry) string {
	if k.UnameR == "" {
		return k.Name
	}
	return k.UnameR
}

// axisEntry is one compiler of a kernel's row and the drivers it builds
// there; kernel is set on the entry of the kernel's own-compiler kmod.
type axisEntry struct {
	compiler string
	drivers  []string
	kernel   *KernelChoice
}

// kernelAxis is the compilers of one kernel's row: the grid's, and its own
// compiler's kmod, merged into the grid's entry of the same compiler.
func kernelAxis(compilers []string, choice *KernelChoice) []axisEntry {
	var out []axisEntry
	for _, c := range compilers {
		out = append(out, axisEntry{compiler: c, drivers: driversOf(c)})
	}
	if choice == nil {
		return out
	}
	col := choice.Column()
	for i := range out {
		if out[i].compiler == col && slices.Contains(out[i].drivers, layout.Kmod) {
			out[i].kernel = choice
			return out
		}
	}
	return append(out, axisEntry{compiler: col, drivers: []string{layout.Kmod}, kernel: choice})
}

// Plan turns the grid into container jobs and skipped cells. It is pure:
// the same inputs give the same jobs and keys.
func Plan(in Inputs) ([]Job, []Skip) {
	var jobs []Job
	var skips []Skip
	has := func(d string) bool { return slices.Contains(in.Drivers, d) }
	inLibs := func(d string) bool { ok, _ := Available(in.Tree, d); return ok }
	arches := kernelArches(in.Kernels)
	modern := map[string]int{} // arch/clang -> index in jobs
	for _, arch := range arches {
		for _, c := range in.Compilers {
			if !isClang(c) || !has(layout.ModernBPF) || clangVersion(c) < 12 || !inLibs(layout.ModernBPF) {
				continue
			}
			img, reason := container.Select(in.Images, c, "", arch)
			if reason != "" {
				continue // recorded per cell below
			}
			modern[arch+"/"+c] = len(jobs)
			jobs = append(jobs, newJob(in, Job{
				Driver: layout.ModernBPF, Compiler: c, HostGCC: hostGCC(img), Arch: arch, Image: img,
				Artifact: layout.Artifact(c, "", layout.ModernBPF, arch),
				Log:      layout.CompileLog(c, "", layout.ModernBPF, arch),
			}))
		}
	}
	healthy := map[string]bool{}
	for _, k := range in.Kernels {
		if k.Error == "" {
			healthy[k.UnameR] = true
		}
	}
	for i := range in.Kernels {
		k := &in.Kernels[i]
		if k.Error != "" && healthy[k.UnameR] {
			// A second grid line for a kernel already in the grid (the
			// kernel stage refused it): its cells are the first line's.
			continue
		}
		noHeaders := ""
		if k.Error != "" || k.Sysroot == "" || k.KernelDir == "" {
			noHeaders = ReasonNoHeaders
			if k.Error != "" {
				noHeaders += ": " + k.Error
			}
		}
		kname := CellKernel(*k)
		arch := layout.ArchOf(k.Arch)
		var choice *KernelChoice
		if ch, ok := in.KernelChoices[kname]; ok && has(layout.Kmod) {
			choice = &ch
		}
		for _, e := range kernelAxis(in.Compilers, choice) {
			c := e.compiler
			for _, d := range e.drivers {
				if !has(d) {
					continue
				}
				id := CellID{kname, c, d}
				own := e.kernel != nil && d == layout.Kmod
				if noHeaders != "" {
					skips = append(skips, Skip{id, noHeaders})
					continue
				}
				if !inLibs(d) {
					skips = append(skips, Skip{id, ReasonNotInLibs})
					continue
				}
				if own && e.kernel.Chosen == "" {
					skips = append(skips, Skip{id, e.kernel.Note})
					continue
				}
				if d == layout.ModernBPF {
					if clangVersion(c) < 12 {
						skips = append(skips, Skip{id, ReasonModernClang})
					} else if j, ok := modern[arch+"/"+c]; ok {
						jobs[j].Cells = append(jobs[j].Cells, id)
					} else {
						_, reason := container.Select(in.Images, c, "", arch)
						skips = append(skips, Skip{id, reason})
					}
					continue
				}
				img, reason := container.Select(in.Images, c, in.GlibcNeed[k.UnameR], arch)
				if reason != "" {
					skips = append(skips, Skip{id, reason})
					continue
				}
				j := Job{
					Driver: d, Compiler: c, HostGCC: hostGCC(img), Arch: arch, Kernel: k, Image: img,
					Cells:    []CellID{id},
					Artifact: layout.Artifact(c, k.UnameR, d, arch),
					Log:      layout.CompileLog(c, k.UnameR, d, arch),
				}
				if own {
					j.ForKernel = e.kernel.Own
				}
				jobs = append(jobs, newJob(in, j))
			}
		}
	}
	// A modern_bpf build no kernel's cell records is still worth having
	// (the test stage may add kernels), but an empty grid needs none.
	jobs = slices.DeleteFunc(jobs, func(j Job) bool { return j.Driver == layout.ModernBPF && len(j.Cells) == 0 })
	for _, arch := range arches {
		img, ok := newestImage(in.Images, arch)
		if !in.ScapOpen || !ok || !inLibs(layout.ScapOpen) ||
			!slices.ContainsFunc(jobs, func(j Job) bool { return j.Arch == arch && (j.Driver == layout.Kmod || j.Driver == layout.BPF) }) {
			continue
		}
		// The newest suite: scap-open runs in the guest with the loader and
		// libraries of its image (its closure), so any image would do; the
		// newest has the newest libbpf.
		jobs = append(jobs, newJob(in, Job{
			Driver: layout.ScapOpen, Compiler: hostGCC(img), HostGCC: hostGCC(img), Arch: arch, Image: img,
			Artifact: layout.ScapOpenFor(arch),
			Log:      layout.ScapOpenLogFor(arch),
		}))
	}
	for _, arch := range arches {
		jobs = append(jobs, driversTestJobs(in, jobs, arch)...)
	}
	return jobs, skips
}

// kernelArches are the architectures of kernels, in layout.Arches order;
// amd64 for none.
func kernelArches(kernels []kernel.Entry) []string {
	var out []string
	for _, a := range layout.Arches {
		if slices.ContainsFunc(kernels, func(k kernel.Entry) bool { return layout.ArchOf(k.Arch) == a }) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = []string{layout.Amd64}
	}
	return out
}

// newestImage is the image of the newest suite that builds for arch.
func newestImage(images []container.Image, arch string) (container.Image, bool) {
	for i := len(images) - 1; i >= 0; i-- {
		if layout.ArchOf(images[i].Arch) == arch {
			return images[i], true
		}
	}
	return container.Image{}, false
}

// driversTestJobs plans the drivers_test builds the cells of jobs for
// arch need.
func driversTestJobs(in Inputs, jobs []Job, arch string) []Job {
	img, ok := newestImage(in.Images, arch)
	if !in.Behaviour || !ok {
		return nil
	}
	if ok, _ := Available(in.Tree, layout.DriversTest); !ok {
		return nil
	}
	var out []Job
	for _, j := range jobs {
		if j.Driver == layout.ModernBPF && j.Arch == arch {
			out = append(out, newJob(in, Job{
				Driver: layout.DriversTest, Compiler: j.Compiler, HostGCC: j.HostGCC, Arch: arch, Image: j.Image,
				Artifact: layout.DriversTestBin(j.Compiler, arch), Log: layout.DriversTestLog(j.Compiler, arch),
			}))
		}
	}
	if len(out) > 0 || !slices.ContainsFunc(jobs, func(j Job) bool { return j.Driver == layout.Kmod && j.Arch == arch }) {
		return out
	}
	clang := ""
	for _, c := range img.Compilers {
		if isClang(c) && clangVersion(c) >= 12 && clangVersion(c) > clangVersion(clang) {
			clang = c
		}
	}
	if clang == "" {
		return nil
	}
	return []Job{newJob(in, Job{
		Driver: layout.DriversTest, Compiler: clang, HostGCC: hostGCC(img), Arch: arch, Image: img,
		Artifact: layout.DriversTestBin(clang, arch), Log: layout.DriversTestLog(clang, arch),
	})}
}

// newJob completes j with its recipe, written from the tree's declarations,
// and its cache key: the source, the kernel's sysroot, the image and the
// script itself, so that a changed recipe builds again.
func newJob(in Inputs, j Job) Job {
	p := recipeParams{driver: j.Driver, compiler: j.Compiler, hostGCC: j.HostGCC, arch: layout.ArchOf(j.Arch)}
	sysroot := ""
	if j.Kernel != nil {
		p.kernelDir, sysroot = j.Kernel.KernelDir, sysrootID(*j.Kernel)
	}
	j.Recipe = makeRecipe(in.Tree, p)
	j.Key = key(in.SourceHash, sysroot, j.Image.ID, j.Compiler, j.Driver, j.Recipe.Script)
	if j.Driver == layout.DriversTest {
		// What its root holds besides its libraries is part of the build.
		j.Key = key(j.Key, strings.Join(driversTestExecs, " "))
	}
	return j
}

// driversOf lists the drivers a compiler builds: gcc the kernel module,
// clang the eBPF probes.
func driversOf(compiler string) []string { return results.CompilerDrivers(compiler) }

func isClang(c string) bool { return strings.HasPrefix(c, "clang-") }

func clangVersion(c string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(c, "clang-"))
	return n
}

// hostGCC is the newest gcc of an image.
func hostGCC(img container.Image) string {
	best, bestN := "", -1
	for _, c := range img.Compilers {
		if v, ok := strings.CutPrefix(c, "gcc-"); ok {
			if n, _ := strconv.Atoi(v); n > bestN {
				best, bestN = c, n
			}
		}
	}
	return best
}

// sysrootID names a kernel's sysroot by what it was made from: the package
// files (named by version) and where they are mounted.
func sysrootID(k kernel.Entry) string {
	var names []string
	for _, h := range k.Headers {
		names = append(names, filepath.Base(h))
	}
	slices.Sort(names)
	return fmt.Sprintf("%s|%s|%s|%s", k.UnameR, k.KernelDir, strings.Join(k.Mounts, ","), strings.Join(names, ","))
}

func key(parts ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\n", RecipeVersion)
	for _, p := range parts {
		fmt.Fprintf(h, "%q\n", p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
