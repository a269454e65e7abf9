// Package elfdeps reads what an ELF binary needs from the system it runs on:
// the shared libraries of its DT_NEEDED closure (with the dynamic loader
// named by PT_INTERP), resolved inside a root filesystem given as an fs.FS,
// and the GLIBC_x.y symbol versions it requires (from .gnu.version_r).
//
// The compile stage uses the first to copy scap-open's libraries out of a
// builder image for the VM's initramfs, and the second to tell whether a
// builder image's glibc can run a kernel's kbuild host tools.
package elfdeps

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Deps is what the dynamic linker reads from one ELF file.
type Deps struct {
	Interp  string   // PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; empty if static
	Needed  []string // DT_NEEDED sonames, in file order
	RunPath []string // DT_RUNPATH, or DT_RPATH when there is no RUNPATH
	Machine elf.Machine
}

// Read returns the dynamic dependencies of the ELF file r.
func Read(r io.ReaderAt) (Deps, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return Deps{}, err
	}
	defer f.Close()
	d := Deps{Machine: f.Machine}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return Deps{}, fmt.Errorf("read PT_INTERP: %w", err)
		}
		d.Interp = string(bytes.TrimRight(b, "\x00"))
	}
	if f.Section(".dynamic") == nil {
		return d, nil
	}
	if d.Needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return Deps{}, fmt.Errorf("read DT_NEEDED: %w", err)
	}
	rp, err := f.DynString(elf.DT_RUNPATH)
	if err == nil && len(rp) == 0 {
		rp, err = f.DynString(elf.DT_RPATH)
	}
	if err != nil {
		return Deps{}, fmt.Errorf("read DT_RUNPATH: %w", err)
	}
	for _, s := range rp {
		for _, dir := range strings.Split(s, ":") {
			if dir != "" {
				d.RunPath = append(d.RunPath, dir)
			}
		}
	}
	return d, nil
}

// File is one member of a closure: the path where the dynamic loader looks
// the file up (Path) and the regular file it finally resolves to, after
// symlinks (Real). Copying Real's content to Path in another root gives a
// tree where the loader finds everything without symlinks or ld.so.cache.
type File struct {
	Path string // absolute, as looked up (binary path, PT_INTERP, dir/soname)
	Real string // absolute, symlinks resolved inside the root
}

// DefaultLibDirs is where the dynamic loader looks for libraries when
// neither DT_RUNPATH nor ld.so.conf names a directory (Debian's multiarch
// directories first, as in its glibc's trusted directories).
var DefaultLibDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// Closure returns binary (an absolute path inside root), its dynamic loader
// and every shared library it needs, directly or through other libraries,
// each resolved inside root. Libraries are searched in the needing file's
// RUNPATH, then the directories of /etc/ld.so.conf (and its includes), then
// DefaultLibDirs. root must implement fs.ReadLinkFS when the tree has
// symlinks (os.DirFS does). A missing library is an error naming it and who
// needs it.
func Closure(root fs.FS, binary string) ([]File, error) {
	dirs := append(ldSoConfDirs(root), DefaultLibDirs...)
	var out []File
	seen := map[string]bool{} // looked-up paths
	sonames := map[string]bool{}
	type item struct{ path, real string }
	real, err := Resolve(root, binary)
	if err != nil {
		return nil, err
	}
	queue := []item{{binary, real}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if seen[it.path] {
			continue
		}
		seen[it.path] = true
		out = append(out, File{Path: it.path, Real: it.real})
		d, err := readFile(root, it.real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.path, err)
		}
		if d.Interp != "" && !seen[d.Interp] {
			// The loader is loaded already under its own soname: a
			// library naming it in DT_NEEDED needs no second copy.
			sonames[path.Base(d.Interp)] = true
			r, err := Resolve(root, d.Interp)
			if err != nil {
				return nil, fmt.Errorf("%s: dynamic loader: %w", it.path, err)
			}
			queue = append(queue, item{d.Interp, r})
		}
		for _, so := range d.Needed {
			if sonames[so] {
				continue
			}
			search := slices.Clone(d.RunPath)
			for i, dir := range search {
				search[i] = strings.NewReplacer("$ORIGIN", path.Dir(it.real), "${ORIGIN}", path.Dir(it.real)).Replace(dir)
			}
			p, r, err := find(root, so, append(search, dirs...), d.Machine)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", it.path, so, err)
			}
			sonames[so] = true
			queue = append(queue, item{p, r})
		}
	}
	return out, nil
}

