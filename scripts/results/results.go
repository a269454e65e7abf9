// Package results holds build/results.json, the single source of truth of a
// run: one record per cell (kernel x compiler x driver) with what the compile
// stage and the VM test stage found. Stages record cells with Update, which
// serialises writers with a lock file and replaces the file atomically, so
// parallel workers and separate stages never lose each other's records.
package results

import (
	"fmt"
	"time"
)

// SchemaVersion is bumped whenever a field changes meaning or is removed.
const SchemaVersion = 1

// Compile statuses.
const (
	CompileOK   = "ok"
	CompileFail = "fail"
	CompileSkip = "skip"
	// CompileError: the build could not run to an answer (the Docker
	// engine stopped, a container could not start); the next run builds
	// the cell again.
	CompileError = "error"
)

// Test statuses.
const (
	TestPass   = "pass"
	TestFail   = "fail"
	TestSkip   = "skip"
	TestError  = "error"
	TestNotRun = "not-run"
)

// Failure kinds of a test with status fail.
const (
	KindLoad   = "load"   // insmod, the verifier or libbpf refused the driver
	KindEvents = "events" // too few events
	KindPanic  = "panic"  // kernel oops or panic
	KindWarn   = "warn"   // the kernel reported a WARN/BUG splat while the driver ran
	KindExit   = "exit"   // enough events, but scap-open crashed or did not stop cleanly
	// KindBehaviour: scap-open's check passed, drivers_test found wrong events.
	KindBehaviour = "behaviour"
)

// File is the content of results.json.
type File struct {
	Schema int `json:"schema"`
	Run    Run `json:"run"`
	// Kernels are the facts of every kernel the compile stage planned,
	// by uname -r; a kernel that left the grid keeps its record as long
	// as its cells stay.
	Kernels []Kernel `json:"kernels,omitempty"`
	// Builds are the compile stage's builds that are not a cell's driver
	// and whose outcome is not on the cells: drivers_test, per clang.
	Builds []Build `json:"builds,omitempty"`
	Cells  []Cell  `json:"cells"`
}

