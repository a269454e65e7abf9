package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var payload = bytes.Repeat([]byte("kernel package bytes "), 5000)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// server serves payload at /good (with Range support), a short body at
// /short, a body cut off at /cut, and 404 elsewhere; it counts requests.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/good", "/pool/x_1_amd64.deb":
			http.ServeContent(w, r, "x.deb", time.Time{}, bytes.NewReader(payload))
		case "/cut": // declares the full length, then hangs up
			w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
			w.Write(payload[:len(payload)/2])
		case "/short":
			w.Header().Set("Content-Length", fmt.Sprint(len(payload)/2))
			w.Write(payload[:len(payload)/2])
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

// entries lists every name left in dir, partial files included.
func entries(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

func TestGetVerifiesAndCaches(t *testing.T) {
	s, hits := server(t)
	dir := t.TempDir()
	d := New(nil, 2)
	it := Item{URL: s.URL + "/good", Dest: filepath.Join(dir, "x.deb"), Size: int64(len(payload)), SHA256: sum(payload)}
	n, err := d.Get(context.Background(), it)
	if err != nil || n != int64(len(payload)) || d.Bytes() != n {
		t.Fatalf("first get: n=%d bytes=%d err=%v", n, d.Bytes(), err)
	}
	if b, _ := os.ReadFile(it.Dest); !bytes.Equal(b, payload) {
		t.Fatal("cached file differs from the payload")
	}
	before := hits.Load()
	d2 := New(nil, 2)
	if n, err := d2.Get(context.Background(), it); err != nil || n != 0 || d2.Bytes() != 0 || hits.Load() != before {
		t.Fatalf("re-run downloaded: n=%d bytes=%d hits=%d->%d err=%v", n, d2.Bytes(), before, hits.Load(), err)
	}
	// A corrupted cache entry is noticed and replaced.
	os.WriteFile(it.Dest, bytes.ToUpper(payload), 0o644)
	if n, err := d2.Get(context.Background(), it); err != nil || n != int64(len(payload)) {
		t.Fatalf("corrupt cache not refetched: n=%d err=%v", n, err)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("cache holds %v, want only x.deb", got)
	}
}

func TestBadDownloadsLeaveNothing(t *testing.T) {
	s, _ := server(t)
	cases := map[string]struct {
		item Item
		want string
	}{
		"sha mismatch":           {Item{URL: s.URL + "/good", Size: int64(len(payload)), SHA256: sum([]byte("other"))}, "SHA256 mismatch"},
		"truncated":              {Item{URL: s.URL + "/short", Size: int64(len(payload)), SHA256: sum(payload)}, "truncated"},
		"too long":               {Item{URL: s.URL + "/good", Size: 10, SHA256: sum(payload[:10])}, "too long"},
		"cut body, size unknown": {Item{URL: s.URL + "/cut"}, "EOF"},
		"404":                    {Item{URL: s.URL + "/missing.deb", Size: 5}, "404"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c.item.Dest = filepath.Join(dir, "x.deb")
			_, err := New(nil, 1).Get(context.Background(), c.item)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.item.URL) {
				t.Fatalf("want an error naming the URL and %q, got %v", c.want, err)
			}
			if got := entries(t, dir); len(got) != 0 {
				t.Errorf("cache holds %v after a failed download", got)
			}
		})
	}
}

func TestResume(t *testing.T) {
	s, _ := server(t)
	dir := t.TempDir()
	it := Item{URL: s.URL + "/good", Dest: filepath.Join(dir, "x.deb"), Size: int64(len(payload)), SHA256: sum(payload)}
	part := filepath.Join(dir, ".partial", "x.deb.part")
	os.MkdirAll(filepath.Dir(part), 0o755)
	os.WriteFile(part, payload[:1000], 0o644)
	d := New(nil, 1)
	if _, err := d.Get(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	if d.Bytes() != int64(len(payload)-1000) {
		t.Errorf("received %d bytes, want only the missing %d", d.Bytes(), len(payload)-1000)
	}
	if b, _ := os.ReadFile(it.Dest); !bytes.Equal(b, payload) {
		t.Error("resumed file differs")
	}
}

func TestGetAllIsBoundedAndIndependent(t *testing.T) {
	var mu sync.Mutex
	cur, peak := 0, 0
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		defer func() { mu.Lock(); cur--; mu.Unlock() }()
		time.Sleep(20 * time.Millisecond)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(payload)
	}))
	defer s.Close()
	dir := t.TempDir()
	var items []Item
	for i := range 8 {
		items = append(items, Item{URL: s.URL + "/f", Dest: filepath.Join(dir, fmt.Sprint(i)), Size: int64(len(payload)), SHA256: sum(payload)})
	}
	items = append(items, Item{URL: s.URL + "/missing", Dest: filepath.Join(dir, "m")})
	var progress atomic.Int64
	d := New(nil, 3)
	d.OnProgress(func(n int64) { progress.Add(n) })
	res := d.GetAll(context.Background(), items)
	for i, r := range res[:8] {
		if r.Err != nil {
			t.Errorf("item %d: %v", i, r.Err)
		}
	}
	if res[8].Err == nil || !strings.Contains(res[8].Err.Error(), "404") {
		t.Errorf("missing item: %v", res[8].Err)
	}
	if peak > 3 {
		t.Errorf("%d transfers at once, limit 3", peak)
	}
	if progress.Load() != d.Bytes() || d.Bytes() != 8*int64(len(payload)) {
		t.Errorf("progress %d, bytes %d", progress.Load(), d.Bytes())
	}
}

func TestCancelKeepsPartialForResume(t *testing.T) {
	started := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
		w.Write(payload[:1000])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	defer s.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; time.Sleep(50 * time.Millisecond); cancel() }()
	it := Item{URL: s.URL + "/x", Dest: filepath.Join(dir, "x.deb"), Size: int64(len(payload))}
	if _, err := New(nil, 1).Get(ctx, it); err == nil {
		t.Fatal("cancelled download succeeded")
	}
	if _, err := os.Stat(it.Dest); err == nil {
		t.Error("a cancelled download appeared under its final name")
	}
	if fi, err := os.Stat(filepath.Join(dir, ".partial", "x.deb.part")); err != nil || fi.Size() == 0 {
		t.Errorf("no partial file kept to resume: %v", err)
	}
}

// A transfer that stops receiving (a connection that silently died) is
// abandoned after the stall time and resumed, instead of hanging the run.
func TestStalledTransferResumes(t *testing.T) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(payload)))
			w.Write(payload[:len(payload)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // hold the connection open, sending nothing
			return
		}
		http.ServeContent(w, r, "x.deb", time.Time{}, bytes.NewReader(payload))
	}))
	t.Cleanup(s.Close)
	dir := t.TempDir()
	it := Item{URL: s.URL + "/x.deb", Dest: filepath.Join(dir, "x.deb"), Size: int64(len(payload)), SHA256: sum(payload)}
	d := New(nil, 1)
	d.stall = 200 * time.Millisecond
	if _, err := d.Get(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(it.Dest); err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("content after a stall: %d bytes, %v", len(b), err)
	}
	if hits.Load() != 2 {
		t.Errorf("%d requests, want 2 (the stalled one and its resume)", hits.Load())
	}

	// Without a known size there is nothing to resume against: an error.
	hits.Store(0)
	it = Item{URL: s.URL + "/y.deb", Dest: filepath.Join(dir, "y.deb")}
	if _, err := d.Get(context.Background(), it); err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Errorf("want a stall error, got %v", err)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("cache after a stalled download: %v", got)
	}
}
