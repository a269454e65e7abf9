// Package archive extracts kernel packages (.deb and .rpm) into a directory
// tree, in pure Go and streaming: nothing is read whole into memory and no
// ar, dpkg, tar, cpio or rpm2cpio process runs.
//
// Extraction is safe by construction: an entry whose name is absolute or
// contains "..", or that would be written through a symbolic link, is refused
// with an error naming the package and the entry. Symbolic links themselves
// are kept as they are, absolute targets included, because Debian's header
// packages point at absolute /usr/src and /usr/lib/linux-kbuild-* paths that
// the compile stage re-creates with bind mounts.
package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/xi2/xz"
)

// EntryError is an archive entry that extraction refused or failed on.
type EntryError struct {
	Package string // the package file
	Entry   string // the entry's name in the archive
	Err     error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s: entry %q: %v", filepath.Base(e.Package), e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// ErrUnsafe is wrapped by every refusal of an entry that would escape the
// destination directory.
var ErrUnsafe = errors.New("unsafe entry")

// Extract unpacks the package file pkg (.deb or .rpm, recognised by its
// first bytes, not its name) into dest, which must exist. Several packages
// may be extracted into one dest, one after the other. It stops between
// entries when ctx is cancelled.
func Extract(ctx context.Context, pkg, dest string) error {
	f, err := os.Open(pkg)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	magic, err := br.Peek(8)
	if err != nil {
		return fmt.Errorf("extract %s: too short to be a package: %w", pkg, err)
	}
	t := newTree(ctx, dest, pkg)
	switch {
	case bytes.Equal(magic, []byte("!<arch>\n")):
		err = extractDeb(br, t)
	case bytes.Equal(magic[:4], rpmLeadMagic):
		err = extractRPM(br, t)
	default:
		return fmt.Errorf("extract %s: neither a .deb (ar) nor an .rpm", pkg)
	}
	if err != nil {
		var ee *EntryError
		if errors.As(err, &ee) {
			return ee
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("extract %s: %w", pkg, err)
	}
	return t.finish()
}

// decompress wraps r in the decompressor that kind names: a file name
// suffix (".xz", ".zst", ".gz", ".bz2", "" for none) or an rpm payload
// compressor ("xz", "zstd", "gzip", "bzip2", "lzma").
//
// xz uses github.com/xi2/xz (a port of xz-embedded): for the 100 MiB
// data.tar of a Debian kernel image it decompresses about five times faster
// than github.com/ulikunitz/xz, which matters with many kernels.
func decompress(r io.Reader, kind string) (io.Reader, func(), error) {
	noop := func() {}
	switch strings.TrimPrefix(kind, ".") {
	case "", "none", "tar", "cpio":
		return r, noop, nil
	case "xz":
		x, err := xz.NewReader(r, 0)
		return x, noop, err
	case "lzma":
		return nil, noop, errors.New("lzma (legacy) payloads are not supported; xz, zstd, gzip and bzip2 are")
	case "zst", "zstd":
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, noop, err
		}
		return z, z.Close, nil
	case "gz", "gzip":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, noop, err
		}
		return z, func() { z.Close() }, nil
	case "bz2", "bzip2":
		return bzip2.NewReader(r), noop, nil
	}
	return nil, noop, fmt.Errorf("unknown compression %q", kind)
}
