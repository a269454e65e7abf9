// Package apt resolves apt references (apt:[SUITE/]PACKAGE[=VERSION]) to
// package URLs with the size and SHA256 of Debian's signed index, without
// apt and without touching the host's apt configuration.
//
// For each suite it fetches dists/<suite>/InRelease from the mirror,
// verifies its OpenPGP signature against the Debian archive keyring, reads
// the SHA256 of main/binary-<arch>/Packages.xz from it, downloads that file
// (verified against the checksum) and looks the packages up in it. The
// verified files are kept per suite under a private state directory, so a
// re-run fetches only InRelease (tens to a few hundred KiB per suite) and
// downloads Packages.xz again only when the archive has changed.
//
// A query may also follow the package's dependencies (Query.Follow): a
// meta package such as linux-image-cloud-amd64 then brings the kernel
// packages it depends on, so that a grid can follow Debian's current
// kernel. Dependencies are looked up in the suite the package came from,
// then in its base suite (trixie for trixie-backports). A package from an
// update suite also brings the helpers (linux-base, ...) that only that
// suite can satisfy, so that it installs on a system of the base suite.
package apt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/xi2/xz"

	"github.com/falcosecurity/libs/test/vm/scripts/download"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
)

// DefaultKeyring is Debian's archive keyring (package debian-archive-keyring).
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Package is a resolved apt reference.
type Package struct {
	Name, Version, Suite string
	URL                  string // mirror + Filename
	Filename             string // path in the archive, e.g. pool/main/l/linux/...
	Size                 int64
	SHA256               string
	Depends              string // Pre-Depends and Depends, as in the index
}

// FileName is the package's file name (the last element of Filename).
func (p Package) FileName() string { return filepath.Base(p.Filename) }

// Resolver looks packages up in the indexes of a Debian mirror.
type Resolver struct {
	Mirror        string   // archive root, e.g. the host's Debian mirror
	DefaultSuites []string // searched when a reference names no suite
	StateDir      string   // private index cache, e.g. build/apt
	Keyring       string   // OpenPGP keyring that signs InRelease
	Arch          string   // Debian architecture, default amd64
	Client        *http.Client
	// AllowExpired accepts an InRelease past its Valid-Until (snapshot
	// mirrors serve old, expired indexes on purpose). Otherwise an expired
	// index is refused: it may be a stale mirror or a replayed old index
	// with since-fixed packages.
	AllowExpired bool
	// Now is the clock Valid-Until is checked against; nil is time.Now.
	Now func() time.Time

	mu         sync.Mutex
	indexBytes atomic.Int64
	notes      []string
}

// Query is one apt reference: PACKAGE[=VERSION] in Suite ("" = the
// default suites, newest version wins).
type Query struct {
	Suite, Package, Version string
	// Follow, when set, picks the dependencies to bring along: every
	// dependency (Pre-Depends, Depends) whose name it accepts is resolved
	// too, recursively, and listed in Answer.Deps. Version constraints are
	// honoured; of alternatives (a | b) the first one Follow accepts that
	// the index has wins. Nil: the package alone.
	//
	// For a package of an update suite (trixie-backports), a dependency
	// Follow does not accept (a helper such as linux-base) is brought too
	// when no version in the base suite satisfies it and one in the update
	// suite does: Debian's 7.x images in trixie-backports pre-depend on
	// linux-base (>= 4.17~), which trixie does not have, so a trixie system
	// cannot install them without it. Helpers the base suite satisfies are
	// left to the system that installs the kernel.
	Follow func(name string) bool
}

func (q Query) String() string {
	s := "apt:" + q.Package
	if q.Suite != "" {
		s = "apt:" + q.Suite + "/" + q.Package
	}
	if q.Version != "" {
		s += "=" + q.Version
	}
	return s
}

// Answer is the resolution of one Query.
type Answer struct {
	Package Package
	// Deps are the dependencies Query.Follow brought, each once, in the
	// order they were found (a package before its own dependencies).
	Deps []Package
	Err  error
}

// IndexBytes is the number of index bytes (InRelease, Packages.xz)
// received from the network so far.
func (r *Resolver) IndexBytes() int64 { return r.indexBytes.Load() }

// Notes returns what the resolver wants people to know (e.g. an offline
// run using a cached index).
func (r *Resolver) Notes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.notes...)
}

func (r *Resolver) note(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, a...))
}

// archive returns the archive root that serves suite.
func (r *Resolver) archive(suite string) string {
	if strings.HasSuffix(suite, "-security") {
		return SecurityArchive(r.Mirror)
	}
	return strings.TrimRight(r.Mirror, "/")
}

func (r *Resolver) arch() string {
	if r.Arch == "" {
		return "amd64"
	}
	return r.Arch
}

