package main

import (
	"fmt"
	"sync"
)

// headTail keeps the first and last bytes of a long output: the start says
// what ran, the end says how it ended (the verifier's last lines). It is
// safe for the writers of scap-open's two streams and a reader.
type headTail struct {
	mu         sync.Mutex
	head, tail []byte
	dropped    int
}

const headMax, tailMax = 16 << 10, 112 << 10

func (h *headTail) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(b)
	if room := headMax - len(h.head); room > 0 {
		k := min(room, len(b))
		h.head = append(h.head, b[:k]...)
		b = b[k:]
	}
	h.tail = append(h.tail, b...)
	if over := len(h.tail) - tailMax; over > 0 {
		h.dropped += over
		h.tail = append(h.tail[:0], h.tail[over:]...)
	}
	return n, nil
}

func (h *headTail) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped == 0 {
		return string(h.head) + string(h.tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes cut ...]\n%s", h.head, h.dropped, h.tail)
}
