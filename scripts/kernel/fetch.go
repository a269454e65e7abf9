// Package kernel is the kernel stage: it reads the kernel grid, resolves
// apt references, downloads every package into the build directory's cache
// (build/kernels, build/headers), extracts each kernel's header packages
// into one sysroot (build/headers_extracted/<uname-r>) and its kernel
// packages into a boot tree (build/boot/<uname-r>: vmlinuz and modules),
// and records all of it in build/kernels.json, the manifest later stages
// read.
//
// An apt reference also brings the kernel packages it depends on (see
// apt.Query.Follow): a header reference its linux-headers-* and
// linux-kbuild-* dependencies, a kernel reference its linux-image-*,
// linux-binary-*, linux-modules-* and linux-base-* ones, so that the
// kernel installs on a real system (the Vagrant provider installs it in a
// guest); a reference from an update suite also brings the helpers only
// that suite satisfies (trixie-backports' linux-base for its 7.x images).
// The extra packages change nothing for the qemu provider: vmlinuz and the
// modules are found by content. So the meta packages
// linux-headers-cloud-amd64 and linux-image-cloud-amd64 stand for the
// suite's current kernel. A dependency whose name the line already lists
// is not brought twice, so lines that list every package work as before.
//
// A re-run downloads nothing that is in the cache and re-extracts nothing
// whose sysroot or boot tree is complete: each tree carries a stamp,
// written last, that names the packages it was made from.
package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/apt"
	"github.com/falcosecurity/libs/test/vm/scripts/archive"
	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/download"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/grid"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"golang.org/x/sync/errgroup"
)

// Fetch runs the kernel stage with the defaults of this machine: the host's
// apt sources pick the Debian mirror (cfg.Mirror overrides) and Debian's
// archive keyring checks the indexes.
func Fetch(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	_, err := (&Fetcher{Config: cfg, Out: out}).Fetch(ctx)
	return err
}

// Fetcher is the kernel stage with its edges exposed for tests.
type Fetcher struct {
	Config *config.Config
	Out    *ui.Printer
	// Downloads fetches the packages; nil means a new one. Its Bytes()
	// tells how much a run downloaded.
	Downloads *download.Downloader
	Client    *http.Client // nil: a default client
	AptEtc    string       // host apt configuration, default /etc/apt
	Keyring   string       // default apt.DefaultKeyring
}

// pkg is one package of one kernel.
type pkg struct {
	ref  grid.Ref
	item download.Item // URL refs and resolved apt refs
	path string        // the file extraction reads
	via  string        // for a dependency: the reference that brought it
	deps []*pkg        // for an apt reference: the dependencies it depends on
	adds []string      // NAME=VERSION of the deps the line did not list already
}

// label names the package in messages.
func (p *pkg) label() string {
	if p.via != "" {
		return p.ref.Raw + " (dependency of " + p.via + ")"
	}
	return p.ref.Raw
}

type job struct {
	k       grid.Kernel
	headers []*pkg
	kernels []*pkg
	// hostTools are the amd64 packages a foreign kernel's headers need
	// for kbuild's host tools, extracted after its own.
	hostTools []*pkg
	resolved  []Resolution
	fetched   int64
	entry     Entry
	err       error
}

// unameR is the kernel release the package names suggest, once apt
// references have brought their dependencies (a meta package's name
// tells none).
func (j *job) unameR() string {
	k := grid.Kernel{}
	for _, p := range j.headers {
		k.Headers = append(k.Headers, p.ref)
	}
	for _, p := range j.kernels {
		k.Kernels = append(k.Kernels, p.ref)
	}
	return k.UnameR()
}

func (j *job) arch() string { return layout.ArchOf(j.k.Arch) }

func (j *job) fail(err error) {
	if j.err == nil {
		j.err = err
	}
}

