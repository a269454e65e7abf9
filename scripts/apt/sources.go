package apt

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Source is one Debian archive the host's apt configuration uses.
type Source struct {
	URI    string   // archive root, without a trailing slash
	Suites []string // e.g. bookworm, bookworm-updates
	File   string   // where it was configured
}

// HostSources reads the apt sources under etcDir (normally /etc/apt):
// sources.list and sources.list.d/*.list (one-line format) and
// sources.list.d/*.sources (deb822). Only binary ("deb") sources count;
// other files (e.g. *.disabled) are ignored, as apt ignores them.
func HostSources(etcDir string) ([]Source, error) {
	var out []Source
	files := []string{filepath.Join(etcDir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(etcDir, "sources.list.d", "*"))
	slices.Sort(more)
	files = append(files, more...)
	for _, f := range files {
		var src []Source
		var err error
		switch {
		case strings.HasSuffix(f, ".list"):
			src, err = readOneLine(f)
		case strings.HasSuffix(f, ".sources"):
			src, err = readDeb822(f)
		default:
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		out = append(out, src...)
	}
	return out, nil
}

// readOneLine parses "deb [options] URI suite [component...]" lines.
func readOneLine(file string) ([]Source, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Source
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") {
			// Options may contain spaces: skip to the closing bracket.
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) > 0 {
				fields = fields[1:]
			}
		}
		if len(fields) < 2 {
			continue
		}
		out = append(out, Source{URI: strings.TrimRight(fields[0], "/"), Suites: []string{fields[1]}, File: file})
	}
	return out, sc.Err()
}

// readDeb822 parses stanzas with Types, URIs and Suites fields.
func readDeb822(file string) ([]Source, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []Source
	for _, stanza := range splitStanzas(string(b)) {
		f := parseStanza(stanza)
		if !slices.Contains(strings.Fields(f["Types"]), "deb") || strings.EqualFold(f["Enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(f["URIs"]) {
			out = append(out, Source{URI: strings.TrimRight(uri, "/"), Suites: strings.Fields(f["Suites"]), File: file})
		}
	}
	return out, nil
}

// Mirror picks the Debian mirror among sources: the first archive that
// serves a suite other than a -security one. It returns that mirror and its
// suites (used when an apt reference names no suite).
func Mirror(sources []Source) (string, []string, error) {
	for _, s := range sources {
		if strings.HasSuffix(s.URI, "-security") || len(s.Suites) == 0 || strings.Contains(s.Suites[0], "/") {
			continue
		}
		var suites []string
		for _, o := range sources {
			if o.URI == s.URI {
				suites = append(suites, o.Suites...)
			}
		}
		return s.URI, suites, nil
	}
	return "", nil, fmt.Errorf("no Debian archive in the host's apt sources: set VM_DEBIAN_MIRROR to a Debian mirror URL")
}

// SecurityArchive is where the -security suites of mirror live: Debian
// publishes them in a sibling archive named <mirror>-security.
func SecurityArchive(mirror string) string { return strings.TrimRight(mirror, "/") + "-security" }

// splitStanzas splits deb822 text at blank lines, dropping comments.
func splitStanzas(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteString(line + "\n")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// parseStanza returns the fields of one deb822 stanza; continuation lines
// (starting with a space) are joined with newlines.
func parseStanza(stanza string) map[string]string {
	f := map[string]string{}
	var last string
	for _, line := range strings.Split(stanza, "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			f[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		f[k] = strings.TrimSpace(v)
	}
	return f
}
