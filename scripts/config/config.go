// Package config is the one place where the suite's settings are read and
// validated. Every setting comes from a VM_* environment variable (mage's
// idiom; the CMake targets set them from cache variables), has a documented
// default, and a bad value is an error that names the variable and what it
// accepts. Stages receive a *Config; no other package reads the environment.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/libstree"
)

// Providers accepted by VM_PROVIDER.
var Providers = []string{"auto", "qemu", "virtualbox", "libvirt"}

// DefaultCompilers is the compiler axis when VM_COMPILERS is unset: the
// compilers Debian's kernels of the default grid were built with, plus the
// oldest and newest clang of the builder images.
const DefaultCompilers = "gcc-10,gcc-12,gcc-14,clang-14,clang-19"

// DefaultLoadSeconds is VM_LOAD_SECONDS when unset: how long a driver may
// take to open. Measured under TCG with two VMs on two cores shared with
// other VMs and builds (README, Performance): libs main's modern probe
// opened in 121-215 s on Debian's 5.10 and 6.1 kernels, and the verifier
// took 227-462 s to reject it on 7.3 (147 s on 6.12); the kmod opens in
// 1-4 s. With the retry at twice the limit, 240 s lets even the slowest of
// these finish; a quiet host or KVM needs a fraction of it.
const DefaultLoadSeconds = 240

// Config is the whole configuration of one run.
type Config struct {
	Root        string   // directory of the magefile (this project)
	BuildDir    string   // VM_BUILD_DIR: every output and cache
	KernelsFile string   // VM_KERNELS: the kernel grid
	KernelsSet  bool     // VM_KERNELS was given (not the default grid)
	LibsDir     string   // VM_LIBS_DIR, or the stand-in tree when StandIn
	StandIn     bool     // LibsDir is the bundled stand-in driver tree
	Compilers   []string // VM_COMPILERS without "kernel": gcc-N and clang-N, e.g. gcc-12, clang-14
	// KernelCompiler is set when VM_COMPILERS names "kernel": each kernel's
	// kmod is also built with the kernel's own compiler (its major version,
	// or the nearest newer one a builder image has).
	KernelCompiler bool
	Drivers        []string      // VM_DRIVERS, a subset of layout.Drivers
	Provider       string        // VM_PROVIDER, one of Providers
	Jobs           int           // VM_JOBS: parallel containers / VMs
	Accel          string        // VM_ACCEL: auto, kvm or tcg
	MinEvents      int           // VM_MIN_EVENTS: events a test cell needs to pass
	TestTime       time.Duration // VM_TEST_SECONDS: capture time limit per cell, once the driver is open
	LoadTime       time.Duration // VM_LOAD_SECONDS: time limit for opening the driver (verifier included)
	Behaviour      string        // VM_BEHAVIOUR: off, smoke or full: drivers_test after a cell's scap-open check passed
	BehaviourTime  time.Duration // VM_BEHAVIOUR_SECONDS: time limit of one cell's drivers_test run
	Retries        int           // VM_RETRIES: extra attempts for infra errors
	Seed           int64         // VM_SEED: kernel order; 0 means pick one
	RetestAll      bool          // VM_RETEST=all: test cells that passed before too
	QemuPrint      bool          // VM_QEMU_PRINT=1: print qemu command lines
	FailOnRegr     bool          // VM_FAIL_ON_REGRESSION=1
	Mirror         string        // VM_DEBIAN_MIRROR: overrides the host's apt sources
	DownloadRate   int64         // VM_DOWNLOAD_RATE: bytes per second for all package downloads together; 0 is no limit
	AllowExpired   bool          // VM_APT_ALLOW_EXPIRED=1: accept an InRelease past its Valid-Until
	E2E            bool          // VM_E2E=1: check also runs the slow end-to-end tests
	FuzzTime       time.Duration // VM_FUZZ_SECONDS: check's time per fuzz target
	Shard          Shard         // VM_SHARD=K/N: the part of the grid's kernels this run takes; the zero Shard takes all
	Results        []string      // VM_RESULTS: results files (paths or globs, absolute) the result stage renders together; none: build/results.json

	sourceNote string // how LibsDir was chosen, for SourceNote
}

