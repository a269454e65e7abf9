// Package container builds the builder images of the compile stage and runs
// containers from them, through the Docker Engine API only.
//
// There is one image per Debian suite (dockerfiles/<suite>.Dockerfile),
// embedded in the binary, and, built on it only when the grid has arm64
// kernels, its cross image (dockerfiles/<suite>-arm64.Dockerfile: the
// aarch64 cross gcc and the arm64 libraries of scap-open). Each is tagged testvm-builder:<suite>-<hash>, where
// hash covers the Dockerfile and the recipe of this package, so an unchanged
// Dockerfile builds nothing; the image's labels name the compilers it
// provides (testvm.compilers) and its glibc version (testvm.glibc). The base
// image debian:<suite> is pulled when a registry answers and otherwise
// bootstrapped with debootstrap from the host's Debian mirror and imported.
// Every container is labelled testvm=1 and removed when its work ends, also
// when the context is cancelled.
package container

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/elfdeps"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

//go:embed dockerfiles/*.Dockerfile
var dockerfiles embed.FS

// Labels on images and containers.
const (
	LabelOwner     = "testvm"           // "1" on everything this suite creates
	LabelCompilers = "testvm.compilers" // comma-separated, e.g. gcc-11,gcc-12
	LabelGlibc     = "testvm.glibc"     // e.g. 2.36
	LabelSuite     = "testvm.suite"     // Debian suite
	LabelHash      = "testvm.hash"      // content hash of the Dockerfile + recipe
	LabelBuild     = "testvm.build"     // on containers: the build directory they work for
)

// Repository is the image repository of builder images.
const Repository = "testvm-builder"

// recipeVersion is part of every image hash: bump it when the way images are
// built changes (build args, labels), so stale images are rebuilt.
const recipeVersion = "1"

// Spec is a builder image as the repository defines it.
type Spec struct {
	Suite      string   // Debian suite, e.g. bookworm
	Compilers  []string // compilers it provides, e.g. gcc-12, clang-14
	OnDemand   bool     // built only when no other image provides a wanted compiler
	Dockerfile []byte
	// Arch is the architecture its compilers build for: layout.Amd64, or
	// for a cross image the foreign one.
	Arch string
	// Parent is, for a cross image, the suite's image it is built on.
	Parent *Spec
}

// Name names the image among the others: the suite, or suite-<arch> for
// a cross image (bookworm-arm64).
func (s Spec) Name() string {
	if s.Parent != nil {
		return s.Suite + "-" + s.Arch
	}
	return s.Suite
}

// Hash is the content hash of the image: Dockerfile and recipe version,
// and its parent's for a cross image.
func (s Spec) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\nsuite %s\n", recipeVersion, s.Suite)
	if s.Parent != nil {
		fmt.Fprintf(h, "parent %s\narch %s\n", s.Parent.Hash(), s.Arch)
	}
	h.Write(s.Dockerfile)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Tag is the image reference the spec builds, e.g. testvm-builder:trixie-0123abcd4567.
func (s Spec) Tag() string { return Repository + ":" + s.Name() + "-" + s.Hash() }

// Provides reports whether the image has compiler.
func (s Spec) Provides(compiler string) bool { return slices.Contains(s.Compilers, compiler) }

// suiteOrder is oldest first; sid is built only on demand.
var suiteOrder = []string{"bullseye", "bookworm", "trixie", "sid"}

