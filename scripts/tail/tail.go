// Package tail keeps the end of a command's output for an error message.
package tail

import (
	"slices"
	"sync"
)

// Buffer is an io.Writer that keeps the last Max bytes written to it
// (4 KiB when Max is 0). It is safe for concurrent writers, such as a
// command's stdout and stderr copied by two goroutines.
type Buffer struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// Write keeps the end of p. It never fails.
func (t *Buffer) Write(p []byte) (int, error) {
	limit := t.Max
	if limit <= 0 {
		limit = 4 << 10
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if n := len(t.b) - limit; n > 0 {
		t.b = slices.Clone(t.b[n:])
	}
	return len(p), nil
}

// Bytes returns a copy of what is kept.
func (t *Buffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.b)
}

// String returns what is kept.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
