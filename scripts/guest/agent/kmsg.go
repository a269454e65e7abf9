package main

import (
	"bytes"
	"io"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"golang.org/x/sys/unix"
)

// kmsg reads /dev/kmsg with raw non-blocking reads: an *os.File would
// park a read on the poller instead of returning EAGAIN at the end.
type kmsg int

// openKmsg opens the kernel log device positioned at its end, so read
// returns only what the cell caused. "" or a device that cannot be opened
// gives a log that reads nothing.
func openKmsg(dev string) kmsg {
	if dev == "" {
		return -1
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		return -1
	}
	return kmsg(fd)
}

func (k kmsg) Close() {
	if k >= 0 {
		unix.Close(int(k))
	}
}

// kmsgKeep is how many of the cell's kernel log lines a record carries.
const kmsgKeep = 200

// read returns the messages written since the last read (the last
// kmsgKeep of them), without the record prefix "prio,seq,time,flags;", and
// the first WARN/BUG/oops report among all of them: a splat early in a
// chatty cell must not be lost with the lines that are dropped.
func (k kmsg) read() (lines, splat []string) {
	if k < 0 {
		return nil, nil
	}
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(int(k), buf)
		if err == unix.EPIPE { // records were overwritten; read on
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		rec := buf[:n]
		if i := bytes.IndexByte(rec, ';'); i >= 0 {
			rec = rec[i+1:]
		}
		if i := bytes.IndexByte(rec, '\n'); i >= 0 {
			rec = rec[:i]
		}
		lines = append(lines, string(rec))
	}
	splat = guest.SplatLines(lines, 30)
	if len(lines) > kmsgKeep {
		lines = lines[len(lines)-kmsgKeep:]
	}
	return lines, splat
}
