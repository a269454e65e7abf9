// Package results holds build/results.json, the single source of truth of a
// run: one record per cell (kernel x compiler x driver) with what the compile
// stage and the VM test stage found. Stages record cells with Update, which
// serialises writers with a lock file and replaces the file atomically, so
// parallel workers and separate stages never lose each other's records.
package results

import "time"

// SchemaVersion is bumped whenever a field changes meaning or is removed.
const SchemaVersion = 1

// Compile statuses.
const (
	CompileOK   = "ok"
	CompileFail = "fail"
	CompileSkip = "skip"
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
	KindLoad   = "load"
	KindEvents = "events"
	KindPanic  = "panic"
)

// File is the content of results.json.
type File struct {
	Schema int    `json:"schema"`
	Run    Run    `json:"run"`
	Cells  []Cell `json:"cells"`
}

// Run is the metadata of the run that wrote the file.
type Run struct {
	Time       time.Time `json:"time"`
	SourceHash string    `json:"source_hash,omitempty"` // sha256 of libs-src.tar.gz
	Source     string    `json:"source,omitempty"`      // the libs tree built
	Provider   string    `json:"provider,omitempty"`    // qemu, virtualbox, libvirt
	Accel      string    `json:"accel,omitempty"`       // kvm or tcg
	Seed       int64     `json:"seed,omitempty"`        // kernel order of the last loop
}

// Cell is one kernel x compiler x driver combination.
type Cell struct {
	Kernel   string   `json:"kernel"`   // uname -r
	Compiler string   `json:"compiler"` // gcc-12, clang-14, ...
	Driver   string   `json:"driver"`   // kmod, bpf, modern_bpf
	Compile  *Compile `json:"compile,omitempty"`
	Test     *Test    `json:"test,omitempty"`
}

// Compile is what the compile stage found for a cell.
type Compile struct {
	Status   string  `json:"status"` // ok, fail, skip
	Reason   string  `json:"reason,omitempty"`
	Log      string  `json:"log,omitempty"`      // relative to the build dir
	Artifact string  `json:"artifact,omitempty"` // relative to the build dir
	Key      string  `json:"key,omitempty"`      // hash of every input; equal key, no rebuild
	Seconds  float64 `json:"seconds"`
}

// Test is what the VM test stage found for a cell.
type Test struct {
	Status   string  `json:"status"`         // pass, fail, skip, error, not-run
	Kind     string  `json:"kind,omitempty"` // load, events, panic (status fail)
	Events   int     `json:"events"`
	Reason   string  `json:"reason,omitempty"`
	Log      string  `json:"log,omitempty"` // relative to the build dir
	Attempts int     `json:"attempts"`
	Seconds  float64 `json:"seconds"`
	Capture  float64 `json:"capture_seconds,omitempty"` // time scap-open ran in the guest
	Provider string  `json:"provider,omitempty"`
}

// ID names a cell in messages, logs and anchors: compiler/kernel/driver.
func (c Cell) ID() string { return c.Compiler + "/" + c.Kernel + "/" + c.Driver }
