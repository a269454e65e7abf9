package report

import (
	"image/color"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Matrix selects which question a matrix answers.
type Matrix int

const (
	// Compiled: did the driver compile for this kernel with this compiler?
	Compiled Matrix = iota
	// Success: did it compile, load in a VM and deliver events?
	Success
)

// State is what one matrix shows for one cell.
type State int

// States, in legend order.
const (
	StateNone        State = iota // no such cell in the results
	StateCompiled                 // compiled (Compiled matrix)
	StatePass                     // compiled, loaded, delivered events
	StateFail                     // compile failed (Compiled) or test failed (Success)
	StateNotCompiled              // Success matrix: the compile failed, nothing to test
	StateError                    // infrastructure error: the answer is unknown
	StateSkip                     // not applicable (e.g. no BTF, no bpf in this libs)
	StateNotRun                   // not compiled or not tested yet
	// StateBehaviour: loaded and delivered events, but drivers_test found
	// events that are wrong (Success matrix).
	StateBehaviour
)

// StateOf returns what matrix m shows for cell c (nil: no cell).
func StateOf(m Matrix, c *results.Cell) State {
	if c == nil {
		return StateNone
	}
	if c.Compile != nil {
		switch c.Compile.Status {
		case results.CompileSkip:
			return StateSkip
		case results.CompileError:
			return StateError
		case results.CompileFail:
			if m == Success {
				return StateNotCompiled
			}
			return StateFail
		}
	}
	if m == Compiled {
		if c.Compile != nil && c.Compile.Status == results.CompileOK {
			return StateCompiled
		}
		return StateNotRun
	}
	if c.Test == nil {
		return StateNotRun
	}
	switch c.Test.Status {
	case results.TestPass:
		return StatePass
	case results.TestFail:
		if c.Test.Kind == results.KindBehaviour {
			return StateBehaviour
		}
		return StateFail
	case results.TestSkip:
		return StateSkip
	case results.TestError:
		return StateError
	}
	return StateNotRun
}

// outcome is a cell's overall state across both stages, as the diff
// against an earlier run sees it: the test result when there is one, else
// the compile result. A test recorded as not run stays "not run": only a
// cell without any test record is "compiled", awaiting its test.
func outcome(c *results.Cell) State {
	s := StateOf(Success, c)
	if s == StateNotRun && c.Test == nil && StateOf(Compiled, c) == StateCompiled {
		return StateCompiled
	}
	return s
}

// States returns the states matrix m can show, in legend order.
func States(m Matrix) []State {
	if m == Compiled {
		return []State{StateCompiled, StateFail, StateError, StateSkip, StateNotRun}
	}
	return []State{StatePass, StateBehaviour, StateFail, StateError, StateNotCompiled, StateSkip, StateNotRun}
}

// Label is the legend text of a state.
func (s State) Label() string {
	switch s {
	case StateCompiled:
		return "compiled"
	case StatePass:
		return "pass"
	case StateBehaviour:
		return "wrong events"
	case StateFail:
		return "fail"
	case StateNotCompiled:
		return "not compiled"
	case StateError:
		return "infra error"
	case StateSkip:
		return "skip"
	case StateNotRun:
		return "not run"
	}
	return "not in grid"
}

// Emoji is how the Markdown tables show a state.
func (s State) Emoji() string {
	switch s {
	case StateCompiled:
		return "🔵"
	case StatePass:
		return "🟢"
	case StateBehaviour:
		return "🟠"
	case StateFail:
		return "❌"
	case StateNotCompiled:
		return "⛔"
	case StateError:
		return "⚠️"
	case StateSkip:
		return "🟡"
	case StateNotRun:
		return "⚪"
	}
	return ""
}

// Color is how the PNG matrices fill a state's cells. The hues follow the
// Okabe-Ito palette, which stays distinct for colour-blind readers.
func (s State) Color() color.RGBA {
	switch s {
	case StateCompiled:
		return color.RGBA{0x00, 0x72, 0xb2, 0xff} // blue, as in the original
	case StatePass:
		return color.RGBA{0x00, 0x9e, 0x73, 0xff} // bluish green
	case StateBehaviour:
		return color.RGBA{0xe6, 0x9f, 0x00, 0xff} // orange
	case StateFail:
		return color.RGBA{0xd5, 0x3e, 0x00, 0xff} // vermillion
	case StateNotCompiled:
		return color.RGBA{0xf2, 0xb8, 0xa2, 0xff} // pale vermillion
	case StateError:
		return color.RGBA{0x6a, 0x3d, 0x9a, 0xff} // purple
	case StateSkip:
		return color.RGBA{0xf0, 0xe4, 0x42, 0xff} // yellow
	case StateNotRun:
		return color.RGBA{0xd4, 0xd4, 0xd4, 0xff} // grey
	}
	return color.RGBA{0xff, 0xff, 0xff, 0xff}
}

// bad reports whether a state is a failure a reader must look at.
func (s State) bad() bool {
	return s == StateFail || s == StateNotCompiled || s == StateError || s == StateBehaviour
}
