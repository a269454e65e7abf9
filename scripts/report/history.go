package report

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
)

// historyKeep is how many copies the history keeps.
const historyKeep = 100

const historyStamp = "20060102T150405.000000000Z"

// History is the list of earlier results files in a directory.
type History struct {
	Dir string
}

// entries lists the history files, oldest first.
func (h History) entries() ([]string, error) {
	des, err := os.ReadDir(h.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var out []string
	for _, de := range des {
		if n := de.Name(); de.Type().IsRegular() && strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			out = append(out, filepath.Join(h.Dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Record keeps data (the content of results.json) in the history, unless
// the newest entry already holds the same content, and returns the newest
// earlier entry with different content: the run to compare against ("" if
// there is none). Rendering the same results twice thus compares against
// the same earlier run both times.
func (h History) Record(data []byte, now time.Time) (previous string, err error) {
	list, err := h.entries()
	if err != nil {
		return "", err
	}
	if n := len(list); n > 0 {
		last, err := os.ReadFile(list[n-1])
		if err != nil {
			return "", fmt.Errorf("history: %w", err)
		}
		if bytes.Equal(last, data) {
			if n > 1 {
				return list[n-2], nil
			}
			return "", nil
		}
		previous = list[n-1]
	}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return "", fmt.Errorf("history: %w", err)
	}
	name := h.freeName(now.UTC())
	if previous != "" && name <= previous {
		// The clock went back: keep the history in order anyway.
		if t, err := time.Parse(historyStamp, strings.TrimSuffix(filepath.Base(previous), ".json")); err == nil {
			name = h.freeName(t.Add(time.Nanosecond))
		}
	}
	if err := fsx.WriteFile(name, data, 0o644); err != nil {
		return "", fmt.Errorf("history: %w", err)
	}
	for _, old := range list[:max(0, len(list)+1-historyKeep)] {
		os.Remove(old)
	}
	return previous, nil
}

func (h History) freeName(t time.Time) string {
	for {
		name := filepath.Join(h.Dir, t.Format(historyStamp)+".json")
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		t = t.Add(time.Nanosecond)
	}
}