// Fetch runs the stage and returns the manifest it wrote.
func (f *Fetcher) Fetch(ctx context.Context) (*Manifest, error) {
	cfg, out := f.Config, f.Out
	if out == nil {
		out = ui.Discard()
	}
	g, err := grid.Load(cfg.KernelsFile)
	if err != nil {
		return nil, err
	}
	kernels, err := ShardKernels(cfg, g)
	if err != nil {
		return nil, err
	}
	if !cfg.Shard.Whole() {
		out.Linef("kernel: shard %s takes %d of the grid's %d kernels: %s", cfg.Shard, len(kernels), len(g.Kernels), strings.Join(kernelNames(kernels), ", "))
	}
	jobs := make([]*job, len(kernels))
	for i, k := range kernels {
		j := &job{k: k}
		for _, r := range k.Headers {
			j.headers = append(j.headers, &pkg{ref: r})
		}
		for _, r := range k.Kernels {
			j.kernels = append(j.kernels, &pkg{ref: r})
		}
		jobs[i] = j
	}
	out.Linef("kernel: %d kernels in %s", len(jobs), cfg.KernelsFile)
	// Two runs on one build directory (two terminals, parallel test
	// packages) would write the same partial downloads, and each would
	// delete the other's half-extracted trees as stale: one at a time.
	unlock, err := lockBuildDir(cfg.Path(".kernel.lock"), out)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := f.resolve(ctx, jobs, out); err != nil {
		return nil, err
	}
	// Trees are named by uname -r: two lines for one kernel would fight
	// over the same directories.
	byUname := map[string]int{}
	for _, j := range jobs {
		if u := j.unameR(); u != "" {
			if line, dup := byUname[u]; dup {
				j.fail(fmt.Errorf("uname -r %s is also the kernel of line %d", u, line))
			} else {
				byUname[u] = j.k.Line
			}
		}
	}
	dl := f.Downloads
	if dl == nil {
		dl = download.New(f.Client, min(max(cfg.Jobs, 4), 8))
		dl.Limit(cfg.DownloadRate)
	}
	if err := f.download(ctx, dl, jobs, out); err != nil {
		return nil, err
	}
	removeStale(cfg.Path("boot"), cfg.Path("headers_extracted"))
	f.extractAll(ctx, jobs, out)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &Manifest{Schema: 1, Grid: g.ID()}
	if !cfg.Shard.Whole() {
		m.Shard = &cfg.Shard
	}
	var failed []string
	for _, j := range jobs {
		m.Kernels = append(m.Kernels, j.entry)
		if j.entry.Error != "" {
			failed = append(failed, fmt.Sprintf("%s (line %d): %s", j.k.Name, j.k.Line, j.entry.Error))
		}
	}
	if err := writeManifest(cfg.Path(layout.Manifest), m); err != nil {
		return nil, err
	}
	out.Linef("kernel: %d ok, %d failed; %s downloaded; manifest %s", len(jobs)-len(failed), len(failed), mib(dl.Bytes()), cfg.Path(layout.Manifest))
	if len(failed) > 0 {
		return m, &someFailedError{fmt.Sprintf("kernel: %d of %d kernels failed (recorded in %s): %s", len(failed), len(jobs), cfg.Path(layout.Manifest), strings.Join(failed, "; "))}
	}
	return m, nil
}

