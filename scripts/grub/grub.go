// Package grub reads a GRUB 2 menu (grub.cfg) and computes how to make one
// installed kernel the default boot entry, the way the Vagrant loops switch
// kernels: on el7 by menu index (grub2-set-default N), on Ubuntu and Debian
// by title path in /etc/default/grub (GRUB_DEFAULT="Advanced options for
// Ubuntu>Ubuntu, with Linux <uname-r>") followed by update-grub. Everything
// here is a pure function of the file contents, so it is tested on real
// grub.cfg layouts without a VM.
package grub

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Entry is one bootable menuentry of a grub.cfg.
type Entry struct {
	Title   string   // the menuentry title, unquoted
	Parents []string // titles of the enclosing submenus, outermost first
	Index   []int    // position among its siblings at each level, outermost first
	Kernel  string   // uname -r of the kernel it boots ("" when it has no linux line)
	Line    int      // line of the menuentry in grub.cfg
}

// Recovery reports whether the entry is a recovery or rescue entry, which
// is never chosen as the default for a kernel.
func (e Entry) Recovery() bool {
	t := strings.ToLower(e.Title)
	return strings.Contains(t, "recovery mode") || strings.Contains(t, "rescue")
}

// IndexPath is the entry's numeric id as grub accepts it for
// saved_entry/GRUB_DEFAULT, e.g. "2" or "1>3".
func (e Entry) IndexPath() string {
	parts := make([]string, len(e.Index))
	for i, n := range e.Index {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ">")
}

// TitlePath is the entry's title id as grub accepts it for GRUB_DEFAULT,
// e.g. "Advanced options for Ubuntu>Ubuntu, with Linux 5.4.0-150-generic".
func (e Entry) TitlePath() string {
	return strings.Join(append(append([]string(nil), e.Parents...), e.Title), ">")
}

