package compile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
)

// Drivers of cells, and the pseudo-driver of the shared scap-open build.
const (
	DriverKmod      = "kmod"
	DriverBPF       = "bpf"
	DriverModernBPF = "modern_bpf"
	DriverScapOpen  = "scap-open"
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
	Kernel   *kernel.Entry // nil for modern_bpf and scap-open
	Image    container.Image
	Key      string   // cache key: equal key, no rebuild
	Cells    []CellID // the cells that record this job's outcome
	Artifact string   // relative to the build dir
	Log      string   // relative to the build dir
}

// Name is the job's name in lines and the summary.
func (j Job) Name() string {
	switch {
	case j.Driver == DriverScapOpen:
		return "scap-open"
	case j.Kernel == nil:
		return j.Compiler + "/" + j.Driver
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
	HasBPF     bool   // the source tree has driver/bpf
	SourceHash string // sha256 of libs-src.tar.gz
	ScapOpen   bool   // build the shared scap-open
}

// Plan turns the grid into container jobs and skipped cells. It is pure:
// the same inputs give the same jobs and keys.
func Plan(in Inputs) ([]Job, []Skip) {
	var jobs []Job
	var skips []Skip
	has := func(d string) bool { return slices.Contains(in.Drivers, d) }
	modern := map[string]int{} // clang -> index in jobs
	for _, c := range in.Compilers {
		if !isClang(c) || !has(DriverModernBPF) || clangVersion(c) < 12 {
			continue
		}
		img, reason := container.Select(in.Images, c, "")
		if reason != "" {
			continue // recorded per cell below
		}
		modern[c] = len(jobs)
		jobs = append(jobs, Job{
			Driver: DriverModernBPF, Compiler: c, HostGCC: hostGCC(img), Image: img,
			Key:      key(in.SourceHash, "", img.ID, c, DriverModernBPF),
			Artifact: path.Join("driver", c, DriverModernBPF, "scap-open"),
			Log:      path.Join("logs", "compile", c, DriverModernBPF+".log"),
		})
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
		// A kernel that failed before its release was known (e.g. its
		// packages did not download) is named by its grid name: a cell
		// without a kernel name would make results.json unreadable.
		kname := k.UnameR
		if kname == "" {
			kname = k.Name
		}
		for _, c := range in.Compilers {
			for _, d := range driversOf(c) {
				if !has(d) {
					continue
				}
				id := CellID{kname, c, d}
				if noHeaders != "" {
					skips = append(skips, Skip{id, noHeaders})
					continue
				}
				switch d {
				case DriverBPF:
					if !in.HasBPF {
						skips = append(skips, Skip{id, ReasonNotInLibs})
						continue
					}
				case DriverModernBPF:
					if clangVersion(c) < 12 {
						skips = append(skips, Skip{id, ReasonModernClang})
					} else if j, ok := modern[c]; ok {
						jobs[j].Cells = append(jobs[j].Cells, id)
					} else {
						_, reason := container.Select(in.Images, c, "")
						skips = append(skips, Skip{id, reason})
					}
					continue
				}
				img, reason := container.Select(in.Images, c, in.GlibcNeed[k.UnameR])
				if reason != "" {
					skips = append(skips, Skip{id, reason})
					continue
				}
				ext := ".ko"
				if d == DriverBPF {
					ext = ".o"
				}
				jobs = append(jobs, Job{
					Driver: d, Compiler: c, HostGCC: hostGCC(img), Kernel: k, Image: img,
					Key:      key(in.SourceHash, sysrootID(*k), img.ID, c, d),
					Cells:    []CellID{id},
					Artifact: path.Join("driver", c, k.UnameR+ext),
					Log:      path.Join("logs", "compile", c, k.UnameR+"."+d+".log"),
				})
			}
		}
	}
	// A modern_bpf build no kernel's cell records is still worth having
	// (the test stage may add kernels), but an empty grid needs none.
	jobs = slices.DeleteFunc(jobs, func(j Job) bool { return j.Driver == DriverModernBPF && len(j.Cells) == 0 })
	if in.ScapOpen && len(in.Images) > 0 && slices.ContainsFunc(jobs, func(j Job) bool { return j.Driver == DriverKmod || j.Driver == DriverBPF }) {
		img := in.Images[len(in.Images)-1] // the newest suite
		jobs = append(jobs, Job{
			Driver: DriverScapOpen, Compiler: hostGCC(img), HostGCC: hostGCC(img), Image: img,
			Key:      key(in.SourceHash, "", img.ID, hostGCC(img), DriverScapOpen),
			Artifact: "scap-open",
			Log:      path.Join("logs", "compile", "scap-open.log"),
		})
	}
	return jobs, skips
}

// driversOf lists the drivers a compiler builds: gcc the kernel module,
// clang the eBPF probes.
func driversOf(compiler string) []string {
	if isClang(compiler) {
		return []string{DriverBPF, DriverModernBPF}
	}
	return []string{DriverKmod}
}

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
