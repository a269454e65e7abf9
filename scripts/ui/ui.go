// Package ui prints what the suite does for people: one line per event worth
// knowing, a progress bar for long work when the output is a terminal, and
// plain lines when it is not (CMake, CI logs), so logs stay greppable.
//
// It is hand-written on purpose. A stage's output is mostly lines (every
// cell's outcome, every download), with one count of the stage's work
// under them; a multi-bar library (github.com/vbauerster/mpb was weighed:
// a bar per parallel download or compile cell) redraws a block of bars,
// which on two to eight parallel jobs adds motion without information the
// lines do not already give, needs its own writer wrapped around every
// line printed above the bars, and would be the one dependency of this
// package. One bar, one mutex, about a hundred lines.
package ui

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Printer writes lines and progress to one writer. It is safe for
// concurrent use by the workers of a stage.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	bar   *Bar // the bar drawn on the last line, if any
	start time.Time
}

// New returns a Printer on w; progress bars are drawn only when w is a
// terminal and TERM is not "dumb".
func New(w io.Writer) *Printer {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = os.Getenv("TERM") != "dumb" && os.Getenv("CI") == ""
		}
	}
	return &Printer{w: w, tty: tty, start: time.Now()}
}

// Stdout is a Printer on the process's standard output.
func Stdout() *Printer { return New(os.Stdout) }

// Discard is a Printer that prints nothing (tests).
func Discard() *Printer { return New(io.Discard) }

// TTY reports whether the printer draws progress bars.
func (p *Printer) TTY() bool { return p.tty }

// Writer returns the underlying writer, for streaming output such as a
// driver's log to the terminal. Use Linef for anything else.
func (p *Printer) Writer() io.Writer { return lockedWriter{p} }

// Linef prints one line.
func (p *Printer) Linef(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearBar()
	fmt.Fprintf(p.w, strings.TrimRight(format, "\n")+"\n", args...)
	p.drawBar()
}

// Bar is a progress bar for work measured in units (bytes, cells).
type Bar struct {
	p      *Printer
	label  string
	unit   string
	total  int64
	done   int64
	last   time.Time
	closed bool
}

// Progress starts a bar. unit is "B" for bytes (shown in MiB) or a noun such
// as "cells". Without a terminal it prints nothing; the caller's Linef lines
// carry the news.
func (p *Printer) Progress(label, unit string, total int64) *Bar {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearBar()
	b := &Bar{p: p, label: label, unit: unit, total: total}
	p.bar = b
	p.drawBar()
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int64) {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.done += n
	if time.Since(b.last) > 100*time.Millisecond || b.done >= b.total {
		b.last = time.Now()
		b.p.drawBar()
	}
}

// Done removes the bar.
func (b *Bar) Done() {
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	if b.p.bar == b {
		b.p.clearBar()
		b.p.bar = nil
	}
	b.closed = true
}

func (p *Printer) clearBar() {
	if p.tty && p.bar != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *Printer) drawBar() {
	b := p.bar
	if !p.tty || b == nil || b.closed {
		return
	}
	const width = 30
	frac := 0.0
	if b.total > 0 {
		frac = min(float64(b.done)/float64(b.total), 1)
	}
	fill := int(frac * width)
	count := fmt.Sprintf("%d/%d %s", b.done, b.total, b.unit)
	if b.unit == "B" {
		count = fmt.Sprintf("%.1f/%.1f MiB", float64(b.done)/(1<<20), float64(b.total)/(1<<20))
	}
	fmt.Fprintf(p.w, "\r\033[K%s [%s%s] %3.0f%% %s", b.label,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, count)
}

type lockedWriter struct{ p *Printer }

func (l lockedWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	l.p.clearBar()
	n, err := l.p.w.Write(b)
	l.p.drawBar()
	return n, err
}
