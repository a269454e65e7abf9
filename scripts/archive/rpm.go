package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The rpm container is read here by hand: it is four fixed structures
// (lead, signature header, header, payload) and we need two tags of the
// header. The rpm readers for Go are either unmaintained or were not
// available from the module proxy; the cpio payload itself is read with
// github.com/cavaliergopher/cpio.

var (
	rpmLeadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	rpmHeaderMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

const (
	rpmLeadSize = 96
	// Header tags this reader uses (rpmtag.h).
	tagPayloadFormat     = 1124
	tagPayloadCompressor = 1125
	// A kernel-devel header is a few MiB; refuse absurd sizes early.
	maxHeaderBytes = 256 << 20
	typeString     = 6
)

// rpmHeader is the index and data store of one rpm header structure.
type rpmHeader struct {
	index []rpmIndexEntry
	store []byte
}

type rpmIndexEntry struct {
	Tag, Type, Offset, Count int32
}

// readRPMHeader reads one header structure (magic, index, store).
func readRPMHeader(r io.Reader) (*rpmHeader, int64, error) {
	var pre [16]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, 0, err
	}
	if string(pre[:4]) != string(rpmHeaderMagic) {
		return nil, 0, errors.New("bad header magic")
	}
	n := binary.BigEndian.Uint32(pre[8:12])
	size := binary.BigEndian.Uint32(pre[12:16])
	if uint64(n)*16+uint64(size) > maxHeaderBytes {
		return nil, 0, fmt.Errorf("header too large (%d entries, %d bytes)", n, size)
	}
	h := &rpmHeader{index: make([]rpmIndexEntry, n), store: make([]byte, size)}
	if err := binary.Read(r, binary.BigEndian, h.index); err != nil {
		return nil, 0, err
	}
	if _, err := io.ReadFull(r, h.store); err != nil {
		return nil, 0, err
	}
	return h, 16 + int64(n)*16 + int64(size), nil
}

// str returns a string tag's value, or "" when the tag is absent.
func (h *rpmHeader) str(tag int32) string {
	for _, e := range h.index {
		if e.Tag != tag || e.Type != typeString || e.Offset < 0 || int(e.Offset) >= len(h.store) {
			continue
		}
		s := h.store[e.Offset:]
		if i := strings.IndexByte(string(s), 0); i >= 0 {
			s = s[:i]
		}
		return string(s)
	}
	return ""
}

// extractRPM unpacks an rpm's cpio payload.
func extractRPM(r io.Reader, t *tree) error {
	var lead [rpmLeadSize]byte
	if _, err := io.ReadFull(r, lead[:]); err != nil {
		return fmt.Errorf("rpm lead: %w", err)
	}
	_, n, err := readRPMHeader(r)
	if err != nil {
		return fmt.Errorf("rpm signature header: %w", err)
	}
	// The signature header is padded to a multiple of 8 bytes.
	if pad := (8 - n%8) % 8; pad > 0 {
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return fmt.Errorf("rpm signature padding: %w", err)
		}
	}
	h, _, err := readRPMHeader(r)
	if err != nil {
		return fmt.Errorf("rpm header: %w", err)
	}
	if f := h.str(tagPayloadFormat); f != "" && f != "cpio" {
		return fmt.Errorf("rpm payload format %q is not supported (only cpio)", f)
	}
	comp := h.str(tagPayloadCompressor)
	if comp == "" {
		comp = "gzip" // rpm's historical default
	}
	z, closeZ, err := decompress(r, comp)
	if err != nil {
		return fmt.Errorf("rpm payload (%s): %w", comp, err)
	}
	defer closeZ()
	if err := extractCpio(z, t); err != nil {
		return fmt.Errorf("rpm payload: %w", err)
	}
	return nil
}
