// Package grid reads the kernel grid, kernels.txt: JSON Lines, one kernel
// per line, {"headers": [...], "kernels": [...]} with optional "name", "vm"
// and "arch" (amd64, the default, or arm64). Blank lines and lines starting with # are ignored. Every package
// reference is an http(s) URL, a local path or file:// URL, or an apt
// reference apt:[SUITE/]PACKAGE[=VERSION].
//
// An http(s):// or file:// reference may pin its content with a
// #sha256=<64 hex digits> fragment; the kernel stage verifies it. apt:
// references are verified against the signed Debian index instead.
//
// Parsing checks the whole file before anything is downloaded: a malformed
// line is an error "kernels.txt:LINE: what is wrong".
package grid

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// RefKind says where a package comes from.
type RefKind int

// Kinds of package reference.
const (
	URL  RefKind = iota // http:// or https://
	File                // a local path or file:// URL
	Apt                 // apt:[SUITE/]PACKAGE[=VERSION]
)

// Ref is one package of a kernel, as written in the grid.
type Ref struct {
	Raw  string  // as written
	Kind RefKind //
	URL  string  // Kind URL: the URL
	Path string  // Kind File: absolute path (relative ones are resolved against the grid file's directory)
	// Kind Apt: the suite ("" = the host's own suites), package and
	// version ("" = the newest).
	Suite, Package, Version string
	// SHA256 pins the content of a URL or file:// reference (lower-case
	// hex, from #sha256=...), "" when the grid gives none.
	SHA256 string
}

// Verifiable reports whether the content of the referenced package can be
// checked: apt references (signed index) and pinned ones.
func (r Ref) Verifiable() bool { return r.Kind == Apt || r.SHA256 != "" }

var sha256Re = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// cutDigest splits a #sha256=<hex> fragment off raw.
func cutDigest(raw string) (rest, digest string, err error) {
	rest, frag, ok := strings.Cut(raw, "#")
	if !ok {
		return raw, "", nil
	}
	hex, ok := strings.CutPrefix(frag, "sha256=")
	if !ok || !sha256Re.MatchString(hex) {
		return raw, "", fmt.Errorf("bad fragment #%s (want #sha256=<64 hex digits>)", frag)
	}
	return rest, strings.ToLower(hex), nil
}

// Name is the package name the reference designates: the apt package, or
// the package part of a .deb/.rpm file name.
func (r Ref) Name() string {
	if r.Kind == Apt {
		return r.Package
	}
	base := r.Path
	if r.Kind == URL {
		u, _ := url.Parse(r.URL)
		base, _ = url.PathUnescape(u.Path)
	}
	base = path.Base(base)
	if stem, ok := strings.CutSuffix(base, ".deb"); ok {
		name, _, _ := strings.Cut(stem, "_") // NAME_VERSION_ARCH.deb
		return name
	}
	return strings.TrimSuffix(base, ".rpm")
}

// Kernel is one line of the grid.
type Kernel struct {
	Line int    // 1-based line in the grid file
	Name string // "name", or derived from the packages
	VM   string // "vm", or derived from the packages
	// Arch is the kernel's architecture, "arch" (layout.Amd64 when the
	// line names none): apt references resolve in that architecture's
	// index.
	Arch    string
	Headers []Ref
	Kernels []Ref
}

// UnameR is the kernel release the package names suggest (e.g.
// 6.1.0-50-cloud-amd64, 5.4.231-1.el7.elrepo.x86_64). The kernel stage
// confirms it from the packages' contents, which win.
func (k Kernel) UnameR() string {
	for _, group := range [][]Ref{k.Kernels, k.Headers} {
		for _, r := range group {
			if u := unameFromName(r.Name()); u != "" {
				return u
			}
		}
	}
	return ""
}

// Grid is a parsed grid file.
type Grid struct {
	File    string // the file it came from
	Kernels []Kernel
}

// Arches are the architectures of the grid's kernels, in layout.Arches
// order.
func (g *Grid) Arches() []string {
	var out []string
	for _, a := range layout.Arches {
		if slices.ContainsFunc(g.Kernels, func(k Kernel) bool { return k.Arch == a }) {
			out = append(out, a)
		}
	}
	return out
}

// FileArches are the architectures of the kernels of the grid file:
// amd64 alone when it cannot be read (the kernel stage says why).
func FileArches(file string) []string {
	g, err := Load(file)
	if err != nil {
		return []string{layout.Amd64}
	}
	return g.Arches()
}

// Load reads and checks the grid file at path.
func Load(file string) (*Grid, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("kernel grid: %w", err)
	}
	defer f.Close()
	return Parse(f, file)
}

