package loop

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

func TestShuffleRepeats(t *testing.T) {
	base := []string{"a", "b", "c", "d", "e", "f", "g"}
	one, two := slices.Clone(base), slices.Clone(base)
	Shuffle(one, 42)
	Shuffle(two, 42)
	if !slices.Equal(one, two) {
		t.Errorf("the same seed gave %v and %v", one, two)
	}
	other := slices.Clone(base)
	Shuffle(other, 43)
	if slices.Equal(one, other) && slices.Equal(one, base) {
		t.Errorf("seeds 42 and 43 both keep the order: %v", one)
	}
}

func TestSummaryPrint(t *testing.T) {
	var s Summary
	cell := func(k, c, d string) results.Cell { return results.Cell{Kernel: k, Compiler: c, Driver: d} }
	s.Add(Outcome{Cell: cell("6.1", "gcc-12", "kmod"), Outcome: guest.Outcome{Status: guest.Pass}})
	s.Add(Outcome{Cell: cell("6.1", "gcc-12", "bpf"), Outcome: guest.Outcome{Status: guest.Fail, Kind: guest.KindWarn, Reason: "WARNING: CPU: 0"}, Log: "logs/test/6.1/gcc-12_bpf.log"})
	s.Add(Outcome{Cell: cell("6.1", "clang-19", "modern_bpf"), Outcome: guest.Outcome{Status: guest.Error, Reason: "driver not open after 240 s"}})
	var b bytes.Buffer
	s.Print(ui.New(&b), 90*time.Second)
	got := b.String()
	for _, want := range []string{
		"test: 3 cells in 1m30s: 1 pass, 1 fail/warn, 1 error\n",
		"  fail/warn gcc-12/6.1/bpf: WARNING: CPU: 0 (log logs/test/6.1/gcc-12_bpf.log)\n",
		"  error clang-19/6.1/modern_bpf: driver not open after 240 s",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "pass gcc-12/6.1/kmod") {
		t.Errorf("a passing cell is listed:\n%s", got)
	}
}
