package archive

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// A .deb is an ar archive holding debian-binary, control.tar.* and
// data.tar{,.xz,.zst,.gz,.bz2}. The ar container is read here by hand (60-byte
// member headers): github.com/blakesmith/ar, the usual Go reader, panics
// on malformed headers (found by FuzzExtract), and a hostile package must
// be an error, not a crash.

const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// extractDeb unpacks the data.tar member of a Debian package.
func extractDeb(r io.Reader, t *tree) error {
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != arMagic {
		return errors.New("not an ar archive")
	}
	for {
		name, size, err := nextArMember(r)
		if errors.Is(err, io.EOF) {
			return errors.New("no data.tar member: not a binary package")
		}
		if err != nil {
			return err
		}
		if !strings.HasPrefix(name, "data.tar") {
			// Members are padded to an even size.
			if _, err := io.CopyN(io.Discard, r, size+size%2); err != nil && !(errors.Is(err, io.EOF) && size%2 == 1) {
				return fmt.Errorf("ar member %s: %w", name, err)
			}
			continue
		}
		z, closeZ, err := decompress(io.LimitReader(r, size), path.Ext(strings.TrimPrefix(name, "data")))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer closeZ()
		if err := extractTar(z, t); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
}

// nextArMember reads one member header and returns the member's name and
// size; the member's data follows in r.
func nextArMember(r io.Reader) (string, int64, error) {
	var h [arHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return "", 0, errors.New("ar member header cut short")
		}
		return "", 0, err
	}
	if string(h[58:60]) != "`\n" {
		return "", 0, errors.New("bad ar member header")
	}
	// GNU ar ends names with "/".
	name := strings.TrimSuffix(strings.TrimRight(string(h[0:16]), " "), "/")
	size, err := strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("ar member %q: bad size %q", name, h[48:58])
	}
	return name, size, nil
}