// resolve turns every reference into a file to read and, for remote ones,
// a download item. Apt references are resolved together, one index read
// per suite and architecture.
func (f *Fetcher) resolve(ctx context.Context, jobs []*job, out *ui.Printer) error {
	cfg := f.Config
	byArch := map[string]*aptBatch{}
	total := 0
	for _, j := range jobs {
		for _, group := range []struct {
			pkgs   []*pkg
			dir    string
			follow func(string) bool
		}{{j.headers, cfg.Path("headers"), apt.HeaderPackage}, {j.kernels, cfg.Path("kernels"), apt.BootPackage}} {
			for _, p := range group.pkgs {
				switch p.ref.Kind {
				case grid.File:
					p.path = p.ref.Path
				case grid.URL:
					u, _ := url.Parse(p.ref.URL)
					name, _ := url.PathUnescape(path.Base(u.Path))
					p.item = download.Item{URL: p.ref.URL, Dest: filepath.Join(group.dir, name), SHA256: p.ref.SHA256}
					p.path = p.item.Dest
				case grid.Apt:
					p.item.Dest = group.dir // file name known after resolution
					b := byArch[j.arch()]
					if b == nil {
						b = &aptBatch{}
						byArch[j.arch()] = b
					}
					b.add(apt.Query{Suite: p.ref.Suite, Package: p.ref.Package, Version: p.ref.Version, Follow: group.follow}, p, j)
					total++
				}
			}
		}
	}
	if total == 0 {
		return nil
	}
	resolvers := map[string]*apt.Resolver{}
	resolver := func(arch string) (*apt.Resolver, error) {
		if r := resolvers[arch]; r != nil {
			return r, nil
		}
		r, err := f.resolver(arch)
		resolvers[arch] = r
		return r, err
	}
	var hostTools aptBatch // the host's linux-kbuild for a foreign kernel's headers
	for _, arch := range layout.Arches {
		b := byArch[arch]
		if b == nil {
			continue
		}
		r, err := resolver(arch)
		if err != nil {
			return err
		}
		answers := r.ResolveAll(ctx, b.queries)
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, a := range answers {
			p, j := b.targets[i], b.owners[i]
			if a.Err != nil {
				if arch != layout.Amd64 {
					a.Err = fmt.Errorf("%w (in the %s index)", a.Err, arch)
				}
				j.fail(a.Err)
				continue
			}
			if !take(p, j, a) {
				continue
			}
			if arch == layout.Amd64 {
				continue
			}
			// kbuild's host tools (fixdep, modpost, ...) must run on this
			// amd64 host: a foreign kernel's headers take the amd64
			// linux-kbuild of the same version over their own.
			for _, d := range append([]apt.Package{a.Package}, a.Deps...) {
				if strings.HasPrefix(d.Name, "linux-kbuild-") {
					hostTools.add(apt.Query{Suite: d.Suite, Package: d.Name, Version: d.Version}, &pkg{via: p.ref.Raw, item: download.Item{Dest: cfg.Path("headers")}}, j)
				}
			}
		}
	}
	if len(hostTools.queries) > 0 {
		r, err := resolver(layout.Amd64)
		if err != nil {
			return err
		}
		for i, a := range r.ResolveAll(ctx, hostTools.queries) {
			p, j := hostTools.targets[i], hostTools.owners[i]
			if a.Err != nil {
				j.fail(fmt.Errorf("%s: the amd64 %s its host tools need: %w", p.via, hostTools.queries[i].Package, a.Err))
				continue
			}
			q := hostTools.queries[i]
			p.ref = grid.Ref{Raw: "apt:" + q.Suite + "/" + q.Package + "=" + q.Version + " (amd64)", Kind: grid.Apt, Suite: q.Suite, Package: q.Package, Version: q.Version}
			if !take(p, j, a) {
				continue
			}
			j.hostTools = append(j.hostTools, p)
		}
	}
	for _, j := range jobs {
		j.headers, j.kernels = withDeps(j, j.headers), withDeps(j, j.kernels)
		for _, p := range append(slices.Clone(j.headers), j.kernels...) {
			if len(p.adds) > 0 {
				out.Linef("kernel [%s]: %s brings %s", j.k.Name, p.ref.Raw, strings.Join(p.adds, " "))
			}
		}
		for _, p := range j.hostTools {
			// Extracted last, over the kernel's own linux-kbuild.
			j.headers = append(j.headers, p)
			out.Linef("kernel [%s]: %s brings %s=%s (amd64) for kbuild's host tools", j.k.Name, p.via, p.ref.Package, p.ref.Version)
		}
	}
	for _, arch := range layout.Arches {
		r := resolvers[arch]
		if r == nil {
			continue
		}
		for _, n := range r.Notes() {
			out.Linef("kernel: %s", n)
		}
		in := ""
		if arch != layout.Amd64 {
			in = " (" + arch + " index)"
		}
		n := 0
		if b := byArch[arch]; b != nil {
			n = len(b.queries)
		}
		if arch == layout.Amd64 {
			n += len(hostTools.queries)
		}
		out.Linef("kernel: resolved %d apt references against %s%s (%s of indexes fetched)", n, r.Mirror, in, mib(r.IndexBytes()))
	}
	return nil
}

// aptBatch is the apt references of one architecture, each with the
// package it resolves and the kernel that wants it.
type aptBatch struct {
	queries []apt.Query
	targets []*pkg
	owners  []*job
}

func (b *aptBatch) add(q apt.Query, p *pkg, j *job) {
	b.queries = append(b.queries, q)
	b.targets = append(b.targets, p)
	b.owners = append(b.owners, j)
}