func (r *Resolver) suitesOf(q Query) []string {
	if q.Suite != "" {
		return []string{q.Suite}
	}
	return r.DefaultSuites
}

// ResolveAll answers every query, in order. Each suite's index is fetched
// and read once, whatever the number of queries; a suite that cannot be
// fetched fails only the queries that need it.
func (r *Resolver) ResolveAll(ctx context.Context, qs []Query) []Answer {
	scans := map[string]*suiteScan{}
	scan := func(s string) *suiteScan {
		if scans[s] == nil {
			scans[s] = &suiteScan{names: map[string]bool{}}
		}
		return scans[s]
	}
	for _, q := range qs {
		for _, s := range r.suitesOf(q) {
			scan(s).names[q.Package] = true
			if q.Follow != nil {
				for _, d := range depSuites(s) {
					scan(d).follow = append(scan(d).follow, q.Follow)
				}
				if BaseSuite(s) != "" {
					scan(s).everything = true
				}
			}
		}
	}
	// Update suites are small: read them whole first, so that their base
	// suites can keep the stanzas of every name a helper could have.
	r.scanSuites(ctx, scans, func(sc *suiteScan) bool { return sc.everything })
	for suite, sc := range scans {
		if !sc.everything || sc.err != nil {
			continue
		}
		base := scan(BaseSuite(suite))
		for name := range sc.found {
			base.names[name] = true
		}
	}
	r.scanSuites(ctx, scans, func(sc *suiteScan) bool { return !sc.everything })
	out := make([]Answer, len(qs))
	for i, q := range qs {
		suites := r.suitesOf(q)
		if len(suites) == 0 {
			out[i].Err = fmt.Errorf("%s names no suite and the host's apt sources list none", q)
			continue
		}
		var best Package
		var seen []string
		for _, s := range suites {
			if err := scans[s].err; err != nil {
				out[i].Err = fmt.Errorf("%s: %w", q, err)
				break
			}
			for _, c := range scans[s].found[q.Package] {
				seen = append(seen, c.Version+" in "+s)
				if q.Version != "" && c.Version != q.Version {
					continue
				}
				if best.Name == "" || CompareVersions(c.Version, best.Version) > 0 {
					best = c
				}
			}
		}
		where := fmt.Sprintf("suite %s of %s", strings.Join(suites, ", "), r.Mirror)
		switch {
		case out[i].Err != nil:
		case best.Name != "":
			out[i].Package = best
			if q.Follow != nil {
				out[i].Deps, out[i].Err = expand(q, best, scans)
			}
		case len(seen) > 0:
			out[i].Err = fmt.Errorf("%s: version %s is not in %s (there: %s)", q, q.Version, where, strings.Join(seen, ", "))
		default:
			out[i].Err = fmt.Errorf("%s: package %s is not in %s", q, q.Package, where)
		}
	}
	return out
}

// scanSuites fetches and reads, in parallel, the index of every suite of
// scans that pick accepts.
func (r *Resolver) scanSuites(ctx context.Context, scans map[string]*suiteScan, pick func(*suiteScan) bool) {
	var wg sync.WaitGroup
	for suite, sc := range scans {
		if !pick(sc) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, err := r.fetchIndex(ctx, suite)
			if err == nil {
				sc.found, err = scanPackages(ctx, path, sc.wants, suite, r.archive(suite))
				if err != nil {
					err = fmt.Errorf("suite %s: read index: %w", suite, err)
				}
			}
			sc.err = err
		}()
	}
	wg.Wait()
}

// suiteScan is what ResolveAll reads from one suite's index.
type suiteScan struct {
	names      map[string]bool          // packages asked for by name
	follow     []func(name string) bool // dependencies some query may follow
	everything bool                     // keep every stanza (an update suite whose helpers may be needed)
	found      map[string][]Package     // every version of the packages kept
	err        error
}

func (sc *suiteScan) wants(name string) bool {
	if sc.everything || sc.names[name] {
		return true
	}
	for _, f := range sc.follow {
		if f(name) {
			return true
		}
	}
	return false
}

// depSuites are the suites a dependency of a package from suite is looked
// up in, in order.
func depSuites(suite string) []string {
	if base := BaseSuite(suite); base != "" {
		return []string{suite, base}
	}
	return []string{suite}
}

// expand resolves the dependencies of root that q.Follow accepts,
// recursively, and the helpers only root's update suite can satisfy (see
// Query.Follow); each package name is taken once, which also ends cycles.
func expand(q Query, root Package, scans map[string]*suiteScan) ([]Package, error) {
	x := &expansion{q: q, scans: scans, suites: depSuites(root.Suite), seen: map[string]bool{root.Name: true}}
	err := x.walk(root)
	return x.out, err
}

