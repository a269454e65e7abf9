package loop

import (
	"context"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Provider is one kind of VM the test stage runs cells in (qemu, Vagrant
// with VirtualBox or libvirt). It boots kernels and runs cells; everything
// else of a loop (which cells, in which order, retries, records, logs'
// headers, summary) is Run's, the same for every provider.
type Provider interface {
	// Name is the VM_PROVIDER value, recorded as each cell's provider.
	Name() string
	// Init prepares the provider for the grid (the init target: Vagrant
	// VMs are re-created).
	Init(ctx context.Context, cfg *config.Config, out *ui.Printer) error
	// Prepare is what a loop needs of Init before it runs: what an
	// earlier Init prepared for the same kernels is kept.
	Prepare(ctx context.Context, cfg *config.Config, out *ui.Printer) error
	// Kernels picks the kernels of m that a loop over VM group group
	// ("" for all) tests, saying why it leaves any out.
	Kernels(cfg *config.Config, out *ui.Printer, m *kernel.Manifest, group string) ([]kernel.Entry, error)
	// Open prepares a loop over jobs (one per kernel, in the loop's
	// order, with the cells the plan keeps) and says how to run them.
	Open(ctx context.Context, cfg *config.Config, out *ui.Printer, jobs []Job) (*Session, error)
	// Cleanup removes what Init and the loops left (the cleanup stage).
	Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error
}

// Job is cells to run on one kernel, in order.
type Job struct {
	Name   string // unique in a loop; names a VM, a log
	Kernel kernel.Entry
	Cells  []Cell
}

// Session is how one loop runs: its lanes, up to Parallel at once.
type Session struct {
	Accel    string // recorded in results.json's run; "" when the provider has no such choice
	Parallel int
	Lanes    []Lane
}

// Lane runs jobs one after the other (in one VM, or a fresh VM per job).
type Lane interface {
	// Jobs are the lane's jobs, in order.
	Jobs() []Job
	// Run runs j's cells once each and hands done the Attempt of every
	// cell it started, as each ends; a cell it did not reach (the VM
	// ended before it) gets no Attempt and Run gets it again without
	// costing an attempt, so a Run that starts none of its cells must
	// report them all. An error means this lane can run nothing more: j's
	// cells without an Attempt and those of its later jobs are errors
	// with its text.
	Run(ctx context.Context, j Job, done func(Attempt)) error
	// Close ends the lane once its jobs are done, or the loop was
	// interrupted (ctx is then cancelled, with its values kept).
	Close(ctx context.Context, interrupted bool) error
}

// Attempt is one run of one cell, as its provider saw it. Run prints it,
// writes the cell's log and records the final attempt.
type Attempt struct {
	Cell    Cell
	Outcome guest.Outcome
	// Final keeps an infrastructure error from being retried (the
	// provider already did what a retry would: the guest could not be
	// made ready for the cell).
	Final bool
	// Record is the guest agent's record of the cell (nil when the cell
	// never ran to its end).
	Record *guest.Record
	// Seconds is the wall time of the VM run that decided the cell.
	Seconds float64
	// VM says how the cell ran, for its log: "qemu exit 0", "libvirt
	// machine debian, attempt 2".
	VM string
	// Console is the VM's whole console log, relative to the build
	// directory ("" when there is none).
	Console string
	// Sections are the provider's own parts of the cell's log.
	Sections []Section
}

// Section is a titled part of a cell's log.
type Section struct {
	Title string
	Body  string
}