// Specs returns every builder image of the repository, oldest suite first,
// each suite's cross images after it.
func Specs() ([]Spec, error) {
	var out []Spec
	for _, suite := range suiteOrder {
		name := "dockerfiles/" + suite + ".Dockerfile"
		b, err := dockerfiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("builder image %s: %w", suite, err)
		}
		comps, err := parseCompilers(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		native := Spec{Suite: suite, Compilers: comps, OnDemand: suite == "sid", Dockerfile: b, Arch: layout.Amd64}
		out = append(out, native)
		for _, arch := range layout.Arches[1:] {
			name := "dockerfiles/" + suite + "-" + arch + ".Dockerfile"
			b, err := dockerfiles.ReadFile(name)
			if err != nil {
				continue // no cross image of this suite
			}
			comps, err := parseCompilers(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			for _, c := range comps {
				if !native.Provides(c) {
					return nil, fmt.Errorf("%s: %s is not a compiler of %s, which it is built on", name, c, suite)
				}
			}
			parent := native
			out = append(out, Spec{Suite: suite, Compilers: comps, OnDemand: native.OnDemand, Dockerfile: b, Arch: arch, Parent: &parent})
		}
	}
	return out, nil
}

// parseCompilers reads the "# testvm.compilers: a,b" header line of a
// Dockerfile: the one place that says what the image provides.
func parseCompilers(dockerfile []byte) ([]string, error) {
	for _, line := range strings.Split(string(dockerfile), "\n") {
		if v, ok := strings.CutPrefix(line, "# "+LabelCompilers+":"); ok {
			var out []string
			for _, c := range strings.Split(v, ",") {
				if c = strings.TrimSpace(c); c != "" {
					out = append(out, c)
				}
			}
			if len(out) == 0 {
				break
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no %q header line", "# "+LabelCompilers+": ...")
}

// Needed returns the specs to build for the wanted compilers and
// architectures: every regular suite that provides one of them (a
// compiler in several suites lets the compile stage pick the one whose
// glibc runs a kernel's host tools), and an on-demand suite only for
// compilers no regular suite provides; for each foreign architecture, the
// same among the cross images. A cross image brings its parent.
func Needed(specs []Spec, compilers, arches []string) []Spec {
	var out []Spec
	add := func(s Spec) {
		if !slices.ContainsFunc(out, func(o Spec) bool { return o.Name() == s.Name() }) {
			out = append(out, s)
		}
	}
	for _, s := range specs {
		if !slices.Contains(arches, layout.ArchOf(s.Arch)) && !(layout.ArchOf(s.Arch) == layout.Amd64 && len(arches) == 0) {
			continue
		}
		for _, c := range compilers {
			if !s.Provides(c) {
				continue
			}
			if s.OnDemand && slices.ContainsFunc(specs, func(o Spec) bool {
				return !o.OnDemand && layout.ArchOf(o.Arch) == layout.ArchOf(s.Arch) && o.Provides(c)
			}) {
				continue
			}
			if s.Parent != nil {
				add(*s.Parent)
			}
			add(s)
			break
		}
	}
	return out
}

// Image is a built builder image.
type Image struct {
	Spec
	ID    string // image ID (sha256:...)
	Glibc string // glibc version, e.g. 2.36
}

// Select returns the image that builds a cell with compiler for a kernel
// of arch whose host tools need glibc needGlibc ("" when unknown or none):
// among the images providing the compiler for arch and a glibc at least
// needGlibc, the one with the oldest glibc (closest to the kernel's own
// toolchain). When there is none, reason says why, as the cell's skip
// reason.
func Select(images []Image, compiler, needGlibc, arch string) (img Image, reason string) {
	var best *Image
	newest := ""
	for i := range images {
		im := &images[i]
		if !im.Provides(compiler) || layout.ArchOf(im.Arch) != layout.ArchOf(arch) {
			continue
		}
		if newest == "" || elfdeps.CompareVersions(im.Glibc, newest) > 0 {
			newest = im.Glibc
		}
		if needGlibc != "" && elfdeps.CompareVersions(im.Glibc, needGlibc) < 0 {
			continue
		}
		if best == nil || elfdeps.CompareVersions(im.Glibc, best.Glibc) < 0 {
			best = im
		}
	}
	switch {
	case best != nil:
		return *best, ""
	case newest == "" && layout.ArchOf(arch) != layout.Amd64:
		return Image{}, "no builder provides " + compiler + " for " + arch
	case newest == "":
		return Image{}, "no builder provides " + compiler
	default:
		return Image{}, fmt.Sprintf("builder glibc %s < needed %s", newest, needGlibc)
	}
}