// Parse returns the menu entries of a grub.cfg in menu order. Submenus are
// flattened: their entries carry the submenu titles in Parents.
func Parse(cfg []byte) ([]Entry, error) {
	top := &block{kind: "submenu"}
	stack := []*block{top}
	var entries []Entry
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words, err := splitWords(line)
		if err != nil {
			return nil, fmt.Errorf("grub.cfg line %d: %w", lineNo, err)
		}
		if len(words) == 0 {
			continue
		}
		cur := stack[len(stack)-1]
		switch {
		case words[0] == "}":
			if len(stack) == 1 {
				return nil, fmt.Errorf("grub.cfg line %d: unmatched }", lineNo)
			}
			stack = stack[:len(stack)-1]
		case (words[0] == "menuentry" || words[0] == "submenu") && words[len(words)-1] == "{":
			if len(words) < 3 {
				return nil, fmt.Errorf("grub.cfg line %d: %s without a title", lineNo, words[0])
			}
			// Entries nested in a menuentry body (not a submenu) are not
			// reachable by id; count only children of submenus.
			menu := menuOf(stack)
			b := &block{kind: words[0], title: words[1], line: lineNo}
			if menu != nil {
				idx := menu.next
				menu.next++
				if words[0] == "menuentry" {
					parents, index := pathOf(stack)
					entries = append(entries, Entry{
						Title:   words[1],
						Parents: parents,
						Index:   append(index, idx),
						Line:    lineNo,
					})
					b.entry = len(entries) - 1
				} else {
					b.entry = idx
				}
			}
			stack = append(stack, b)
		case words[len(words)-1] == "{":
			stack = append(stack, &block{kind: "other", line: lineNo})
		case cur.kind == "menuentry" && isLinuxCmd(words[0]) && len(words) > 1:
			e := &entries[cur.entry]
			if e.Kernel == "" {
				e.Kernel = kernelOf(words[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read grub.cfg: %w", err)
	}
	if len(stack) > 1 {
		b := stack[len(stack)-1]
		return nil, fmt.Errorf("grub.cfg line %d: block is never closed", b.line)
	}
	return entries, nil
}

// menuOf returns the innermost block whose children are menu items (a
// submenu or the top level), or nil when the innermost menu-ish block is a
// menuentry or another construct nested in one.
func menuOf(stack []*block) *block {
	for i := len(stack) - 1; i >= 0; i-- {
		switch stack[i].kind {
		case "submenu":
			return stack[i]
		case "menuentry":
			return nil
		}
		// "other" blocks (functions, if with braces) are transparent.
	}
	return nil
}

// pathOf returns the titles and indexes of the submenus enclosing the
// current position.
func pathOf(stack []*block) ([]string, []int) {
	var titles []string
	var index []int
	for _, b := range stack[1:] {
		if b.kind == "submenu" {
			titles = append(titles, b.title)
			index = append(index, b.entry)
		}
	}
	return titles, index
}

// block is one open { ... } of grub.cfg while parsing.
type block struct {
	kind  string // "menuentry", "submenu" or "other"
	title string
	entry int // menuentry: index into the entries; submenu: its own menu index
	next  int // submenu (and the top level): index of its next child
	line  int
}

func isLinuxCmd(w string) bool {
	return w == "linux" || w == "linux16" || w == "linuxefi" || w == "kernel"
}

// kernelOf turns the kernel path of a linux line into its uname -r:
// /vmlinuz-3.10.0-1160.el7.x86_64 and /boot/vmlinuz-5.4.0-150-generic both
// name their release after "vmlinuz-". Paths like
// /usr/lib/modules/<uname-r>/vmlinuz name it in the directory.
func kernelOf(p string) string {
	base := path.Base(p)
	if r, ok := strings.CutPrefix(base, "vmlinuz-"); ok {
		return r
	}
	if r, ok := strings.CutPrefix(base, "vmlinux-"); ok {
		return r
	}
	if base == "vmlinuz" {
		return path.Base(path.Dir(p))
	}
	return ""
}

// NotFoundError says that a kernel has no entry in the grub menu.
type NotFoundError struct {
	UnameR string
	Have   []string // kernels the menu does boot
}

func (e *NotFoundError) Error() string {
	have := "none"
	if len(e.Have) > 0 {
		have = strings.Join(e.Have, ", ")
	}
	return fmt.Sprintf("kernel %s not found in grub, consider destroying and rebuilding the VM (menu has: %s)", e.UnameR, have)
}

// Find returns the entry that boots unameR normally (not in recovery
// mode). When several do, an entry whose title names the kernel wins (on
// Ubuntu the top-level "Ubuntu" entry boots the newest kernel too, but only
// the one in "Advanced options" stays that kernel's entry when others are
// installed).
func Find(entries []Entry, unameR string) (Entry, error) {
	var match []Entry
	for _, e := range entries {
		if e.Kernel == unameR && !e.Recovery() {
			match = append(match, e)
		}
	}
	for _, e := range match {
		if strings.Contains(e.Title, unameR) {
			return e, nil
		}
	}
	if len(match) > 0 {
		return match[0], nil
	}
	return Entry{}, &NotFoundError{UnameR: unameR, Have: Kernels(entries)}
}

// Kernels lists the kernels the menu boots, each once, in menu order.
func Kernels(entries []Entry) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Kernel != "" && !e.Recovery() && !seen[e.Kernel] {
			seen[e.Kernel] = true
			out = append(out, e.Kernel)
		}
	}
	return out
}

// El7Default returns the argument of grub2-set-default that boots unameR:
// the entry's menu index, as the original el7 loop used.
func El7Default(cfg []byte, unameR string) (string, error) {
	entries, err := Parse(cfg)
	if err != nil {
		return "", err
	}
	e, err := Find(entries, unameR)
	if err != nil {
		return "", err
	}
	return e.IndexPath(), nil
}

// TitleDefault returns the GRUB_DEFAULT value that boots unameR on Ubuntu
// and Debian: the entry's title path, e.g. "Advanced options for
// Ubuntu>Ubuntu, with Linux 5.4.0-150-generic".
func TitleDefault(cfg []byte, unameR string) (string, error) {
	entries, err := Parse(cfg)
	if err != nil {
		return "", err
	}
	e, err := Find(entries, unameR)
	if err != nil {
		return "", err
	}
	return e.TitlePath(), nil
}

// SetVar returns the /etc/default/grub text with name set to value (double
// quoted), replacing every existing assignment of name or appending one.
// Other lines, comments included, are kept as they are.
func SetVar(defaults []byte, name, value string) []byte {
	assign := name + "=" + quote(value)
	var out []string
	done := false
	text := strings.TrimRight(string(defaults), "\n")
	if text != "" {
		for _, l := range strings.Split(text, "\n") {
			t := strings.TrimSpace(l)
			t = strings.TrimPrefix(t, "export ")
			if strings.HasPrefix(t, name+"=") {
				if !done {
					out = append(out, assign)
					done = true
				}
				continue
			}
			out = append(out, l)
		}
	}
	if !done {
		out = append(out, assign)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// Var returns the value of name in /etc/default/grub text, unquoted, and
// whether it is set. The last assignment wins, as in the shell.
func Var(defaults []byte, name string) (string, bool) {
	val, ok := "", false
	for _, l := range strings.Split(string(defaults), "\n") {
		t := strings.TrimPrefix(strings.TrimSpace(l), "export ")
		if v, found := strings.CutPrefix(t, name+"="); found {
			words, err := splitWords(v)
			if err != nil || len(words) == 0 {
				val, ok = "", true
				continue
			}
			val, ok = words[0], true
		}
	}
	return val, ok
}

// quote double-quotes s for a shell-sourced file such as /etc/default/grub.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(s) + `"`
}

// splitWords splits a grub script line into words, honouring single
// quotes (literal), double quotes (backslash escapes) and backslashes
// outside quotes, as grub's own lexer does for the constructs grub-mkconfig
// writes. A trailing comment is dropped.
func splitWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words, nil
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
				cur.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			i = j
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
