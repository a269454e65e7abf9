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
)

// Drivers the suite knows, in the order they are shown.
var Drivers = []string{"kmod", "bpf", "modern_bpf"}

// Providers accepted by VM_PROVIDER.
var Providers = []string{"auto", "qemu", "virtualbox", "libvirt"}

// DefaultCompilers is the compiler axis when VM_COMPILERS is unset: the
// compilers Debian's kernels of the default grid were built with, plus the
// oldest and newest clang of the builder images.
const DefaultCompilers = "gcc-10,gcc-12,gcc-14,clang-14,clang-19"

// Config is the whole configuration of one run.
type Config struct {
	Root        string        // directory of the magefile (this project)
	BuildDir    string        // VM_BUILD_DIR: every output and cache
	KernelsFile string        // VM_KERNELS: the kernel grid
	KernelsSet  bool          // VM_KERNELS was given (not the default grid)
	LibsDir     string        // VM_LIBS_DIR, or the stand-in tree when StandIn
	StandIn     bool          // LibsDir is the bundled stand-in driver tree
	Compilers   []string      // VM_COMPILERS, e.g. gcc-12, clang-14
	Drivers     []string      // VM_DRIVERS, a subset of Drivers
	Provider    string        // VM_PROVIDER, one of Providers
	Jobs        int           // VM_JOBS: parallel containers / VMs
	Accel       string        // VM_ACCEL: auto, kvm or tcg
	MinEvents   int           // VM_MIN_EVENTS: events a test cell needs to pass
	TestTime    time.Duration // VM_TEST_SECONDS: capture time limit per cell
	Retries     int           // VM_RETRIES: extra attempts for infra errors
	Seed        int64         // VM_SEED: kernel order; 0 means pick one
	RetestAll   bool          // VM_RETEST=all: test cells that passed before too
	QemuPrint   bool          // VM_QEMU_PRINT=1: print qemu command lines
	FailOnRegr  bool          // VM_FAIL_ON_REGRESSION=1
	Mirror      string        // VM_DEBIAN_MIRROR: overrides the host's apt sources
}

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
	c.Compilers = p.compilers("VM_COMPILERS", DefaultCompilers)
	c.Drivers = p.list("VM_DRIVERS", strings.Join(Drivers, ","), Drivers)
	c.Provider = p.oneOf("VM_PROVIDER", "auto", Providers)
	c.Jobs = p.positive("VM_JOBS", runtime.NumCPU())
	c.Accel = p.oneOf("VM_ACCEL", "auto", []string{"auto", "kvm", "tcg"})
	c.MinEvents = p.positive("VM_MIN_EVENTS", 30)
	c.TestTime = time.Duration(p.positive("VM_TEST_SECONDS", 20)) * time.Second
	c.Retries = p.nonNegative("VM_RETRIES", 2)
	c.Seed = int64(p.nonNegative("VM_SEED", 0))
	c.RetestAll = p.oneOf("VM_RETEST", "failed", []string{"failed", "all"}) == "all"
	c.QemuPrint = p.flag("VM_QEMU_PRINT")
	c.FailOnRegr = p.flag("VM_FAIL_ON_REGRESSION")
	c.Mirror = strings.TrimRight(getenv("VM_DEBIAN_MIRROR"), "/")
	if c.Mirror != "" && !strings.HasPrefix(c.Mirror, "http://") && !strings.HasPrefix(c.Mirror, "https://") {
		p.fail("VM_DEBIAN_MIRROR", c.Mirror, "an http:// or https:// URL of a Debian archive")
	}
	if len(p.errs) > 0 {
		return nil, fmt.Errorf("configuration: %s", strings.Join(p.errs, "; "))
	}
	if !IsLibsTree(c.LibsDir) {
		c.LibsDir = filepath.Join(root, StandInDir)
		c.StandIn = true
	}
	return c, nil
}

// IsLibsTree reports whether dir looks like a libs source tree: a driver/
// directory with its CMake file, and a top-level CMake file that has the
// BUILD_DRIVER option.
func IsLibsTree(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "driver", "CMakeLists.txt")); err != nil {
		return false
	}
	top, err := os.ReadFile(filepath.Join(dir, "CMakeLists.txt"))
	return err == nil && strings.Contains(string(top), "BUILD_DRIVER")
}

// SourceNote is the one line that tells which driver tree a run builds.
func (c *Config) SourceNote() string {
	if c.StandIn {
		return fmt.Sprintf("no libs tree at VM_LIBS_DIR, using the bundled stand-in driver tree %s", c.LibsDir)
	}
	return fmt.Sprintf("libs tree: %s", c.LibsDir)
}

// Path returns a path under the build directory.
func (c *Config) Path(elem ...string) string {
	return filepath.Join(append([]string{c.BuildDir}, elem...)...)
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

func (p *parser) compilers(name, def string) []string {
	var out []string
	for _, v := range splitList(p.get(name, def)) {
		if !compilerRe.MatchString(v) {
			p.fail(name, v, "compilers like gcc-12 or clang-14 (gcc-N or clang-N), comma-separated")
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
