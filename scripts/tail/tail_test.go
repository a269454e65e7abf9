package tail

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestBufferKeepsTheEnd(t *testing.T) {
	b := Buffer{Max: 8}
	for _, s := range []string{"abc", "defgh", "ijklmnop", "q"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "jklmnopq" {
		t.Errorf("String() = %q, want %q", got, "jklmnopq")
	}
	got := b.Bytes()
	got[0] = 'X'
	if b.String() != "jklmnopq" {
		t.Error("Bytes() shares its array with the buffer")
	}
}

func TestBufferDefaultMax(t *testing.T) {
	var b Buffer
	b.Write(bytes.Repeat([]byte("a"), 5000))
	b.Write([]byte("end"))
	if got := len(b.Bytes()); got != 4096 {
		t.Errorf("kept %d bytes, want 4096", got)
	}
	if !strings.HasSuffix(b.String(), "aend") {
		t.Errorf("the end is lost: %q", b.String()[4090:])
	}
}

func TestBufferConcurrentWriters(t *testing.T) {
	b := Buffer{Max: 1 << 20}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&b, "%d:%d\n", w, i)
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 400 {
		t.Errorf("%d lines kept, want 400", got)
	}
}
