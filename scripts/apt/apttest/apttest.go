// Package apttest serves a small signed Debian archive over HTTP for
// tests: InRelease signed with a key made for the test, Packages.xz with
// the SHA256 and size of each package, and the packages themselves. The
// -security suites are served under <mirror>-security, as Debian does.
package apttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ulikunitz/xz"
)

// Archive is a fake Debian mirror.
type Archive struct {
	Mirror  string // archive root URL, e.g. http://127.0.0.1:port/debian
	Keyring string // file holding the public key that signs InRelease

	server *httptest.Server
	key    *openpgp.Entity
	mu     sync.Mutex
	files  map[string][]byte            // URL path -> body
	stanza map[string][]string          // suite -> Packages stanzas
	pool   map[string]map[string]string // suite -> package name -> pool path
	served atomic.Int64                 // bytes of package files served
	// ValidUntil sets the Valid-Until field of a suite's InRelease at the
	// next Publish (none when absent).
	ValidUntil map[string]time.Time
}

// New starts an empty archive; it stops when the test ends.
func New(t testing.TB) *Archive {
	t.Helper()
	key, err := openpgp.NewEntity("Test Archive", "", "archive@test.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	a := &Archive{key: key, files: map[string][]byte{}, stanza: map[string][]string{}, pool: map[string]map[string]string{}}
	a.server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.server.Close)
	a.Mirror = a.server.URL + "/debian"
	a.Keyring = filepath.Join(t.TempDir(), "keyring.gpg")
	var buf bytes.Buffer
	if err := key.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.Keyring, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *Archive) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	body, ok := a.files[r.URL.Path]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.Contains(r.URL.Path, "/pool/") {
		a.served.Add(int64(len(body)))
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

// PackageBytes is the number of package bytes served so far.
func (a *Archive) PackageBytes() int64 { return a.served.Load() }

func (a *Archive) root(suite string) string {
	if strings.HasSuffix(suite, "-security") {
		return "/debian-security"
	}
	return "/debian"
}

// Add puts the package file at path into suite as name=version and
// returns its pool path.
func (a *Archive) Add(t testing.TB, suite, name, version, path string) string {
	t.Helper()
	return a.AddDepends(t, suite, name, version, path, "")
}

// AddDepends is Add for a package with dependencies: depends is the
// Depends field of its index stanza (e.g. "kmod, linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)"),
// "" for none.
func (a *Archive) AddDepends(t testing.TB, suite, name, version, path, depends string) string {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if depends != "" {
		depends = "Depends: " + depends + "\n"
	}
	fields := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\n%sDescription: test\n with a continuation line\n", name, version, depends)
	return a.addStanza(suite, name, version, body, fields)
}

// addStanza stores body in the pool and indexes it in suite with fields
// (ending in a newline) followed by its Filename, Size and SHA256.
func (a *Archive) addStanza(suite, name, version string, body []byte, fields string) string {
	sum := sha256.Sum256(body)
	pool := fmt.Sprintf("pool/main/l/linux/%s_%s_amd64.deb", name, version)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files[a.root(suite)+"/"+pool] = body
	a.stanza[suite] = append(a.stanza[suite], fmt.Sprintf("%sFilename: %s\nSize: %d\nSHA256: %s\n", fields, pool, len(body), hex.EncodeToString(sum[:])))
	if a.pool[suite] == nil {
		a.pool[suite] = map[string]string{}
	}
	a.pool[suite][name] = a.root(suite) + "/" + pool
	return pool
}

// AddStanzas puts the packages of a Packages index excerpt (stanzas
// separated by blank lines, as in a real index) into suite, each with its
// own fields kept as they are (Depends, Pre-Depends, Provides, ...) and a
// small made-up package file whose Filename, Size and SHA256 replace the
// real ones. Tests use it to resolve against Debian's real dependency
// data without downloading the real packages.
func (a *Archive) AddStanzas(t testing.TB, suite, index string) {
	t.Helper()
	for _, stanza := range strings.Split(strings.TrimSpace(index), "\n\n") {
		var name, version string
		var keep []string
		for _, line := range strings.Split(strings.TrimSpace(stanza), "\n") {
			key, val, _ := strings.Cut(line, ": ")
			switch key {
			case "Package":
				name = val
			case "Version":
				version = val
			case "Filename", "Size", "SHA256", "SHA1", "MD5sum":
				continue
			}
			keep = append(keep, line)
		}
		if name == "" || version == "" {
			t.Fatalf("apttest: stanza without Package or Version:\n%s", stanza)
		}
		a.addStanza(suite, name, version, []byte(name+"_"+version+"\n"), strings.Join(keep, "\n")+"\n")
	}
}

// Replace changes what the archive serves at a pool path (after Publish:
// the index keeps the old checksum), or deletes it when body is nil.
func (a *Archive) Replace(suite, name string, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pool[suite][name]
	if body == nil {
		delete(a.files, p)
		return
	}
	a.files[p] = body
}

// Publish writes every suite's Packages.xz and signed InRelease.
func (a *Archive) Publish(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	suites := make([]string, 0, len(a.stanza))
	for s := range a.stanza {
		suites = append(suites, s)
	}
	sort.Strings(suites)
	for _, suite := range suites {
		var xzBuf bytes.Buffer
		zw, err := xz.NewWriter(&xzBuf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write([]byte(strings.Join(a.stanza[suite], "\n")))
		zw.Close()
		sum := sha256.Sum256(xzBuf.Bytes())
		base := a.root(suite) + "/dists/" + suite
		a.files[base+"/main/binary-amd64/Packages.xz"] = xzBuf.Bytes()
		valid := ""
		if until, ok := a.ValidUntil[suite]; ok {
			valid = "Valid-Until: " + until.UTC().Format(time.RFC1123) + "\n"
		}
		release := fmt.Sprintf("Origin: Test\nSuite: %s\n%sArchitectures: amd64\nComponents: main\nSHA256:\n %s %d main/binary-amd64/Packages.xz\n",
			suite, valid, hex.EncodeToString(sum[:]), xzBuf.Len())
		var signed bytes.Buffer
		w, err := clearsign.Encode(&signed, a.key.PrivateKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(release))
		w.Close()
		a.files[base+"/InRelease"] = signed.Bytes()
	}
}

// Tamper changes one byte of the signed text of suite's InRelease, so that
// its signature no longer verifies.
func (a *Archive) Tamper(suite string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.root(suite) + "/dists/" + suite + "/InRelease"
	a.files[p] = bytes.Replace(a.files[p], []byte("Origin: Test"), []byte("Origin: Evil"), 1)
}

// Corrupt flips one byte of a package the index already lists, keeping its
// size, so that only its SHA256 tells.
func (a *Archive) Corrupt(suite, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pool[suite][name]
	body := bytes.Clone(a.files[p])
	body[len(body)-1] ^= 0xff
	a.files[p] = body
}

// CorruptIndex flips one byte of suite's Packages.xz after publishing, so
// that it no longer matches the SHA256 in InRelease.
func (a *Archive) CorruptIndex(suite string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.root(suite) + "/dists/" + suite + "/main/binary-amd64/Packages.xz"
	body := bytes.Clone(a.files[p])
	body[len(body)/2] ^= 0xff
	a.files[p] = body
}
