package report

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHistoryRecord(t *testing.T) {
	h := History{Dir: filepath.Join(t.TempDir(), "history")}
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	prev, err := h.Record([]byte("A"), t0)
	if err != nil || prev != "" {
		t.Fatalf("first record: previous %q, %v", prev, err)
	}
	// The clock went back an hour: B must still sort after A.
	prevB, err := h.Record([]byte("B"), t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(prevB); string(got) != "A" {
		t.Fatalf("B compares against %q holding %q, want A's copy", prevB, got)
	}
	// Rendering B again adds nothing and compares against A again.
	again, err := h.Record([]byte("B"), t0.Add(time.Hour))
	if err != nil || again != prevB {
		t.Fatalf("re-render: previous %q (%v), want %q", again, err, prevB)
	}
	list, _ := h.entries()
	if len(list) != 2 {
		t.Fatalf("history has %d entries, want 2", len(list))
	}
	if last, _ := os.ReadFile(list[1]); string(last) != "B" {
		t.Errorf("newest entry holds %q, want B", last)
	}
}
