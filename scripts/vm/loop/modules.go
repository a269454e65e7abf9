package loop

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	deps, err := moduleTable(modulesDir)
	if err != nil {
		return nil, err
	}
	return orderDeps(what, direct, modulesDir, deps)
}

// orderDeps is resolveDeps on a module table already read.
func orderDeps(what string, direct []string, modulesDir string, deps map[string]depEntry) ([]string, error) {
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
			return fmt.Errorf("%s needs module %s, which is not in the kernel's modules (%s)", what, name, modulesDir)
		}
		if !d.known {
			var err error
			if d.deps, err = modinfoDepends(filepath.Join(modulesDir, d.path)); err != nil {
				return err
			}
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

// behaviourModules are the kernel's own modules that drivers_test's full
// run needs loaded: a normal system loads them on demand through
// modprobe, which an initramfs has not.
var behaviourModules = []string{"overlay"}

// optionalModules orders those of names that the kernel builds as modules
// (found in modulesDir) and everything they depend on,
// dependencies first. A name the kernel has built in, or not at all, or a
// kernel without a modules tree, needs nothing.
func optionalModules(names []string, modulesDir string) ([]string, error) {
	if modulesDir == "" {
		return nil, nil
	}
	deps, err := moduleTable(modulesDir)
	if err != nil {
		return nil, err
	}
	var present []string
	for _, n := range names {
		if _, ok := deps[n]; ok {
			present = append(present, n)
		}
	}
	if len(present) == 0 {
		return nil, nil
	}
	return orderDeps("drivers_test", present, modulesDir, deps)
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
	mod, err := readModule(ko)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", ko, err)
	}
	f, err := elf.NewFile(bytes.NewReader(mod))
	var formatErr *elf.FormatError
	if errors.As(err, &formatErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", ko, err)
	}
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
	path  string   // relative to the modules dir
	deps  []string // names
	known bool     // deps are read (modules.dep); else the module's .modinfo says them
}

// moduleTable is every module of a kernel's modules tree by name: from
// modules.dep when the tree has one; else from the files, each module's
// dependencies to be read from its .modinfo when needed (Debian's kernel
// packages ship no modules.dep: depmod writes it when they are installed).
func moduleTable(modulesDir string) (map[string]depEntry, error) {
	dep := filepath.Join(modulesDir, "modules.dep")
	if _, err := os.Stat(dep); err == nil {
		return readModulesDep(dep)
	}
	out := map[string]depEntry{}
	err := filepath.WalkDir(modulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isModuleFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(modulesDir, p)
		if err != nil {
			return err
		}
		if _, dup := out[modName(p)]; !dup || strings.HasPrefix(rel, "kernel/") {
			out[modName(p)] = depEntry{path: rel}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the kernel's modules: %w", err)
	}
	return out, nil
}

// isModuleFile tells a kernel module's file name, compressed or not.
func isModuleFile(name string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
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
		e := depEntry{path: mod, known: true}
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
