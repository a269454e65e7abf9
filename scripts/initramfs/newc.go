package initramfs

import (
	"fmt"
	"io"
	"os"
)

// Mode type bits of the newc format (the same values as stat's st_mode).
const (
	modeType    = 0o170000
	typeReg     = 0o100000
	typeDir     = 0o040000
	typeSymlink = 0o120000
	typeChar    = 0o020000
)

// newcWriter writes the "new ASCII" cpio format the kernel's initramfs
// unpacker reads: a 110-byte header of hex fields, the NUL-terminated name
// padded to 4 bytes, the data padded to 4 bytes, and a TRAILER!!! entry.
// Owner is root and every mtime is Mtime, so equal inputs give equal
// archives.
type newcWriter struct {
	w     io.Writer
	n     int64
	inode int
}

var zeros [4]byte

// Mtime is the modification time of every entry, 2020-01-01T00:00:00Z:
// fixed, so archives are reproducible, and a real date rather than the
// epoch, as a normal system's files have (libs' drivers_test checks that
// the executable of an execve event has one).
const Mtime = 1577836800

func (nw *newcWriter) write(b []byte) error {
	n, err := nw.w.Write(b)
	nw.n += int64(n)
	return err
}

func (nw *newcWriter) pad() error {
	if r := nw.n % 4; r != 0 {
		return nw.write(zeros[:4-r])
	}
	return nil
}

func (nw *newcWriter) header(name string, mode uint32, nlink int, size int64, rdev [2]int) error {
	nw.inode++
	if size > 0xffffffff {
		return fmt.Errorf("%d bytes is too large for newc", size)
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		nw.inode, mode, 0, 0, nlink, Mtime, size, 0, 0, rdev[0], rdev[1], len(name)+1, 0)
	if err := nw.write([]byte(h)); err != nil {
		return err
	}
	if err := nw.write(append([]byte(name), 0)); err != nil {
		return err
	}
	return nw.pad()
}

func (nw *newcWriter) entry(name string, e entry) error {
	switch e.mode & modeType {
	case typeDir:
		return nw.header(name, e.mode, 2, 0, [2]int{})
	case typeChar:
		return nw.header(name, e.mode, 1, 0, e.rdev)
	case typeSymlink:
		if err := nw.header(name, e.mode, 1, int64(len(e.link)), [2]int{}); err != nil {
			return err
		}
		if err := nw.write([]byte(e.link)); err != nil {
			return err
		}
		return nw.pad()
	}
	if e.hostPath == "" {
		if err := nw.header(name, e.mode, 1, int64(len(e.data)), [2]int{}); err != nil {
			return err
		}
		if err := nw.write(e.data); err != nil {
			return err
		}
		return nw.pad()
	}
	f, err := os.Open(e.hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := nw.header(name, e.mode, 1, fi.Size(), [2]int{}); err != nil {
		return err
	}
	start := nw.n
	if _, err := io.Copy(writerFunc(nw.write), f); err != nil {
		return err
	}
	if nw.n-start != fi.Size() {
		return fmt.Errorf("%s changed while being archived", e.hostPath)
	}
	return nw.pad()
}

func (nw *newcWriter) trailer() error {
	return nw.header("TRAILER!!!", 0, 1, 0, [2]int{})
}

type writerFunc func([]byte) error

func (f writerFunc) Write(b []byte) (int, error) {
	if err := f(b); err != nil {
		return 0, err
	}
	return len(b), nil
}
