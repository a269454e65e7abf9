package loop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
)

// writeCellLog writes the log of attempt a at LogPath and returns its path
// relative to the build directory: the same header and guest record for
// every provider, then the provider's sections and the classifier's
// evidence.
func writeCellLog(cfg *config.Config, a Attempt) (string, error) {
	var b strings.Builder
	o := a.Outcome
	fmt.Fprintf(&b, "cell:     %s\nartifact: %s\noutcome:  %s\nreason:   %s\n", a.Cell.ID(), a.Cell.Artifact, o, o.Reason)
	if a.VM != "" {
		fmt.Fprintf(&b, "vm:       %s\n", a.VM)
	}
	if a.Console != "" {
		fmt.Fprintf(&b, "console:  %s\n", filepath.ToSlash(a.Console))
	}
	if rec := a.Record; rec != nil {
		fmt.Fprintf(&b, "guest:    cell %.1fs, load %.1fs (driver seen open: %v), capture %.1fs, exit %d%s, events %d, stopped at the limit %v, killed %v\n",
			rec.Seconds, rec.LoadSeconds, rec.Opened, rec.Capture, rec.Exit, signalNote(rec.Signal), rec.Events, rec.TimedOut, rec.Killed)
		if rec.Load != "" {
			fmt.Fprintf(&b, "load:     %s\n", rec.Load)
		}
		for _, n := range rec.Notes {
			fmt.Fprintf(&b, "note:     %s\n", n)
		}
		if len(rec.Splat) > 0 {
			fmt.Fprintf(&b, "\n--- kernel splat during the cell\n%s\n", strings.Join(rec.Splat, "\n"))
		}
		if rec.Output != "" {
			fmt.Fprintf(&b, "\n--- scap-open output\n%s\n", strings.TrimRight(rec.Output, "\n"))
		}
		if bh := rec.Behaviour; bh != nil {
			fmt.Fprintf(&b, "\n--- behaviour (drivers_test, %s, %.1fs)\n%s\n", bh.Mode, bh.Seconds, bh.Summary())
			for _, s := range bh.Suites {
				fmt.Fprintf(&b, "suite %s: %d passed, %d failed, %d skipped\n", s.Name, s.Passed, s.Failed, s.Skipped)
			}
			for _, name := range bh.Failing {
				fmt.Fprintf(&b, "FAILED %s: %s\n", name, bh.Failures[name])
			}
			if bh.Output != "" {
				fmt.Fprintf(&b, "\n--- drivers_test output\n%s\n", strings.TrimRight(bh.Output, "\n"))
			}
		}
		if len(rec.Kmsg) > 0 {
			fmt.Fprintf(&b, "\n--- kernel log during the cell\n%s\n", strings.Join(rec.Kmsg, "\n"))
		}
	}
	for _, s := range a.Sections {
		if s.Body != "" {
			fmt.Fprintf(&b, "\n--- %s\n%s\n", s.Title, strings.TrimRight(s.Body, "\n"))
		}
	}
	if len(o.Detail) > 0 {
		fmt.Fprintf(&b, "\n--- evidence\n%s\n", strings.Join(o.Detail, "\n"))
	}
	p := LogPath(cfg, a.Cell.Cell)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	if err := fsx.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(cfg.BuildDir, p)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}

// signalNote is " (SIGSEGV)" for a scap-open a signal ended.
func signalNote(sig string) string {
	if sig == "" {
		return ""
	}
	return " (" + sig + ")"
}

// transcript is what the loop prints of an attempt, in one write so that
// parallel VMs do not interleave: scap-open's output, the evidence it does
// not already show, and the outcome.
func transcript(a Attempt, log string) string {
	var b strings.Builder
	rec, o := a.Record, a.Outcome
	fmt.Fprintf(&b, "=== %s\n", a.Cell.ID())
	if rec != nil && rec.Output != "" {
		b.WriteString(strings.TrimRight(rec.Output, "\n") + "\n")
	}
	for _, l := range o.Detail {
		if rec == nil || !strings.Contains(rec.Output, l) {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	fmt.Fprintf(&b, "--- %s: %s: %s (log %s)\n", a.Cell.ID(), strings.ToUpper(o.String()), o.Reason, log)
	return b.String()
}

// errorOutcome is an error outcome with reason, for a cell that never ran.
func errorOutcome(reason string) guest.Outcome {
	return guest.Outcome{Status: guest.Error, Events: -1, Reason: reason}
}