// Default time limits of one cell's drivers_test run (VM_BEHAVIOUR_SECONDS),
// measured under TCG: see README, Performance.
const (
	DefaultSmokeSeconds = 300
	DefaultFullSeconds  = 2400
)

// BehaviourOn reports whether drivers_test runs after the scap-open checks.
func (c *Config) BehaviourOn() bool { return c.Behaviour != guest.BehaviourOff }

// StandInDir is the bundled stand-in driver tree, relative to Root.
const StandInDir = "testdata/minilibs"

// Load reads the configuration from the process environment, relative to
// root (the directory holding the magefile).
func Load(root string) (*Config, error) {
	return Parse(os.Getenv, root)
}

// Parse reads the configuration through getenv, relative to root.
func Parse(getenv func(string) string, root string) (*Config, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	p := parser{getenv: getenv, root: root}
	c := &Config{Root: root}
	c.BuildDir = p.path("VM_BUILD_DIR", "build")
	c.KernelsFile = p.path("VM_KERNELS", "kernels.txt")
	c.KernelsSet = strings.TrimSpace(getenv("VM_KERNELS")) != ""
	c.LibsDir = p.path("VM_LIBS_DIR", filepath.Join("..", ".."))
	libsSet := strings.TrimSpace(getenv("VM_LIBS_DIR")) != ""
	c.Compilers, c.KernelCompiler = p.compilers("VM_COMPILERS", DefaultCompilers)
	c.Drivers = p.list("VM_DRIVERS", strings.Join(layout.Drivers, ","), layout.Drivers)
	c.Provider = p.oneOf("VM_PROVIDER", "auto", Providers)
	c.Jobs = p.positive("VM_JOBS", runtime.NumCPU())
	c.Accel = p.oneOf("VM_ACCEL", "auto", []string{"auto", "kvm", "tcg"})
	c.MinEvents = p.positive("VM_MIN_EVENTS", 30)
	c.TestTime = time.Duration(p.positive("VM_TEST_SECONDS", 20)) * time.Second
	c.LoadTime = time.Duration(p.positive("VM_LOAD_SECONDS", DefaultLoadSeconds)) * time.Second
	c.Behaviour = p.oneOf("VM_BEHAVIOUR", guest.BehaviourSmoke, guest.BehaviourModes)
	defBehaviour := DefaultSmokeSeconds
	if c.Behaviour == guest.BehaviourFull {
		defBehaviour = DefaultFullSeconds
	}
	c.BehaviourTime = time.Duration(p.positive("VM_BEHAVIOUR_SECONDS", defBehaviour)) * time.Second
	c.Retries = p.nonNegative("VM_RETRIES", 2)
	c.Seed = int64(p.nonNegative("VM_SEED", 0))
	c.RetestAll = p.oneOf("VM_RETEST", "failed", []string{"failed", "all"}) == "all"
	c.QemuPrint = p.flag("VM_QEMU_PRINT")
	c.FailOnRegr = p.flag("VM_FAIL_ON_REGRESSION")
	c.AllowExpired = p.flag("VM_APT_ALLOW_EXPIRED")
	c.E2E = p.flag("VM_E2E")
	c.FuzzTime = time.Duration(p.nonNegative("VM_FUZZ_SECONDS", 10)) * time.Second
	c.Shard = p.shard("VM_SHARD")
	c.Results = p.patterns("VM_RESULTS")
	c.DownloadRate = p.rate("VM_DOWNLOAD_RATE")
	c.Mirror = strings.TrimRight(getenv("VM_DEBIAN_MIRROR"), "/")
	if c.Mirror != "" && !strings.HasPrefix(c.Mirror, "http://") && !strings.HasPrefix(c.Mirror, "https://") {
		p.fail("VM_DEBIAN_MIRROR", c.Mirror, "an http:// or https:// URL of a Debian archive")
	}
	// A libs tree named explicitly must be one: falling back to the
	// stand-in would test the wrong code and report it green. Only the
	// default (this suite at libs' test/vm) may find none.
	c.StandIn = c.LibsDir == filepath.Join(root, StandInDir)
	c.sourceNote = "libs tree: " + c.LibsDir
	if c.StandIn {
		c.sourceNote = "VM_LIBS_DIR names the bundled stand-in driver tree " + c.LibsDir
	}
	if err := libstree.Detect(c.LibsDir); err != nil {
		if libsSet {
			p.fail("VM_LIBS_DIR", c.LibsDir, "a falcosecurity/libs source tree; found "+err.Error())
		} else {
			c.sourceNote = fmt.Sprintf("no libs tree at %s (this suite is not at libs' test/vm, and VM_LIBS_DIR is unset): using the bundled stand-in driver tree %s",
				c.LibsDir, filepath.Join(root, StandInDir))
			c.LibsDir = filepath.Join(root, StandInDir)
			c.StandIn = true
		}
	}
	if len(p.errs) > 0 {
		return nil, fmt.Errorf("configuration: %s", strings.Join(p.errs, "; "))
	}
	return c, nil
}