// Build is the outcome of one build that belongs to no cell: drivers_test
// (Name) built with Compiler's modern probe.
type Build struct {
	Name     string  `json:"name"`
	Compiler string  `json:"compiler"`
	Arch     string  `json:"arch,omitempty"` // the architecture it was built for ("": amd64)
	Status   string  `json:"status"`         // ok, fail, error (as Compile)
	Reason   string  `json:"reason,omitempty"`
	Log      string  `json:"log,omitempty"`
	Artifact string  `json:"artifact,omitempty"`
	Key      string  `json:"key,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// Run is the metadata of the run that wrote the file.
type Run struct {
	Time       time.Time `json:"time"`
	SourceHash string    `json:"source_hash,omitempty"` // sha256 of libs-src.tar.gz
	Source     string    `json:"source,omitempty"`      // the libs tree built (its path)
	Tree       string    `json:"tree,omitempty"`        // which tree: "libs <git describe>" or "stand-in tree"
	Provider   string    `json:"provider,omitempty"`    // qemu, virtualbox, libvirt
	Accel      string    `json:"accel,omitempty"`       // kvm or tcg
	Seed       int64     `json:"seed,omitempty"`        // kernel order of the last loop
	// Grid identifies the grid the compile stage planned (kernels,
	// compilers, drivers; see GridID): a cell missing from a run with the
	// same grid was lost, not dropped from the grid.
	Grid string `json:"grid,omitempty"`
	// Compilers and Drivers are the grid's other two axes, as the
	// compile stage planned them (its kernels are those of the cells).
	Compilers []string `json:"compilers,omitempty"`
	Drivers   []string `json:"drivers,omitempty"`
	// Shard is the part of the grid this run took (VM_SHARD); nil for a
	// whole grid, and for the merge of every shard of one.
	Shard *Shard `json:"shard,omitempty"`
}

// Shard says which part of a grid a run took: shard Index of Count
// (VM_SHARD=K/N), of the whole grid Grid. The shards of one run share
// Count and Grid, and their cells make up the whole grid's (Merge).
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
	// Grid identifies the whole grid the shard was cut from: every kernel
	// of the grid file, the compilers and the drivers (run.grid is this
	// shard's part of it).
	Grid string `json:"grid"`
}

// String is K/N.
func (s *Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Cell is one kernel x compiler x driver combination.
type Cell struct {
	Kernel   string `json:"kernel"`   // uname -r
	Compiler string `json:"compiler"` // gcc-12, clang-14, ...
	Driver   string `json:"driver"`   // kmod, bpf, modern_bpf
	// Arch is the kernel's architecture, amd64 or arm64 ("" in files
	// written before grids had one: amd64).
	Arch    string   `json:"arch,omitempty"`
	Compile *Compile `json:"compile,omitempty"`
	Test    *Test    `json:"test,omitempty"`
}

// Compile is what the compile stage found for a cell.
type Compile struct {
	Status   string  `json:"status"` // ok, fail, skip
	Reason   string  `json:"reason,omitempty"`
	Log      string  `json:"log,omitempty"`      // relative to the build dir
	Artifact string  `json:"artifact,omitempty"` // relative to the build dir
	Key      string  `json:"key,omitempty"`      // hash of every input; equal key, no rebuild
	Seconds  float64 `json:"seconds"`
	Steps    []Step  `json:"steps,omitempty"` // the build's steps (configure, make goals) as far as it got
	// ForKernel is set on a kmod cell planned by VM_COMPILERS=kernel: the
	// kernel's own compiler, which the cell's compiler is, or stands in
	// for when no builder image has that version (the nearest newer one).
	ForKernel string `json:"for_kernel,omitempty"`
}

// Step is the wall time of one step of a build: "configure" or a make goal
// (driver, bpf, ProbeSkeleton, scap-open).
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Test is what the VM test stage found for a cell.
type Test struct {
	Status   string  `json:"status"`         // pass, fail, skip, error, not-run
	Kind     string  `json:"kind,omitempty"` // load, events, panic, warn, exit (status fail)
	Events   int     `json:"events"`
	Reason   string  `json:"reason,omitempty"`
	Log      string  `json:"log,omitempty"` // relative to the build dir
	Attempts int     `json:"attempts"`
	Seconds  float64 `json:"seconds"`
	Load     float64 `json:"load_seconds,omitempty"`    // time until the driver was open (qemu provider)
	Capture  float64 `json:"capture_seconds,omitempty"` // time scap-open captured once the driver was open
	Provider string  `json:"provider,omitempty"`
	// Behaviour is what drivers_test found, when it ran (VM_BEHAVIOUR).
	Behaviour *Behaviour `json:"behaviour,omitempty"`
}

// Behaviour is what libs' drivers_test found for a cell whose scap-open
// check passed: test counts, the failing tests with the first line of each
// one's first failure, counts per googletest suite, or why there is no
// answer (Error).
type Behaviour struct {
	Mode     string            `json:"mode"` // smoke or full
	Passed   int               `json:"passed"`
	Failed   int               `json:"failed"`
	Skipped  int               `json:"skipped"`
	Failing  []string          `json:"failing,omitempty"`
	Failures map[string]string `json:"failures,omitempty"`
	Suites   []Suite           `json:"suites,omitempty"`
	Error    string            `json:"error,omitempty"`
	Seconds  float64           `json:"seconds"`
}

// Suite is one googletest suite's counts.
type Suite struct {
	Name    string `json:"name"`
	Passed  int    `json:"passed"`
	Failed  int    `json:"failed"`
	Skipped int    `json:"skipped"`
}

// ID names a cell in messages, logs and anchors: compiler/kernel/driver.
func (c Cell) ID() string { return c.Compiler + "/" + c.Kernel + "/" + c.Driver }
