package loop

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// moduleDeps returns the kernel's own modules that module ko needs (its
// .modinfo "depends="), resolved through modulesDir/modules.dep, in load
// order (dependencies first), as paths on the host.
func moduleDeps(ko, modulesDir string) ([]string, error) {
	direct, err := modinfoDepends(ko)
	if err != nil || len(direct) == 0 {
		return nil, err
	}
	return resolveDeps(filepath.Base(ko), direct, modulesDir)
}

// resolveDeps orders the modules named in direct and everything they
// depend on, dependencies first.
func resolveDeps(what string, direct []string, modulesDir string) ([]string, error) {
	if modulesDir == "" {
		return nil, fmt.Errorf("%s needs modules %v but the kernel has no modules tree", what, direct)
	}
	deps, err := readModulesDep(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		d, ok := deps[name]
		if !ok {
			return fmt.Errorf("%s needs module %s, which is not in %s/modules.dep", what, name, modulesDir)
		}
		for _, sub := range d.deps {
			if err := visit(sub); err != nil {
				return err
			}
		}
		order = append(order, filepath.Join(modulesDir, d.path))
		return nil
	}
	for _, name := range direct {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modName is a module's name as modinfo and modprobe compare them.
func modName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// modinfoDepends is the "depends=" of module ko's .modinfo. A file that is
// not an ELF object needs nothing: the guest's load of it fails, in the
// kernel's words, as it would for a user.
func modinfoDepends(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	var formatErr *elf.FormatError
	if errors.As(err, &formatErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", ko, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, nil
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", ko, err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var out []string
			for _, d := range strings.Split(string(v), ",") {
				if d = strings.TrimSpace(d); d != "" {
					out = append(out, modName(d))
				}
			}
			return out, nil
		}
	}
	return nil, nil
}

type depEntry struct {
	path string   // relative to the modules dir
	deps []string // names
}

func readModulesDep(path string) (map[string]depEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	out := map[string]depEntry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		e := depEntry{path: mod}
		for _, d := range strings.Fields(rest) {
			e.deps = append(e.deps, modName(d))
		}
		out[modName(mod)] = e
	}
	return out, sc.Err()
}

// readModule returns a module file's content, decompressed (Debian ships
// .ko.xz and .ko.zst; the agent loads plain modules).
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case strings.HasSuffix(path, ".zst"):
		d, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer d.Close()
		r = d
	case strings.HasSuffix(path, ".gz"):
		if r, err = gzip.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