// take fills p from its resolution a: the file to download and the
// dependencies it brings. It reports false when j failed.
func take(p *pkg, j *job, a apt.Answer) bool {
	name := a.Package.FileName()
	if !strings.HasSuffix(name, ".deb") || strings.HasPrefix(name, ".") {
		j.fail(fmt.Errorf("%s: the index names an odd file %q", p.ref.Raw, a.Package.Filename))
		return false
	}
	dir := p.item.Dest
	p.item = download.Item{URL: a.Package.URL, Dest: filepath.Join(dir, name), Size: a.Package.Size, SHA256: a.Package.SHA256}
	p.path = p.item.Dest
	res := Resolution{Ref: p.ref.Raw, Packages: []string{a.Package.Name + "=" + a.Package.Version}}
	for _, d := range a.Deps {
		dn := d.FileName()
		if !strings.HasSuffix(dn, ".deb") || strings.HasPrefix(dn, ".") {
			j.fail(fmt.Errorf("%s: the index names an odd file %q for dependency %s", p.ref.Raw, d.Filename, d.Name))
			return false
		}
		ref := grid.Ref{Raw: "apt:" + d.Suite + "/" + d.Name + "=" + d.Version, Kind: grid.Apt, Suite: d.Suite, Package: d.Name, Version: d.Version}
		dest := filepath.Join(dir, dn)
		p.deps = append(p.deps, &pkg{ref: ref, via: p.ref.Raw, path: dest,
			item: download.Item{URL: d.URL, Dest: dest, Size: d.Size, SHA256: d.SHA256}})
		res.Packages = append(res.Packages, d.Name+"="+d.Version)
	}
	j.resolved = append(j.resolved, res)
	return true
}

// withDeps returns group with the dependencies each reference brought
// placed after it, leaving out any package whose name the line already
// has (listed in the grid, or brought by an earlier reference).
func withDeps(j *job, group []*pkg) []*pkg {
	have := map[string]bool{}
	for _, p := range append(slices.Clone(j.headers), j.kernels...) {
		have[p.ref.Name()] = true
	}
	var out []*pkg
	for _, p := range group {
		out = append(out, p)
		for _, d := range p.deps {
			if !have[d.ref.Package] {
				have[d.ref.Package] = true
				out = append(out, d)
				p.adds = append(p.adds, d.ref.Package+"="+d.ref.Version)
			}
		}
	}
	return out
}

func (f *Fetcher) resolver(arch string) (*apt.Resolver, error) {
	etc := f.AptEtc
	if etc == "" {
		etc = "/etc/apt"
	}
	sources, err := apt.HostSources(etc)
	if err != nil {
		return nil, fmt.Errorf("kernel: read apt sources: %w", err)
	}
	mirror, suites, mirrorErr := apt.Mirror(sources)
	if f.Config.Mirror != "" {
		mirror = f.Config.Mirror
	} else if mirrorErr != nil {
		return nil, fmt.Errorf("kernel: apt references need a Debian mirror: %w", mirrorErr)
	}
	return &apt.Resolver{
		Mirror: mirror, DefaultSuites: suites, StateDir: f.Config.Path("apt"), Arch: arch,
		Keyring: f.Keyring, Client: f.Client, AllowExpired: f.Config.AllowExpired,
	}, nil
}

// download fetches every remote package once, whatever the number of
// kernels that list it, with a byte progress bar on a terminal.
func (f *Fetcher) download(ctx context.Context, dl *download.Downloader, jobs []*job, out *ui.Printer) error {
	var items []download.Item
	index := map[string]int{}
	var total int64
	for _, j := range jobs {
		if j.err != nil {
			continue
		}
		for _, p := range append(slices.Clone(j.headers), j.kernels...) {
			if p.item.URL == "" {
				continue
			}
			if _, dup := index[p.item.Dest]; dup {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p.item.Dest), 0o755); err != nil {
				return err
			}
			index[p.item.Dest] = len(items)
			items = append(items, p.item)
			if fi, err := os.Stat(p.item.Dest); err != nil || (p.item.Size > 0 && fi.Size() != p.item.Size) {
				total += p.item.Size
			}
		}
	}
	var bar *ui.Bar
	if total > 0 {
		out.Linef("kernel: downloading %s", mib(total))
		bar = out.Progress("download", "B", total)
		dl.OnProgress(bar.Add)
	}
	results := dl.GetAll(ctx, items)
	if bar != nil {
		bar.Done()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, j := range jobs {
		if j.err != nil {
			continue
		}
		for _, p := range append(slices.Clone(j.headers), j.kernels...) {
			if p.item.URL == "" {
				if err := checkLocal(p); err != nil {
					j.fail(fmt.Errorf("package %s: %w", p.label(), err))
				}
				continue
			}
			r := results[index[p.item.Dest]]
			if r.Err != nil {
				j.fail(fmt.Errorf("package %s: %w", p.label(), r.Err))
			}
			if r.Replaced != "" {
				out.Linef("kernel [%s]: cached %s did not match (%s): fetched again", j.k.Name, p.item.Dest, r.Replaced)
				r.Replaced = "" // said once, for the first kernel that uses it
				results[index[p.item.Dest]] = r
			}
			j.fetched += r.Fetched
		}
	}
	return nil
}

