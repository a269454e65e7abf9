package check

import (
	"context"
	"slices"
	"testing"
)

func TestParseList(t *testing.T) {
	got := parseList([]byte("FuzzParse\nok  \tgithub.com/x/grid\t0.010s\n?   \tgithub.com/x/empty\t[no test files]\nFuzzB\nFuzzA\nok  \tgithub.com/x/archive\t0.02s\n"))
	want := []FuzzTarget{{"github.com/x/archive", "FuzzA"}, {"github.com/x/archive", "FuzzB"}, {"github.com/x/grid", "FuzzParse"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// The module's own fuzz targets are found: the grid parser, the package
// readers, the guest report reader.
func TestFuzzTargetsOfThisModule(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test -list over the module")
	}
	ts, err := FuzzTargets(context.Background(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FuzzParse", "FuzzExtract", "FuzzExtractRPM", "FuzzCpio", "FuzzReadReport"} {
		if !slices.ContainsFunc(ts, func(x FuzzTarget) bool { return x.Name == want }) {
			t.Errorf("%s not found in %v", want, ts)
		}
	}
}

// A run that failed only on the engine's deadline is told apart from a
// finding: the output of the failed CI run, and of a real crash.
func TestDeadlineOnly(t *testing.T) {
	deadline := "fuzz: elapsed: 11s, execs: 27 (0/sec), new interesting: 0 (total: 9)\n--- FAIL: FuzzExtract (11.04s)\n    context deadline exceeded\nFAIL\nexit status 1\n"
	found := "--- FAIL: FuzzExtract (3.10s)\n    --- FAIL: FuzzExtract (0.00s)\n        testing.go:1591: panic: runtime error: index out of range\n    Failing input written to testdata/fuzz/FuzzExtract/0123\n    To re-run:\n    go test -run=FuzzExtract/0123\nFAIL\n"
	hung := "--- FAIL: FuzzExtract (24.19s)\n    fuzzing process hung or terminated unexpectedly while minimizing: EOF\n    Failing input written to testdata/fuzz/FuzzExtract/ef5b\nFAIL\n"
	for _, c := range []struct {
		out  string
		want bool
	}{{deadline, true}, {found, false}, {hung, false}, {"ok  \tx\t10s\n", false}} {
		if got := deadlineOnly([]byte(c.out)); got != c.want {
			t.Errorf("deadlineOnly(%q) = %v, want %v", c.out, got, c.want)
		}
	}
}
