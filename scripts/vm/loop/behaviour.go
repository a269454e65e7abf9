package loop

import (
	"fmt"
	"path"
	"slices"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Behaviour says how a cell's behaviour is tested once its scap-open check
// passed: with which drivers_test, or why it cannot be.
type Behaviour struct {
	Binary string // drivers_test on the host; its closure is Binary.root
	// Unavailable is why there is no drivers_test for the cell: the cell
	// is then an error, never a pass.
	Unavailable string
}

// behaviourFor picks the drivers_test of a cell, or nil when the cell has
// no behaviour tests: VM_BEHAVIOUR=off, a driver drivers_test does not
// test (bpf), or a libs tree without them. A modern_bpf cell takes the
// drivers_test built with its clang's probe; a kmod cell the one of the
// newest clang that built.
func behaviourFor(cfg *config.Config, rf *results.File, c results.Cell) *Behaviour {
	if !cfg.BehaviourOn() || (c.Driver != layout.Kmod && c.Driver != layout.ModernBPF) {
		return nil
	}
	var builds []results.Build
	notInTree := false
	for _, b := range rf.Builds {
		if b.Name != layout.DriversTest {
			continue
		}
		if b.Status == results.CompileSkip && b.Compiler == "" {
			notInTree = true
			continue
		}
		if c.Driver == layout.ModernBPF && b.Compiler != c.Compiler || layout.ArchOf(b.Arch) != layout.ArchOf(c.Arch) {
			continue
		}
		builds = append(builds, b)
	}
	if notInTree && len(builds) == 0 {
		return nil
	}
	slices.SortFunc(builds, func(a, b results.Build) int { return results.CompareCompilers(b.Compiler, a.Compiler) })
	for _, b := range builds {
		if bin := cfg.Path(layout.DriversTestBin(b.Compiler, c.Arch)); b.Status == results.CompileOK && isFile(bin) {
			return &Behaviour{Binary: bin}
		}
	}
	if len(builds) == 0 {
		return &Behaviour{Unavailable: "no drivers_test was built for this cell (the compile stage plans one per clang of a modern_bpf build, or one for kmod cells)"}
	}
	b := builds[0]
	why := b.Reason
	if b.Status == results.CompileOK {
		why = "its artifact is missing"
	}
	return &Behaviour{Unavailable: fmt.Sprintf("%s/drivers_test did not build (log %s): %s", b.Compiler, b.Log, why)}
}

// keepPass reports whether a cell that passed before keeps its pass: it
// does unless its behaviour is wanted now and was not tested then in this
// mode.
func keepPass(cfg *config.Config, t *results.Test, b *Behaviour) bool {
	if cfg.RetestAll {
		return false
	}
	if b == nil {
		return true
	}
	return t.Behaviour != nil && t.Behaviour.Mode == cfg.Behaviour && t.Behaviour.Error == ""
}

// behaviourAsked makes a pass whose behaviour was asked for and not
// reported an error: the guest did not do what its plan said (an agent
// of another version, say), and the behaviour is unknown.
func behaviourAsked(a Attempt) guest.Outcome {
	o := a.Outcome
	if a.Cell.Behaviour == nil || o.Status != guest.Pass || o.Behaviour != nil {
		return o
	}
	o.Status, o.Retried = guest.Error, true // another VM would run the same agent
	o.Reason += "; behaviour unknown: the guest agent reported no drivers_test run"
	return o
}

// behaviourRun is the agent's instructions for cell c: drivers_test in
// its own root (guestRoot), with the cell's module copied into that root.
func behaviourRun(cfg *config.Config, c Cell, guestRoot string) *guest.BehaviourRun {
	b := c.Behaviour
	run := &guest.BehaviourRun{Mode: cfg.Behaviour, Seconds: int(cfg.BehaviourTime.Seconds())}
	if b.Unavailable != "" {
		run.Unavailable = b.Unavailable
		return run
	}
	run.Root, run.Binary = guestRoot, "/"+layout.DriversTest
	run.Filter = guest.FullFilter()
	if cfg.Behaviour == guest.BehaviourSmoke {
		run.Filter = guest.SmokeFilter()
	}
	switch c.Driver {
	case layout.Kmod:
		run.Args = []string{"-k", behaviourModule(c)}
	case layout.ModernBPF:
		run.Args = []string{"-m"}
	}
	return run
}

// behaviourModule is where a kmod cell's module is in drivers_test's root.
func behaviourModule(c Cell) string {
	return path.Join("/drivers", c.Compiler, c.Kernel+".ko")
}

// ToResults converts the agent's behaviour record for results.json.
func ToResults(b *guest.Behaviour) *results.Behaviour {
	if b == nil {
		return nil
	}
	r := &results.Behaviour{Mode: b.Mode, Passed: b.Passed, Failed: b.Failed, Skipped: b.Skipped,
		Failing: b.Failing, Failures: b.Failures, Error: b.Error, Seconds: b.Seconds}
	for _, s := range b.Suites {
		r.Suites = append(r.Suites, results.Suite{Name: s.Name, Passed: s.Passed, Failed: s.Failed, Skipped: s.Skipped})
	}
	return r
}
