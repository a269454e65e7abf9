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
	if got := entries(t, dir); strings.Join(got, " ") != "/x.deb /x.deb.sha256" {
		t.Errorf("cache holds %v, want x.deb and its recorded digest", got)
	}
}

// A cached file altered on disk (a bit flip, a truncation) is caught on
// the next run by its SHA256, the index's or the one recorded when it was
// downloaded, fetched again, and the result says why.
func TestTamperedCacheIsReplaced(t *testing.T) {
	s, hits := server(t)
	for _, pinned := range []bool{true, false} {
		for name, damage := range map[string]func([]byte) []byte{
			"bit flip":   func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 1; return b },
			"truncation": func(b []byte) []byte { return b[:len(b)-7] },
		} {
			t.Run(fmt.Sprintf("%s/pinned=%v", name, pinned), func(t *testing.T) {
				dir := t.TempDir()
				it := Item{URL: s.URL + "/good", Dest: filepath.Join(dir, "x.deb")}
				if pinned {
					it.Size, it.SHA256 = int64(len(payload)), sum(payload)
				}
				d := New(nil, 1)
				if _, err := d.Get(context.Background(), it); err != nil {
					t.Fatal(err)
				}
				if r := d.GetAll(context.Background(), []Item{it}); r[0].Err != nil || r[0].Fetched != 0 || r[0].Replaced != "" {
					t.Fatalf("intact cache: %+v", r[0])
				}
				if err := os.WriteFile(it.Dest, damage(payload), 0o644); err != nil {
					t.Fatal(err)
				}
				before := hits.Load()
				r := d.GetAll(context.Background(), []Item{it})
				if r[0].Err != nil || r[0].Fetched != int64(len(payload)) || hits.Load() != before+1 {
					t.Fatalf("damaged cache not fetched again: %+v", r[0])
				}
				if r[0].Replaced == "" || (!strings.Contains(r[0].Replaced, "SHA256") && !strings.Contains(r[0].Replaced, "bytes")) {
					t.Errorf("no reason for the replacement: %q", r[0].Replaced)
				}
				if b, _ := os.ReadFile(it.Dest); !bytes.Equal(b, payload) {
					t.Error("the cache does not hold the good file again")
				}
			})
		}
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
	if got := entries(t, dir); strings.Join(got, " ") != "/x.deb /x.deb.sha256" {
		t.Errorf("cache after a stalled download: %v", got)
	}
}

// Under a rate limit a transfer takes at least as long as its bytes allow
// (a lower bound: a slow machine only adds to it), and Ctrl-C ends a
// transfer that is waiting for its share at once, keeping what it has.
func TestLimit(t *testing.T) {
	s, _ := server(t)
	const perSecond = 32 << 10
	d := New(nil, 1)
	d.Limit(perSecond)
	it := Item{URL: s.URL + "/good", Dest: filepath.Join(t.TempDir(), "x.deb"), Size: int64(len(payload)), SHA256: sum(payload)}
	start := time.Now()
	if _, err := d.Get(t.Context(), it); err != nil {
		t.Fatal(err)
	}
	// The first burst comes at once; the rest at the rate.
	if took, least := time.Since(start), time.Duration(float64(len(payload)-perSecond)/perSecond*float64(time.Second)); took < least {
		t.Errorf("%d bytes at %d bytes/s took %s, want at least %s", len(payload), perSecond, took, least)
	}

	slow := New(nil, 1)
	slow.Limit(1 << 10) // the whole payload would take 100 s
	it = Item{URL: s.URL + "/good", Dest: filepath.Join(t.TempDir(), "x.deb"), Size: int64(len(payload)), SHA256: sum(payload)}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start = time.Now()
	if _, err := slow.Get(ctx, it); err == nil {
		t.Fatal("cancelled download succeeded")
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("a cancelled transfer took %s to end: the wait for the limit ignores Ctrl-C", took)
	}
	fi, err := os.Stat(filepath.Join(filepath.Dir(it.Dest), ".partial", "x.deb.part"))
	if err != nil || fi.Size() == 0 || fi.Size() >= int64(len(payload)) {
		t.Errorf("want a partial file kept to resume, got %v %v", fi, err)
	}
}
