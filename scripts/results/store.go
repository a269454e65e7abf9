package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
)

// Load reads a results file. A missing file is an empty File of the current
// schema, so the first stage of a fresh build directory starts from nothing.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Schema: SchemaVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes the content of a results file; name is used in errors.
func Parse(name string, data []byte) (*File, error) {
	f := &File{}
	if err := json.Unmarshal(data, f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + countLines(data[:min(int(se.Offset), len(data))])
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.Schema > SchemaVersion {
		return nil, fmt.Errorf("%s: schema %d is newer than this suite understands (%d)", name, f.Schema, SchemaVersion)
	}
	if f.Schema == 0 {
		f.Schema = SchemaVersion
	}
	for i, c := range f.Cells {
		if c.Kernel == "" || c.Compiler == "" || c.Driver == "" {
			return nil, fmt.Errorf("%s: cell %d: kernel, compiler and driver must all be set (got %q)", name, i, c.ID())
		}
	}
	return f, nil
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// Update applies fn to the results file at path under an exclusive lock and
// writes the outcome atomically. The lock is an flock on path+".lock", so
// goroutines and separate processes that record cells at the same time are
// serialised and none loses another's record. If fn returns an error the
// file is left as it was.
func Update(path string, fn func(*File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("update results: %w", err)
	}
	unlock, err := lock(path + ".lock")
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	defer unlock()
	f, err := Load(path)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := fn(f); err != nil {
		return err
	}
	return Save(path, f)
}

// Save writes f to path atomically (temporary file, fsync, rename), with
// its cells in display order. It does not lock: use Update when other
// writers may be at work.
func Save(path string, f *File) error {
	f.Schema = SchemaVersion
	f.Sort()
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return fsx.WriteFile(path, append(data, '\n'), 0o644)
}

// lock takes an exclusive flock on name, creating it if needed.
func lock(name string) (unlock func(), err error) { return fsx.Lock(name, nil) }