// expansion is the state of one expand.
type expansion struct {
	q      Query
	scans  map[string]*suiteScan
	suites []string // where dependencies are looked up: the root's suite, then its base suite
	seen   map[string]bool
	out    []Package
}

// walk takes the dependencies of p, clause by clause.
func (x *expansion) walk(p Package) error {
	clauses, err := parseDepends(p.Depends)
	if err != nil {
		return fmt.Errorf("%s: dependencies of %s %s: %w", x.q, p.Name, p.Version, err)
	}
	for _, alts := range clauses {
		var own []dep
		for _, d := range alts {
			if x.q.Follow(d.Name) {
				own = append(own, d)
			}
		}
		if len(own) == 0 {
			err = x.helper(alts)
		} else {
			err = x.follow(p, own)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// follow takes the first of alternatives that an index has in a version
// that satisfies it; none is an error that names the clause.
func (x *expansion) follow(p Package, alts []dep) error {
	for _, d := range alts {
		if x.seen[d.Name] {
			return nil
		}
	}
	for _, d := range alts {
		for _, s := range x.suites {
			if best, ok := x.newest(s, d); ok {
				return x.take(best)
			}
		}
	}
	var names []string
	for _, d := range alts {
		names = append(names, d.String())
	}
	why := ""
	for _, s := range x.suites {
		if sc := x.scans[s]; sc != nil && sc.err != nil {
			why = fmt.Sprintf(" (%v)", sc.err)
		}
	}
	return fmt.Errorf("%s: %s %s depends on %s, which is not in suite %s%s", x.q, p.Name, p.Version, strings.Join(names, " | "), strings.Join(x.suites, " or "), why)
}

// helper takes, for a package of an update suite, the first alternative of
// a helper clause that only the update suite satisfies. Nothing is taken
// when the root comes from a base suite, when the base suite satisfies
// one of the alternatives (or its index could not be read: then nothing
// is known), or when the update suite has none of them either (a virtual
// package, say): the installing system answers for those.
func (x *expansion) helper(alts []dep) error {
	if len(x.suites) < 2 {
		return nil
	}
	update, base := x.suites[0], x.suites[1]
	if sc := x.scans[base]; sc == nil || sc.err != nil {
		return nil
	}
	for _, d := range alts {
		if _, ok := x.newest(base, d); ok || x.seen[d.Name] {
			return nil
		}
	}
	for _, d := range alts {
		if best, ok := x.newest(update, d); ok {
			return x.take(best)
		}
	}
	return nil
}

// newest returns the newest version of d's package in suite that satisfies
// d's constraint.
func (x *expansion) newest(suite string, d dep) (Package, bool) {
	sc := x.scans[suite]
	if sc == nil || sc.err != nil {
		return Package{}, false
	}
	var best Package
	for _, c := range sc.found[d.Name] {
		if d.satisfies(c.Version) && (best.Name == "" || CompareVersions(c.Version, best.Version) > 0) {
			best = c
		}
	}
	return best, best.Name != ""
}

// take adds p to the expansion and walks its own dependencies.
func (x *expansion) take(p Package) error {
	x.seen[p.Name] = true
	x.out = append(x.out, p)
	return x.walk(p)
}

// fetchIndex makes sure the verified Packages.xz of suite is in the state
// directory and returns its path.
func (r *Resolver) fetchIndex(ctx context.Context, suite string) (string, error) {
	dir := filepath.Join(r.StateDir, suite)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := r.archive(suite) + "/dists/" + suite
	release, err := r.fetchInRelease(ctx, base+"/InRelease")
	cached := filepath.Join(dir, "InRelease.verified")
	if err != nil {
		// Offline re-runs may use the last verified index.
		old, rerr := os.ReadFile(cached)
		if rerr != nil || ctx.Err() != nil {
			return "", fmt.Errorf("suite %s: %w", suite, err)
		}
		r.note("suite %s: %v; using the index verified earlier", suite, err)
		release = old
	} else if err := writeAtomic(cached, release); err != nil {
		return "", err
	}
	if err := r.checkValidUntil(suite, release); err != nil {
		return "", err
	}
	comp := "main/binary-" + r.arch() + "/Packages.xz"
	sum, size, err := releaseChecksum(release, comp)
	if err != nil {
		return "", fmt.Errorf("suite %s: %w", suite, err)
	}
	dl := download.New(r.Client, 1)
	dest := filepath.Join(dir, "Packages.xz")
	if r.arch() != "amd64" {
		// One state directory serves every architecture's resolver.
		dest = filepath.Join(dir, "Packages-"+r.arch()+".xz")
	}
	if _, err := dl.Get(ctx, download.Item{URL: base + "/" + comp, Dest: dest, Size: size, SHA256: sum}); err != nil {
		return "", fmt.Errorf("suite %s: index: %w", suite, err)
	}
	r.indexBytes.Add(dl.Bytes())
	return dest, nil
}

// fetchInRelease downloads InRelease and returns its signed text, after
// checking the signature.
func (r *Resolver) fetchInRelease(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	client := r.Client
	if client == nil {
		// InRelease is at most a few hundred KiB: a mirror that has not
		// sent it in minutes is not going to, and a stuck connection
		// must not hang the stage.
		client = &http.Client{Timeout: 3 * time.Minute}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s (is the suite name right?)", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	r.indexBytes.Add(int64(len(body)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	text, err := r.verify(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return text, nil
}

// verify checks a clear-signed InRelease against the keyring and returns
// the signed text.
func (r *Resolver) verify(body []byte) ([]byte, error) {
	keyring := r.Keyring
	if keyring == "" {
		keyring = DefaultKeyring
	}
	f, err := os.Open(keyring)
	if err != nil {
		return nil, fmt.Errorf("cannot check the index signature: %w (install debian-archive-keyring)", err)
	}
	defer f.Close()
	keys, err := openpgp.ReadKeyRing(f)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", keyring, err)
	}
	block, _ := clearsign.Decode(body)
	if block == nil {
		return nil, errors.New("not a clear-signed InRelease file")
	}
	if _, err := block.VerifySignature(keys, nil); err != nil {
		return nil, fmt.Errorf("bad or unknown signature (keyring %s): %w", keyring, err)
	}
	return block.Plaintext, nil
}

// checkValidUntil refuses an InRelease whose Valid-Until has passed,
// unless AllowExpired. Suites without the field (Debian's stable releases)
// never expire.
func (r *Resolver) checkValidUntil(suite string, release []byte) error {
	v := releaseField(release, "Valid-Until")
	if v == "" {
		return nil
	}
	until, err := time.Parse(time.RFC1123, v)
	if err != nil {
		return fmt.Errorf("suite %s: InRelease has an unreadable Valid-Until %q", suite, v)
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if !now().After(until) {
		return nil
	}
	if r.AllowExpired {
		r.note("suite %s: InRelease expired on %s (Valid-Until); accepted (VM_APT_ALLOW_EXPIRED=1)", suite, v)
		return nil
	}
	return fmt.Errorf("suite %s: InRelease expired on %s (Valid-Until): the mirror is stale or serves an old index; VM_APT_ALLOW_EXPIRED=1 accepts it (for snapshot mirrors)", suite, v)
}

// releaseField returns a single-line field of a Release text's header.
func releaseField(release []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(release))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// releaseChecksum finds path's SHA256 and size in a Release text.
func releaseChecksum(release []byte, path string) (string, int64, error) {
	in := false
	sc := bufio.NewScanner(bytes.NewReader(release))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") {
			in = strings.HasPrefix(line, "SHA256:")
			continue
		}
		f := strings.Fields(line)
		if in && len(f) == 3 && f[2] == path {
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || len(f[0]) != 64 {
				return "", 0, fmt.Errorf("bad SHA256 line for %s in InRelease", path)
			}
			return f[0], size, nil
		}
	}
	return "", 0, fmt.Errorf("InRelease lists no SHA256 for %s", path)
}

// scanPackages streams a Packages.xz file and returns the stanzas of the
// wanted packages.
func scanPackages(ctx context.Context, file string, want func(name string) bool, suite, archive string) (map[string][]Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := xz.NewReader(bufio.NewReaderSize(f, 1<<16), 0)
	if err != nil {
		return nil, err
	}
	out := map[string][]Package{}
	sc := bufio.NewScanner(z)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var cur Package
	keep := false
	flush := func() {
		if keep && cur.Filename != "" {
			cur.Suite = suite
			cur.URL = archive + "/" + cur.Filename
			out[cur.Name] = append(out[cur.Name], cur)
		}
		cur, keep = Package{}, false
	}
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		if line[0] == ' ' {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "Package":
			cur.Name, keep = v, want(v)
		case "Version":
			cur.Version = v
		case "Filename":
			cur.Filename = v
		case "Size":
			cur.Size, _ = strconv.ParseInt(v, 10, 64)
		case "SHA256":
			cur.SHA256 = v
		case "Depends", "Pre-Depends":
			if cur.Depends != "" {
				v = cur.Depends + ", " + v
			}
			cur.Depends = v
		}
	}
	flush()
	return out, sc.Err()
}

func writeAtomic(path string, data []byte) error { return fsx.WriteFile(path, data, 0o644) }