// checkLocal checks a package that is a local file: it exists and, when
// the grid pins it (file://...#sha256=), has that content.
func checkLocal(p *pkg) error {
	if _, err := os.Stat(p.path); err != nil {
		return err
	}
	if p.ref.SHA256 == "" {
		return nil
	}
	sum, err := download.FileSHA256(p.path)
	if err != nil {
		return err
	}
	if sum != p.ref.SHA256 {
		return fmt.Errorf("SHA256 mismatch: %s has %s, the grid pins %s", p.path, sum, p.ref.SHA256)
	}
	return nil
}

// unverified lists the references of a kernel whose content nothing
// vouches for: no signed index (apt:) and no #sha256= pin.
func unverified(j *job) []string {
	var out []string
	for _, p := range append(slices.Clone(j.headers), j.kernels...) {
		if !p.ref.Verifiable() {
			out = append(out, p.ref.Raw)
		}
	}
	return out
}

// extractAll extracts every kernel that downloaded, a few at once.
func (f *Fetcher) extractAll(ctx context.Context, jobs []*job, out *ui.Printer) {
	var g errgroup.Group
	g.SetLimit(max(f.Config.Jobs, 1))
	for _, j := range jobs {
		g.Go(func() error {
			f.extract(ctx, j)
			e := &j.entry
			switch {
			case e.Error != "":
				out.Linef("kernel %s [%s, line %d]: FAILED: %s", j.unameR(), j.k.Name, j.k.Line, e.Error)
			default:
				out.Linef("kernel %s [%s]: %d packages (%s downloaded), %s, headers %s, boot %s", e.UnameR, e.Name,
					len(e.Headers)+len(e.Kernels), mib(j.fetched), e.Facts.Summary(), e.HostKernelDir(), e.Vmlinuz)
			}
			if len(e.Unverified) > 0 {
				out.Linef("kernel %s [%s]: UNVERIFIED (no signed index, no #sha256= pin): %s", j.unameR(), j.k.Name, strings.Join(e.Unverified, " "))
			}
			return nil // a kernel's failure is in its entry
		})
	}
	g.Wait()
}

func (f *Fetcher) extract(ctx context.Context, j *job) {
	e := &j.entry
	*e = Entry{Name: j.k.Name, Line: j.k.Line, VM: j.k.VM, Arch: j.arch(), UnameR: j.unameR(), Resolved: j.resolved, Unverified: unverified(j)}
	for _, p := range j.headers {
		e.Headers = append(e.Headers, p.path)
	}
	for _, p := range j.kernels {
		e.Kernels = append(e.Kernels, p.path)
	}
	if j.err == nil && ctx.Err() == nil {
		j.err = f.extractKernel(ctx, j, e)
	}
	if j.err != nil {
		e.Error = j.err.Error()
		e.Sysroot, e.KernelDir, e.Mounts, e.Vmlinuz, e.ModulesDir, e.Facts = "", "", nil, "", "", nil
	}
}

func (f *Fetcher) extractKernel(ctx context.Context, j *job, e *Entry) error {
	cfg := f.Config
	var boot bootLayout
	bootDir, err := extractTree(ctx, cfg.Path("boot"), e.UnameR, pkgPaths(j.kernels), &boot, func(dir string) (string, error) {
		var err error
		boot, err = findBoot(dir, e.UnameR)
		return boot.UnameR, err
	})
	if err != nil {
		return fmt.Errorf("kernel packages: %w", err)
	}
	e.UnameR = boot.UnameR
	e.Vmlinuz = filepath.Join(bootDir, boot.Vmlinuz)
	if boot.ModulesDir != "" {
		e.ModulesDir = filepath.Join(bootDir, boot.ModulesDir)
	}
	var hdr headersLayout
	sysroot, err := extractTree(ctx, cfg.Path("headers_extracted"), e.UnameR, pkgPaths(j.headers), &hdr, func(dir string) (string, error) {
		var err error
		hdr, err = findHeaders(dir, e.UnameR)
		return hdr.UnameR, err
	})
	if err != nil {
		return fmt.Errorf("header packages: %w", err)
	}
	if hdr.UnameR != boot.UnameR {
		return fmt.Errorf("the header packages are for %s but the kernel packages for %s", hdr.UnameR, boot.UnameR)
	}
	if err := checkHostTools(sysroot); err != nil {
		return fmt.Errorf("header packages: %w", err)
	}
	e.Sysroot, e.KernelDir, e.Mounts = sysroot, hdr.KernelDir, hdr.Mounts
	facts, err := ReadFacts(e.HostKernelDir())
	if err != nil {
		return fmt.Errorf("header packages: %w", err)
	}
	e.Facts = &facts
	return nil
}

