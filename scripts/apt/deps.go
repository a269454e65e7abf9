package apt

import (
	"fmt"
	"strings"
)

// KernelPackage reports whether name belongs to one of Debian's kernel
// package families: the header families (HeaderPackage) or the boot
// families (BootPackage). Helpers shared by every kernel, such as kmod,
// initramfs-tools, linux-base or linux-compiler-*, are not kernel packages.
func KernelPackage(name string) bool { return HeaderPackage(name) || BootPackage(name) }

// HeaderPackage reports whether name is a kernel headers package
// (linux-headers-*) or kbuild's host tools (linux-kbuild-*).
func HeaderPackage(name string) bool {
	return strings.HasPrefix(name, "linux-headers-") || strings.HasPrefix(name, "linux-kbuild-")
}

// BootPackage reports whether name is one of a kernel's own boot packages,
// those that carry (or, for a meta package, select) what a system needs to
// boot it: linux-image-*, linux-binary-*, linux-modules-* and
// linux-base-*. The last family is the 7.x packaging's per-kernel base
// files (linux-base-<abi>, which the image, binary and modules packages
// depend on with an exact version) and its flavour meta package
// (linux-base-cloud-amd64). The kernel's own packages are these families,
// not "every package whose name carries the ABI": meta packages name no
// ABI, yet installing one needs its siblings. Debian's helper package
// linux-base itself (no suffix) is shared by all kernels and is not one.
func BootPackage(name string) bool {
	for _, p := range []string{"linux-image-", "linux-binary-", "linux-modules-", "linux-base-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// BaseSuite is the suite an update suite builds on (bookworm for
// bookworm-security, trixie for trixie-backports), or "" for a base suite.
func BaseSuite(suite string) string {
	for _, suffix := range []string{"-proposed-updates", "-security", "-backports", "-updates"} {
		if base, ok := strings.CutSuffix(suite, suffix); ok && base != "" {
			return base
		}
	}
	return ""
}

// dep is one alternative of a Depends clause: NAME [(OP VERSION)].
type dep struct{ Name, Op, Version string }

func (d dep) String() string {
	if d.Op == "" {
		return d.Name
	}
	return fmt.Sprintf("%s (%s %s)", d.Name, d.Op, d.Version)
}

// parseDepends splits a Depends field into clauses of alternatives
// ("a (>= 1), b | c"). Architecture qualifiers (name:any), architecture
// lists ([amd64]) and build profiles (<!nocheck>) are dropped.
func parseDepends(field string) ([][]dep, error) {
	var out [][]dep
	for _, clause := range strings.Split(field, ",") {
		if strings.TrimSpace(clause) == "" {
			continue
		}
		var alts []dep
		for _, alt := range strings.Split(clause, "|") {
			alt = strings.TrimSpace(cutProfiles(cutBetween(alt, '[', ']')))
			var d dep
			name, rest, _ := strings.Cut(alt, "(")
			d.Name, _, _ = strings.Cut(strings.TrimSpace(name), ":")
			if d.Name == "" || strings.ContainsAny(d.Name, " \t") {
				return nil, fmt.Errorf("bad dependency %q", strings.TrimSpace(alt))
			}
			if rest != "" {
				rel, ok := strings.CutSuffix(strings.TrimSpace(rest), ")")
				f := strings.Fields(strings.NewReplacer("<<", "<< ", "<=", "<= ", ">>", ">> ", ">=", ">= ", "=", "= ").Replace(rel))
				if !ok || len(f) != 2 {
					return nil, fmt.Errorf("bad version constraint in %q", strings.TrimSpace(alt))
				}
				d.Op, d.Version = f[0], f[1]
			}
			alts = append(alts, d)
		}
		out = append(out, alts)
	}
	return out, nil
}

// cutBetween removes every open...close span of s.
func cutBetween(s string, open, close byte) string {
	for {
		i := strings.IndexByte(s, open)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], close)
		if j < 0 {
			return s[:i]
		}
		s = s[:i] + s[i+j+1:]
	}
}

// cutProfiles removes build profiles (<!nocheck> <stage1>), leaving the
// << and <= operators alone.
func cutProfiles(s string) string {
	for i := 0; i+1 < len(s); i++ {
		if c := s[i+1]; s[i] == '<' && (c == '!' || c >= 'a' && c <= 'z') {
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				return s[:i]
			}
			s = s[:i] + s[i+j+1:]
			i--
		}
	}
	return s
}

// satisfies reports whether version meets the constraint of d.
func (d dep) satisfies(version string) bool {
	if d.Op == "" {
		return true
	}
	c := CompareVersions(version, d.Version)
	switch d.Op {
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case "<=":
		return c <= 0
	case ">>", ">":
		return c > 0
	case "<<", "<":
		return c < 0
	}
	return false
}
