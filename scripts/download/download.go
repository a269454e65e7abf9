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
//
// Every file is checked each time it is asked for: against the SHA256 the
// caller knows or, when the caller knows none (an unpinned URL), against the
// SHA256 recorded in <name>.sha256 when it was downloaded. A cached file
// that no longer matches (a bit flipped, a truncation, a hand edit) is
// fetched again, and the Result says so.
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
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
	bytes    atomic.Int64  // bytes received from the network
	limit    *rate.Limiter // shared by all transfers; nil is no limit
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

// Limit caps the bytes per second all transfers together receive (a shared
// link, a metered mirror); 0 or less is no limit. Set it before the first
// Get.
func (d *Downloader) Limit(bytesPerSecond int64) {
	if bytesPerSecond <= 0 {
		d.limit = nil
		return
	}
	d.limit = rate.NewLimiter(rate.Limit(bytesPerSecond), int(min(bytesPerSecond, limitChunk)))
}

// limitChunk is the most a rate-limited read asks for at once.
const limitChunk = 32 << 10

// Bytes is the number of bytes received from the network so far. A re-run
// over a complete cache leaves it at 0.
func (d *Downloader) Bytes() int64 { return d.bytes.Load() }

// Cached reports whether it.Dest already holds the expected file: size
// and SHA256 checked (the caller's, else the one recorded at download).
func Cached(it Item) (bool, error) {
	ok, _, err := cached(it)
	return ok, err
}

// cached is Cached, with the reason a file that is there does not count
// ("" when there is no file, or it matches).
func cached(it Item) (ok bool, mismatch string, err error) {
	fi, err := os.Stat(it.Dest)
	if errors.Is(err, os.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if !fi.Mode().IsRegular() {
		return false, "not a regular file", nil
	}
	if it.Size > 0 && fi.Size() != it.Size {
		return false, fmt.Sprintf("%d bytes, want %d", fi.Size(), it.Size), nil
	}
	want, from := strings.ToLower(it.SHA256), "expected"
	if want == "" {
		b, err := os.ReadFile(digestFile(it.Dest))
		if err != nil {
			// Downloaded before digests were recorded, or placed by hand:
			// nothing to check against; fetch it again to know.
			return false, "no recorded SHA256", nil
		}
		want, from = strings.TrimSpace(string(b)), "recorded at download"
	}
	sum, err := FileSHA256(it.Dest)
	if err != nil {
		return false, "", err
	}
	if sum != want {
		return false, fmt.Sprintf("SHA256 %s, %s %s", sum, from, want), nil
	}
	return true, "", nil
}

// digestFile is where the SHA256 of a downloaded file is recorded.
func digestFile(dest string) string { return dest + ".sha256" }

// Result tells what happened to one item.
type Result struct {
	Item    Item
	Fetched int64 // bytes received for it (0 when it was cached)
	// Replaced says why a cached copy was fetched again (it no longer
	// matched its SHA256 or size), "" when there was none or it matched.
	Replaced string
	Err      error
}

// GetAll fetches every item, at most jobs at once, and returns one Result
// per item in the same order. One item failing does not stop the others.
func (d *Downloader) GetAll(ctx context.Context, items []Item) []Result {
	res := make([]Result, len(items))
	var g errgroup.Group
	g.SetLimit(max(d.jobs, 1))
	for i, it := range items {
		res[i].Item = it
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				res[i].Err = err
				return nil
			}
			res[i].Fetched, res[i].Replaced, res[i].Err = d.get(ctx, it)
			return nil // each item's error is in its Result
		})
	}
	g.Wait()
	return res
}

// Get fetches one item unless the cache already holds it, and returns the
// number of bytes received.
func (d *Downloader) Get(ctx context.Context, it Item) (int64, error) {
	n, _, err := d.get(ctx, it)
	return n, err
}

// get is Get, also saying why a cached copy was replaced.
func (d *Downloader) get(ctx context.Context, it Item) (int64, string, error) {
	ok, mismatch, err := cached(it)
	if err != nil {
		return 0, "", fmt.Errorf("check %s: %w", it.Dest, err)
	}
	if ok {
		return 0, "", nil
	}
	if mismatch == "no recorded SHA256" {
		mismatch = "" // not a damaged copy: nothing to say
	}
	n, err := d.fetch(ctx, it)
	return n, mismatch, err
}

// fetch downloads it into place, resuming a partial transfer, and records
// its SHA256 beside it.
func (d *Downloader) fetch(ctx context.Context, it Item) (int64, error) {
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
	sum, err := FileSHA256(part)
	if err != nil {
		return total, err
	}
	if it.SHA256 != "" && sum != strings.ToLower(it.SHA256) {
		os.Remove(part)
		return total, fmt.Errorf("download %s: SHA256 mismatch: got %s, want %s (deleted)", it.URL, sum, it.SHA256)
	}
	// The digest is recorded before the file takes its name: a file under
	// its final name always has the digest it is checked against.
	if err := writeDigest(digestFile(it.Dest), sum); err != nil {
		os.Remove(part)
		return total, err
	}
	if err := fsx.Rename(part, it.Dest); err != nil {
		os.Remove(part)
		return total, err
	}
	return total, nil
}

// writeDigest records sum at p atomically.
func writeDigest(p, sum string) error { return fsx.WriteFile(p, []byte(sum+"\n"), 0o644) }

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
	w := &fileWriter{f: f}
	n, copyErr := io.Copy(w, &counter{ctx: ctx, r: resp.Body, d: d, stalled: stalled})
	closeErr := f.Close()
	got := have + n
	switch {
	case copyErr != nil && ctx.Err() != nil:
		return n, ctx.Err()
	case w.err != nil:
		// The disk, not the server: resuming would fail the same way.
		return n, diskError(w.err, part)
	case closeErr != nil:
		return n, fmt.Errorf("write %s: %w", part, closeErr)
	case it.Size > 0 && got > it.Size:
		return n, fmt.Errorf("too long: got %d bytes, want %d", got, it.Size)
	case it.Size > 0 && got < it.Size:
		return n, &shortError{got: got, want: it.Size}
	case copyErr != nil && rctx.Err() != nil:
		return n, fmt.Errorf("stalled: nothing received for %s", d.stall)
	case copyErr != nil:
		return n, copyErr
	}
	return n, nil
}

// diskError adds to a write error on a full disk what to do about it.
func diskError(err error, file string) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w (free space on the filesystem of %s, or set VM_BUILD_DIR to a larger one)", err, filepath.Dir(filepath.Dir(file)))
	}
	return err
}

// fileWriter remembers a failed write, so that a full disk is told apart
// from a transfer the server cut short.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// counter counts bytes read from the network and, as they come, puts off
// the stall deadline; under a rate limit it waits for its share before each
// read (and Ctrl-C ends the wait).
type counter struct {
	ctx     context.Context
	r       io.Reader
	d       *Downloader
	stalled *time.Timer
}

func (c *counter) Read(p []byte) (int, error) {
	if l := c.d.limit; l != nil {
		p = p[:min(len(p), l.Burst())]
		if err := l.WaitN(c.ctx, len(p)); err != nil {
			// Its share comes after the context's deadline: that
			// deadline, not the limit, ends the transfer.
			<-c.ctx.Done()
			return 0, c.ctx.Err()
		}
		// Waiting for the limit is not a stall.
		c.stalled.Reset(c.d.stall)
	}
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

// FileSHA256 is the lower-case hex SHA256 of the file at p.
func FileSHA256(p string) (string, error) {
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
