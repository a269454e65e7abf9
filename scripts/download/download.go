// Package download fetches files over HTTP into a cache directory: a
// bounded number at once, resuming interrupted transfers, and verified
// against the size and SHA256 the caller knows (from a signed index).
//
// A file appears under its final name only when it is complete and
// verified (written as <dir>/.partial/<name>.part, then renamed). A file
// that fails verification (wrong checksum, too short after retries, too
// long) is deleted, partial file included, so the cache never holds a bad
// package. An interrupted transfer (Ctrl-C) keeps its .part file so that
// the next run resumes it with an HTTP Range request; nothing ever reads a
// .part file except that resume.
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Item is one file to fetch.
type Item struct {
	URL    string
	Dest   string // final path in the cache
	Size   int64  // expected size in bytes; 0 if unknown
	SHA256 string // expected lower-case hex digest; "" if unknown
}

// Downloader fetches Items. The zero value is not usable; use New.
type Downloader struct {
	client   *http.Client
	jobs     int
	attempts int // tries per item when the server cuts a transfer short
	// stall is how long a transfer may receive nothing before it is
	// abandoned (and resumed, like one the server cut short): a connection
	// that silently died must not hang the stage.
	stall    time.Duration
	progress func(int64)
	bytes    atomic.Int64 // bytes received from the network
}

// New returns a Downloader that runs at most jobs transfers at once.
func New(client *http.Client, jobs int) *Downloader {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 60 * time.Second,
			IdleConnTimeout:       30 * time.Second,
		}}
	}
	return &Downloader{client: client, jobs: max(jobs, 1), attempts: 3, stall: 2 * time.Minute}
}

// OnProgress sets a function called with the number of bytes of each chunk
// as it arrives (for a progress bar). Set it before the first Get.
func (d *Downloader) OnProgress(f func(n int64)) { d.progress = f }

// Bytes is the number of bytes received from the network so far. A re-run
// over a complete cache leaves it at 0.
func (d *Downloader) Bytes() int64 { return d.bytes.Load() }

// Cached reports whether it.Dest already holds the expected file (size and,
// when known, SHA256 checked).
func Cached(it Item) (bool, error) {
	fi, err := os.Stat(it.Dest)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() || (it.Size > 0 && fi.Size() != it.Size) {
		return false, nil
	}
	if it.SHA256 == "" {
		return true, nil
	}
	sum, err := fileSHA256(it.Dest)
	return err == nil && sum == strings.ToLower(it.SHA256), err
}

// Result tells what happened to one item.
type Result struct {
	Item    Item
	Fetched int64 // bytes received for it (0 when it was cached)
	Err     error
}

// GetAll fetches every item, at most jobs at once, and returns one Result
// per item in the same order. One item failing does not stop the others.
func (d *Downloader) GetAll(ctx context.Context, items []Item) []Result {
	res := make([]Result, len(items))
	sem := make(chan struct{}, d.jobs)
	var wg sync.WaitGroup
	for i, it := range items {
		res[i].Item = it
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				res[i].Err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			res[i].Fetched, res[i].Err = d.Get(ctx, it)
		}()
	}
	wg.Wait()
	return res
}

// Get fetches one item unless the cache already holds it, and returns the
// number of bytes received.
func (d *Downloader) Get(ctx context.Context, it Item) (int64, error) {
	ok, err := Cached(it)
	if err != nil {
		return 0, fmt.Errorf("check %s: %w", it.Dest, err)
	}
	if ok {
		return 0, nil
	}
	part := filepath.Join(filepath.Dir(it.Dest), ".partial", filepath.Base(it.Dest)+".part")
	if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
		return 0, err
	}
	var total int64
	for attempt := 1; ; attempt++ {
		n, err := d.transfer(ctx, it, part)
		total += n
		if err == nil {
			break
		}
		var short *shortError
		if errors.As(err, &short) && attempt < d.attempts && ctx.Err() == nil {
			continue // resume where the server stopped
		}
		if ctx.Err() == nil {
			os.Remove(part) // a failed transfer leaves nothing behind
		}
		return total, fmt.Errorf("download %s: %w", it.URL, err)
	}
	if it.SHA256 != "" {
		sum, err := fileSHA256(part)
		if err != nil {
			return total, err
		}
		if sum != strings.ToLower(it.SHA256) {
			os.Remove(part)
			return total, fmt.Errorf("download %s: SHA256 mismatch: got %s, want %s (deleted)", it.URL, sum, it.SHA256)
		}
	}
	if err := os.Rename(part, it.Dest); err != nil {
		os.Remove(part)
		return total, err
	}
	return total, nil
}

// shortError is a transfer the server ended before the expected size.
type shortError struct{ got, want int64 }

func (e *shortError) Error() string {
	return fmt.Sprintf("truncated: got %d of %d bytes", e.got, e.want)
}

// transfer appends to part what the server sends, resuming from part's
// current size when it is smaller than the expected size.
func (d *Downloader) transfer(ctx context.Context, it Item, part string) (int64, error) {
	var have int64
	if fi, err := os.Stat(part); err == nil {
		have = fi.Size()
	}
	if it.Size == 0 || have >= it.Size {
		have = 0 // nothing to resume against, or already too long
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stalled := time.AfterFunc(d.stall, cancel)
	defer stalled.Stop()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, it.URL, nil)
	if err != nil {
		return 0, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && rctx.Err() != nil {
			return 0, fmt.Errorf("no answer in %s", d.stall)
		}
		return 0, err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		flags |= os.O_APPEND
	case resp.StatusCode == http.StatusOK:
		have = 0
		flags |= os.O_TRUNC
	default:
		return 0, fmt.Errorf("HTTP %s", resp.Status)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return 0, err
	}
	n, copyErr := io.Copy(f, &counter{r: resp.Body, d: d, stalled: stalled})
	closeErr := f.Close()
	got := have + n
	switch {
	case copyErr != nil && ctx.Err() != nil:
		return n, ctx.Err()
	case it.Size > 0 && got > it.Size:
		return n, fmt.Errorf("too long: got %d bytes, want %d", got, it.Size)
	case it.Size > 0 && got < it.Size:
		return n, &shortError{got: got, want: it.Size}
	case copyErr != nil && rctx.Err() != nil:
		return n, fmt.Errorf("stalled: nothing received for %s", d.stall)
	case copyErr != nil:
		return n, copyErr
	}
	return n, closeErr
}

// counter counts bytes read from the network and, as they come, puts off
// the stall deadline.
type counter struct {
	r       io.Reader
	d       *Downloader
	stalled *time.Timer
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.stalled.Reset(c.d.stall)
		c.d.bytes.Add(int64(n))
		if c.d.progress != nil {
			c.d.progress(int64(n))
		}
	}
	return n, err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