// SourceNote is the one line that tells which driver tree a run builds.
func (c *Config) SourceNote() string {
	if c.sourceNote == "" { // a Config not made by Parse
		return "libs tree: " + c.LibsDir
	}
	return c.sourceNote
}

// LibsTree reads the driver tree of this run (libs, or the stand-in).
func (c *Config) LibsTree() (*libstree.Tree, error) {
	return libstree.Open(c.LibsDir, c.StandIn, c.NotLibs()...)
}

// NotLibs lists the directories inside the libs tree, slash-separated and
// relative to it, that are not libs: this suite (at test/vm) and the build
// directory. They are neither packed for the builders (an edit to the
// suite must not rebuild every driver) nor read as libs' CMake files.
func (c *Config) NotLibs() []string {
	var out []string
	for _, d := range []string{c.Root, c.BuildDir} {
		if rel, err := filepath.Rel(c.LibsDir, d); err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") {
			out = append(out, filepath.ToSlash(rel))
		}
	}
	return out
}

// Path returns a path under the build directory.
func (c *Config) Path(elem ...string) string {
	return filepath.Join(append([]string{c.BuildDir}, elem...)...)
}

// KernelCompilerName is the VM_COMPILERS entry that stands for each
// kernel's own compiler.
const KernelCompilerName = "kernel"

// CompilerAxis is the compiler axis as VM_COMPILERS gave it: the compilers,
// then "kernel" when it was named.
func (c *Config) CompilerAxis() []string {
	out := slices.Clone(c.Compilers)
	if c.KernelCompiler {
		out = append(out, KernelCompilerName)
	}
	return out
}

// Shard is the part of the grid one run takes (VM_SHARD=K/N): shard Index
// of Count, both counted from 1. The grid's kernels are dealt to the
// shards by grid.Split. The zero Shard is the whole grid.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Whole reports whether s is the whole grid (no VM_SHARD).
func (s Shard) Whole() bool { return s.Count == 0 }