func pkgPaths(ps []*pkg) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.path)
	}
	return out
}

var unameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)

// stampFile marks a complete tree; it is written last, just before the
// tree is renamed into place.
const stampFile = ".vm-kernel-stamp.json"

const stampVersion = 1

type stamp struct {
	// Version changes when the layout detection changes, so that trees
	// made by an older version are made again.
	Version  int             `json:"version"`
	Packages []stampPackage  `json:"packages"`
	Layout   json.RawMessage `json:"layout"`
}

type stampPackage struct {
	File string `json:"file"`
	Size int64  `json:"size"`
}

func makeStamp(pkgs []string) ([]stampPackage, error) {
	var out []stampPackage
	for _, p := range pkgs {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out = append(out, stampPackage{File: filepath.Base(p), Size: fi.Size()})
	}
	return out, nil
}

// extractTree makes sure parent/<uname-r> holds pkgs extracted and returns
// that directory. A tree whose stamp lists the same packages is reused as
// is (layout read back from the stamp); otherwise the packages are
// extracted into a temporary directory next to it, detect inspects it,
// fills layout and returns the uname -r the tree is named after, and the
// tree is renamed into place with its stamp.
func extractTree(ctx context.Context, parent, guess string, pkgs []string, layout any, detect func(dir string) (string, error)) (string, error) {
	want, err := makeStamp(pkgs)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	// Reuse: the guessed name first, then any tree made from these packages.
	dirs, _ := filepath.Glob(filepath.Join(parent, "*"))
	dirs = append([]string{filepath.Join(parent, guess)}, dirs...)
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, stampFile))
		if err != nil {
			continue
		}
		var s stamp
		if json.Unmarshal(b, &s) == nil && s.Version == stampVersion && slices.Equal(s.Packages, want) && json.Unmarshal(s.Layout, layout) == nil {
			return d, nil
		}
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up on failure
	// Readable by all: the VM stage's qemu may run as another user.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	for _, p := range pkgs {
		if err := archive.Extract(ctx, p, tmp); err != nil {
			return "", err
		}
	}
	uname, err := detect(tmp)
	if err != nil {
		return "", err
	}
	// The name comes from package contents: it must stay one plain path
	// element.
	if !unameRe.MatchString(uname) {
		return "", fmt.Errorf("unusable kernel release %q found in the packages", uname)
	}
	raw, err := json.Marshal(layout)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(stamp{Version: stampVersion, Packages: want, Layout: raw}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, stampFile), b, 0o644); err != nil {
		return "", err
	}
	final := filepath.Join(parent, uname)
	if err := replaceDir(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

// replaceDir renames src to dst, moving an old dst out of the way first.
func replaceDir(src, dst string) error { return fsx.ReplaceDir(src, dst) }

// removeStale deletes the temporary trees of an extraction that was killed
// before it could clean up (a cancelled one removes its own).
func removeStale(parents ...string) { fsx.RemoveStale(parents...) }

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

var errNoManifest = errors.New("no kernel manifest: run the kernel stage first (mage kernel)")

// ErrSomeKernelsFailed is wrapped by the error of a run in which some
// kernels could not be fetched or extracted but the manifest was written:
// the failed kernels carry their Error there (their cells are skipped with
// "no headers") and the later stages can still run on the others.
var ErrSomeKernelsFailed = errors.New("some kernels failed")

type someFailedError struct{ msg string }

func (e *someFailedError) Error() string        { return e.msg }
func (e *someFailedError) Is(target error) bool { return target == ErrSomeKernelsFailed }

// lockBuildDir takes an exclusive flock on name, saying so when another
// process holds it, and returns the function that releases it.
func lockBuildDir(name string, out *ui.Printer) (func(), error) {
	return fsx.Lock(name, func() { out.Linef("kernel: waiting for another kernel stage on %s", filepath.Dir(name)) })
}