type line struct {
	Name    *string   `json:"name"`
	VM      *string   `json:"vm"`
	Arch    *string   `json:"arch"`
	Headers *[]string `json:"headers"`
	Kernels *[]string `json:"kernels"`
}

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~:-]*$`)
	vmRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// Debian policy: package names are lower case, digits, + - . and at
	// least two characters starting with an alphanumeric.
	debPkgRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	suiteRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	debVerRe = regexp.MustCompile(`^[0-9A-Za-z.+~:-]+$`)
)

// Parse reads a grid from r; file names it in errors and anchors relative
// paths.
func Parse(r io.Reader, file string) (*Grid, error) {
	g := &Grid{File: file}
	base := filepath.Base(file)
	dir := filepath.Dir(file)
	names := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, err := parseLine(text, dir)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", base, n, err)
		}
		k.Line = n
		if prev, dup := names[k.Name]; dup {
			return nil, fmt.Errorf("%s:%d: name %q is already used on line %d", base, n, k.Name, prev)
		}
		names[k.Name] = n
		g.Kernels = append(g.Kernels, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", base, n+1, err)
	}
	if len(g.Kernels) == 0 {
		return nil, fmt.Errorf("%s: no kernels in the grid", base)
	}
	return g, nil
}

func parseLine(text, dir string) (Kernel, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&fields); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return Kernel{}, fmt.Errorf("not a JSON object (%v at column %d)", syn, syn.Offset)
		case errors.As(err, &typ):
			return Kernel{}, fmt.Errorf("a line must be a JSON object, not a JSON %s", typ.Value)
		}
		return Kernel{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if fields == nil {
		return Kernel{}, errors.New("a line must be a JSON object, not null")
	}
	if strings.TrimSpace(text[dec.InputOffset():]) != "" {
		return Kernel{}, errors.New("extra text after the JSON object (one kernel per line)")
	}
	// Keys are matched exactly (encoding/json alone would accept "Headers").
	var l line
	for key, raw := range fields {
		var dst any
		switch key {
		case "name":
			dst = &l.Name
		case "vm":
			dst = &l.VM
		case "arch":
			dst = &l.Arch
		case "headers":
			dst = &l.Headers
		case "kernels":
			dst = &l.Kernels
		default:
			return Kernel{}, fmt.Errorf("unknown field %q (known: name, vm, arch, headers, kernels)", key)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return Kernel{}, fmt.Errorf("%q must be %s", key, fieldType(key))
		}
	}
	var k Kernel
	var err error
	if l.Headers == nil || len(*l.Headers) == 0 {
		return k, errors.New(`"headers" is missing or empty: list the kernel's header packages`)
	}
	if l.Kernels == nil || len(*l.Kernels) == 0 {
		return k, errors.New(`"kernels" is missing or empty: list the kernel's image (and modules) packages`)
	}
	if k.Headers, err = parseRefs("headers", *l.Headers, dir); err != nil {
		return k, err
	}
	if k.Kernels, err = parseRefs("kernels", *l.Kernels, dir); err != nil {
		return k, err
	}
	k.Arch = layout.Amd64
	if l.Arch != nil {
		if !slices.Contains(layout.Arches, *l.Arch) {
			return k, fmt.Errorf(`"arch" %q: want one of %s (Debian's architecture names)`, *l.Arch, strings.Join(layout.Arches, ", "))
		}
		k.Arch = *l.Arch
	}
	if l.VM != nil {
		if !vmRe.MatchString(*l.VM) {
			return k, fmt.Errorf(`"vm" %q: want a VM group such as debian, ubuntu, centos7 (lower case, digits, - and _)`, *l.VM)
		}
		k.VM = *l.VM
	} else {
		k.VM = deriveVM(append(append([]Ref{}, k.Kernels...), k.Headers...))
	}
	if l.Name != nil {
		if !nameRe.MatchString(*l.Name) {
			return k, fmt.Errorf(`"name" %q: want letters, digits and . _ + ~ : - (no spaces or slashes)`, *l.Name)
		}
		k.Name = *l.Name
	} else if k.Name = k.UnameR(); k.Name == "" {
		k.Name = k.Kernels[0].Name()
	}
	return k, nil
}

func fieldType(field string) string {
	if field == "headers" || field == "kernels" {
		return "a list of package references (strings)"
	}
	return "a string"
}

func parseRefs(field string, raws []string, dir string) ([]Ref, error) {
	var out []Ref
	seen := map[string]bool{}
	for i, raw := range raws {
		r, err := parseRef(raw, dir)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: %w", field, i, raw, err)
		}
		if seen[r.Raw] {
			return nil, fmt.Errorf("%s[%d] %q: listed twice", field, i, raw)
		}
		seen[r.Raw] = true
		out = append(out, r)
	}
	return out, nil
}

// ParseRef checks one package reference; relative local paths are
// resolved against dir.
func ParseRef(raw, dir string) (Ref, error) { return parseRef(raw, dir) }