// String is K/N, as VM_SHARD spells it ("" for the whole grid).
func (s Shard) String() string {
	if s.Whole() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Has reports whether driver is among the selected drivers.
func (c *Config) Has(driver string) bool { return slices.Contains(c.Drivers, driver) }

var compilerRe = regexp.MustCompile(`^(gcc|clang)-[0-9]+$`)

type parser struct {
	getenv func(string) string
	root   string
	errs   []string
}

func (p *parser) fail(name, val, want string) {
	p.errs = append(p.errs, fmt.Sprintf("%s=%q: want %s", name, val, want))
}

func (p *parser) get(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) path(name, def string) string {
	v := p.get(name, def)
	if !filepath.IsAbs(v) {
		v = filepath.Join(p.root, v)
	}
	return filepath.Clean(v)
}

func (p *parser) oneOf(name, def string, allowed []string) string {
	v := p.get(name, def)
	if !slices.Contains(allowed, v) {
		p.fail(name, v, "one of "+strings.Join(allowed, ", "))
	}
	return v
}

func (p *parser) list(name, def string, allowed []string) []string {
	var out []string
	for _, v := range splitList(p.get(name, def)) {
		if !slices.Contains(allowed, v) {
			p.fail(name, v, "a comma-separated list of "+strings.Join(allowed, ", "))
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 && len(p.errs) == 0 {
		p.fail(name, p.getenv(name), "at least one of "+strings.Join(allowed, ", "))
	}
	return out
}

// compilers reads the compiler axis: gcc-N and clang-N, and "kernel" for
// each kernel's own compiler, which it reports apart.
func (p *parser) compilers(name, def string) (out []string, kernel bool) {
	for _, v := range splitList(p.get(name, def)) {
		switch {
		case v == KernelCompilerName:
			kernel = true
		case !compilerRe.MatchString(v):
			p.fail(name, v, "compilers like gcc-12 or clang-14 (gcc-N or clang-N), or kernel (each kernel's own compiler), comma-separated")
		case !slices.Contains(out, v):
			out = append(out, v)
		}
	}
	if len(out) == 0 && !kernel && len(p.errs) == 0 {
		p.fail(name, p.getenv(name), "at least one compiler")
	}
	return out, kernel
}

func (p *parser) int(name string, def, min int, want string) int {
	v := p.get(name, strconv.Itoa(def))
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		p.fail(name, v, want)
		return def
	}
	return n
}

func (p *parser) positive(name string, def int) int {
	return p.int(name, def, 1, "a positive whole number")
}

func (p *parser) nonNegative(name string, def int) int {
	return p.int(name, def, 0, "a whole number >= 0")
}

func (p *parser) flag(name string) bool {
	switch v := p.get(name, "0"); strings.ToLower(v) {
	case "0", "false", "no", "off":
		return false
	case "1", "true", "yes", "on":
		return true
	default:
		p.fail(name, v, "1 or 0")
		return false
	}
}

// shard reads K/N: shard K (1-based) of N.
func (p *parser) shard(name string) Shard {
	v := p.get(name, "")
	if v == "" {
		return Shard{}
	}
	const want = "K/N with 1 <= K <= N: this run takes shard K of N of the grid's kernels (e.g. 1/4)"
	ks, ns, ok := strings.Cut(v, "/")
	k, errK := strconv.Atoi(strings.TrimSpace(ks))
	n, errN := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || errK != nil || errN != nil || n < 1 || k < 1 || k > n {
		p.fail(name, v, want)
		return Shard{}
	}
	return Shard{Index: k, Count: n}
}

// rate reads a byte rate: a whole number of bytes per second, with an
// optional binary suffix K, M or G (as curl's --limit-rate), e.g. 512K or
// 4M. Unset or 0 is no limit.
func (p *parser) rate(name string) int64 {
	v := p.get(name, "0")
	num, mult := v, int64(1)
	switch strings.ToUpper(v[len(v)-1:]) {
	case "K":
		num, mult = v[:len(v)-1], 1<<10
	case "M":
		num, mult = v[:len(v)-1], 1<<20
	case "G":
		num, mult = v[:len(v)-1], 1<<30
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		p.fail(name, v, "bytes per second, a whole number >= 0 with an optional K, M or G (e.g. 4M)")
		return 0
	}
	return n * mult
}

// patterns reads a comma-separated list of paths or glob patterns,
// relative to the root; a pattern filepath.Match cannot read is an error.
func (p *parser) patterns(name string) []string {
	var out []string
	for _, v := range splitList(p.get(name, "")) {
		if _, err := filepath.Match(v, ""); err != nil {
			p.fail(name, v, "a comma-separated list of results files or glob patterns (e.g. shards/*/results.json)")
			continue
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(p.root, v)
		}
		out = append(out, filepath.Clean(v))
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