// find looks soname up in dirs. As the dynamic loader does, a library
// built for another machine is passed over: a multiarch root holds
// libelf.so.1 for amd64 and arm64 under the same name.
func find(root fs.FS, soname string, dirs []string, machine elf.Machine) (string, string, error) {
	if strings.Contains(soname, "/") {
		r, err := Resolve(root, soname)
		return soname, r, err
	}
	for _, dir := range dirs {
		p := path.Join(dir, soname)
		r, err := Resolve(root, p)
		if err == nil && machineOf(root, r) == machine {
			return p, r, nil
		}
	}
	return "", "", fmt.Errorf("no %s build of it in %s", MachineName(machine), strings.Join(dirs, ":"))
}

// Programs calls fn for every ELF program under root (a regular file with
// an execute bit and the ELF magic), with the file open. Symlinks are not
// followed, so each program is read once, where its package put it.
func Programs(root string, fn func(path string, f *os.File) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&0o111 == 0 || fi.Size() < 64 {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		var magic [4]byte
		if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
			return nil
		}
		return fn(p, f)
	})
}

// machineOf reads the e_machine of the ELF file name in root, or
// elf.EM_NONE when it is not one.
func machineOf(root fs.FS, name string) elf.Machine {
	f, err := root.Open(rel(name))
	if err != nil {
		return elf.EM_NONE
	}
	defer f.Close()
	m, _ := Machine(f)
	return m
}

// Machine reads the machine an ELF file was built for from its header;
// ok is false when r is not an ELF file.
func Machine(r io.Reader) (m elf.Machine, ok bool) {
	var h [20]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || !bytes.HasPrefix(h[:], []byte(elf.ELFMAG)) {
		return elf.EM_NONE, false
	}
	if elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2MSB {
		return elf.Machine(uint16(h[18])<<8 | uint16(h[19])), true
	}
	return elf.Machine(uint16(h[19])<<8 | uint16(h[18])), true
}

// MachineName names m as people do: x86-64, aarch64.
func MachineName(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86-64"
	case elf.EM_AARCH64:
		return "aarch64"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}

func readFile(root fs.FS, name string) (Deps, error) {
	b, err := fs.ReadFile(root, rel(name))
	if err != nil {
		return Deps{}, err
	}
	return Read(bytes.NewReader(b))
}

// ldSoConfDirs reads /etc/ld.so.conf and the files it includes; a root
// without it gives no directories.
func ldSoConfDirs(root fs.FS) []string {
	var dirs []string
	var read func(name string, depth int)
	read = func(name string, depth int) {
		b, err := fs.ReadFile(root, rel(name))
		if err != nil || depth > 4 {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			f := strings.Fields(line)
			switch {
			case len(f) == 0:
			case f[0] == "include" && len(f) > 1:
				for _, pat := range f[1:] {
					if !path.IsAbs(pat) {
						pat = path.Join(path.Dir(name), pat)
					}
					matches, _ := fs.Glob(root, rel(pat))
					for _, m := range matches {
						read("/"+m, depth+1)
					}
				}
			case path.IsAbs(f[0]):
				dirs = append(dirs, path.Clean(f[0]))
			}
		}
	}
	read("/etc/ld.so.conf", 0)
	return dirs
}

// ErrLoop is returned for too many levels of symbolic links.
var ErrLoop = errors.New("too many levels of symbolic links")

// Resolve returns the absolute path of the regular file or directory that
// name (absolute, inside root) leads to, following symbolic links —
// absolute ones relative to root, never to the host.
func Resolve(root fs.FS, name string) (string, error) {
	rl, _ := root.(fs.ReadLinkFS)
	links := 0
	done := "/"
	todo := strings.Split(strings.Trim(path.Clean("/"+name), "/"), "/")
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, c)
		var fi fs.FileInfo
		var err error
		if rl != nil {
			fi, err = rl.Lstat(rel(next))
		} else {
			fi, err = fs.Stat(root, rel(next))
		}
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", name, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("resolve %s: %w", name, ErrLoop)
		}
		target, err := rl.ReadLink(rel(next))
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", name, err)
		}
		if path.IsAbs(target) {
			done = "/"
		}
		todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
	}
	return done, nil
}

// rel turns an absolute path into an fs.FS name.
func rel(name string) string {
	name = strings.Trim(path.Clean("/"+name), "/")
	if name == "" {
		return "."
	}
	return name
}