func parseRef(raw, dir string) (Ref, error) {
	r := Ref{Raw: raw}
	if strings.TrimSpace(raw) != raw || raw == "" {
		return r, errors.New("empty reference or surrounding spaces")
	}
	scheme, rest, hasScheme := strings.Cut(raw, ":")
	switch {
	case hasScheme && scheme == "apt":
		r.Kind = Apt
		spec := rest
		if s, p, ok := strings.Cut(spec, "/"); ok {
			if !suiteRe.MatchString(s) {
				return r, fmt.Errorf("bad suite %q in apt reference (want apt:[SUITE/]PACKAGE[=VERSION])", s)
			}
			r.Suite, spec = s, p
		}
		if p, v, ok := strings.Cut(spec, "="); ok {
			if !debVerRe.MatchString(v) {
				return r, fmt.Errorf("bad version %q in apt reference (want apt:[SUITE/]PACKAGE[=VERSION])", v)
			}
			r.Version, spec = v, p
		}
		if !debPkgRe.MatchString(spec) {
			return r, fmt.Errorf("bad package name %q in apt reference (want apt:[SUITE/]PACKAGE[=VERSION])", spec)
		}
		r.Package = spec
		return r, nil
	case hasScheme && (scheme == "http" || scheme == "https"):
		raw, digest, err := cutDigest(raw)
		if err != nil {
			return r, err
		}
		u, err := url.Parse(raw)
		if err != nil {
			return r, fmt.Errorf("bad URL: %v", err)
		}
		if u.Host == "" || path.Base(u.Path) == "/" || path.Base(u.Path) == "." || strings.HasSuffix(u.Path, "/") {
			return r, errors.New("URL must have a host and end in a package file name")
		}
		r.Kind, r.URL, r.SHA256 = URL, raw, digest
	case hasScheme && scheme == "file":
		raw, digest, err := cutDigest(raw)
		if err != nil {
			return r, err
		}
		u, err := url.Parse(raw)
		if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return r, errors.New("bad file:// URL (want file:///absolute/path)")
		}
		r.Kind, r.Path, r.SHA256 = File, filepath.Clean(u.Path), digest
	case hasScheme && !strings.ContainsAny(scheme, "/.") && len(scheme) > 1:
		return r, fmt.Errorf("unknown scheme %q (want http://, https://, file://, apt: or a path)", scheme)
	default:
		r.Kind, r.Path = File, raw
		if !filepath.IsAbs(raw) {
			r.Path = filepath.Join(dir, raw)
		}
	}
	base := r.URL
	if r.Kind == File {
		base = r.Path
	}
	if !strings.HasSuffix(base, ".deb") && !strings.HasSuffix(base, ".rpm") {
		return r, errors.New("a package file must end in .deb or .rpm")
	}
	if r.Name() == "" {
		return r, errors.New("no package name before .deb or .rpm")
	}
	return r, nil
}

var (
	// kernel-lt-devel-5.4.231-1.el7.elrepo.x86_64 -> VERSION-RELEASE.ARCH
	rpmNVRA = regexp.MustCompile(`^kernel(?:-[a-z]+)*?(?:-devel|-core|-modules)?-([0-9][^-]*)-([^-]+)\.([a-z0-9_]+)$`)
	// linux-image-6.1.0-50-cloud-amd64, linux-binary-..., linux-modules-...
	debKernel  = regexp.MustCompile(`^linux-(?:image-unsigned|image|binary|modules)-([0-9][0-9a-z.+~-]*[a-z0-9])$`)
	debHeaders = regexp.MustCompile(`^linux-headers-([0-9][0-9a-z.+~-]*[a-z0-9])$`)
)

// unameFromName derives uname -r from a kernel or headers package name,
// or returns "".
func unameFromName(name string) string {
	if m := rpmNVRA.FindStringSubmatch(name); m != nil {
		return m[1] + "-" + m[2] + "." + m[3]
	}
	if m := debKernel.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	if m := debHeaders.FindStringSubmatch(name); m != nil && !strings.HasSuffix(m[1], "-common") {
		// Ubuntu's flavourless _all headers package (linux-headers-6.2.6-060206)
		// is not a uname -r; its -generic sibling is.
		if strings.Count(m[1], "-") >= 2 {
			return m[1]
		}
	}
	return ""
}

// deriveVM picks the VM group from the package names.
func deriveVM(refs []Ref) string {
	for _, r := range refs {
		n := r.Name()
		switch {
		case strings.Contains(n, ".el7."), strings.HasSuffix(n, ".el7"):
			return "centos7"
		case strings.Contains(n, "amzn2"):
			return "amazonlinux2"
		case strings.HasSuffix(n, "-generic") || strings.Contains(n, "-generic_"):
			return "ubuntu"
		}
	}
	return "debian"
}
