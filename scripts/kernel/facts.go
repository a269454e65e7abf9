package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Facts are what a kernel's headers say about it that matters to drivers.
// The type belongs to the results store (results.KernelFacts), which
// records them for every kernel of the grid; this package reads them.
type Facts = results.KernelFacts

// ReadFacts reads the facts of the kernel whose headers are at dir (the
// KERNELDIR on the host): the configuration from .config, or from
// include/generated/autoconf.h when there is none, and the compiler from
// CONFIG_CC_VERSION_TEXT (5.8 and newer), CONFIG_GCC_VERSION /
// CONFIG_CLANG_VERSION (4.18 and newer), or the LINUX_COMPILER string of
// include/generated/compile.h (older headers, such as el7's 3.10).
func ReadFacts(dir string) (Facts, error) {
	conf, from, err := readConfig(dir)
	if err != nil {
		return Facts{}, err
	}
	f := Facts{
		BTF:                conf.on("CONFIG_DEBUG_INFO_BTF"),
		PreemptRT:          conf.on("CONFIG_PREEMPT_RT") || conf.on("CONFIG_PREEMPT_RT_FULL"),
		BPFJIT:             conf.on("CONFIG_BPF_JIT"),
		BPFJITAlwaysOn:     conf.on("CONFIG_BPF_JIT_ALWAYS_ON"),
		ModuleSigForce:     conf.on("CONFIG_MODULE_SIG_FORCE"),
		Lockdown:           conf.on("CONFIG_SECURITY_LOCKDOWN_LSM"),
		LockdownForced:     conf.on("CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY") || conf.on("CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"),
		SyscallTracepoints: conf.on("CONFIG_FTRACE_SYSCALLS"),
	}
	switch {
	case conf["CONFIG_CC_VERSION_TEXT"] != "":
		f.CompilerText, f.From = conf["CONFIG_CC_VERSION_TEXT"], from
		f.Compiler, f.CompilerVersion = ParseCompilerText(f.CompilerText)
	case conf["CONFIG_GCC_VERSION"] != "" && conf["CONFIG_GCC_VERSION"] != "0":
		f.From = from
		f.Compiler, f.CompilerVersion = fromNumber("gcc", conf["CONFIG_GCC_VERSION"])
	case conf["CONFIG_CLANG_VERSION"] != "" && conf["CONFIG_CLANG_VERSION"] != "0":
		f.From = from
		f.Compiler, f.CompilerVersion = fromNumber("clang", conf["CONFIG_CLANG_VERSION"])
	}
	if f.Compiler == "" {
		text, err := linuxCompiler(filepath.Join(dir, "include", "generated", "compile.h"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		if text != "" {
			f.CompilerText, f.From = text, "include/generated/compile.h"
			f.Compiler, f.CompilerVersion = ParseCompilerText(text)
		}
	}
	return f, nil
}

// kconfig is a kernel configuration: CONFIG_X -> value, strings unquoted.
type kconfig map[string]string

func (c kconfig) on(name string) bool { v := c[name]; return v == "y" || v == "m" || v == "1" }

// readConfig reads .config, or autoconf.h when the headers have no .config.
func readConfig(dir string) (kconfig, string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, ".config")); err == nil {
		return parseDotConfig(b), ".config", nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", err
	}
	name := filepath.Join("include", "generated", "autoconf.h")
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, "", fmt.Errorf("kernel configuration: neither .config nor %s in %s", name, dir)
	}
	return parseAutoconf(b), name, nil
}

// parseDotConfig reads CONFIG_X=value lines; "# CONFIG_X is not set" is
// simply absent.
func parseDotConfig(b []byte) kconfig {
	c := kconfig{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || !strings.HasPrefix(k, "CONFIG_") {
			continue
		}
		c[k] = unquote(v)
	}
	return c
}

// parseAutoconf reads "#define CONFIG_X value" lines: booleans and
// tristates are 1 (the _MODULE suffix marks =m), strings quoted.
func parseAutoconf(b []byte) kconfig {
	c := kconfig{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(strings.TrimSpace(line), " ", 3)
		if len(f) < 3 || f[0] != "#define" || !strings.HasPrefix(f[1], "CONFIG_") {
			continue
		}
		k, v := f[1], unquote(strings.TrimSpace(f[2]))
		if base, ok := strings.CutSuffix(k, "_MODULE"); ok && v == "1" {
			k, v = base, "m"
		}
		c[k] = v
	}
	return c
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
		return v[1 : len(v)-1]
	}
	return v
}

var linuxCompilerRe = regexp.MustCompile(`(?m)^#define\s+LINUX_COMPILER\s+"(.*)"\s*$`)

// linuxCompiler reads the LINUX_COMPILER string of compile.h.
func linuxCompiler(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m := linuxCompilerRe.FindSubmatch(b)
	if m == nil {
		return "", nil
	}
	return strings.TrimSpace(string(m[1])), nil
}

var (
	clangTextRe = regexp.MustCompile(`\bclang version (\d+)\.(\d+)(?:\.(\d+))?`)
	// gcc's own words end with its version ("gcc-14 (Debian 14.2.0-19)
	// 14.2.0", "gcc (GCC) 11.3.1 20221121 (Red Hat 11.3.1-4)"), or say
	// "gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC)" in compile.h.
	gccVersionRe = regexp.MustCompile(`\bgcc version (\d+)\.(\d+)(?:\.(\d+))?`)
	gccTextRe    = regexp.MustCompile(`^(?:\S*-)?gcc(?:-\d+)?\s+\([^)]*\)\s+(\d+)\.(\d+)(?:\.(\d+))?`)
)

// ParseCompilerText turns the kernel's compiler string into a grid
// compiler name and its full version: "gcc-14 (Debian 14.2.0-19) 14.2.0"
// -> gcc-14, 14.2.0; "Debian clang version 19.1.7 (3+b1)" -> clang-19,
// 19.1.7; "gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC)" -> gcc-4,
// 4.8.5. Unknown text gives "", "".
func ParseCompilerText(text string) (name, version string) {
	for _, c := range []struct {
		kind string
		re   *regexp.Regexp
	}{{"clang", clangTextRe}, {"gcc", gccVersionRe}, {"gcc", gccTextRe}} {
		if m := c.re.FindStringSubmatch(text); m != nil {
			v := m[1] + "." + m[2]
			if m[3] != "" {
				v += "." + m[3]
			}
			return c.kind + "-" + m[1], v
		}
	}
	return "", ""
}

// fromNumber reads CONFIG_GCC_VERSION / CONFIG_CLANG_VERSION, which encode
// major*10000 + minor*100 + patch.
func fromNumber(kind, n string) (string, string) {
	v, err := strconv.Atoi(n)
	if err != nil || v <= 0 {
		return "", ""
	}
	major, minor, patch := v/10000, v/100%100, v%100
	return fmt.Sprintf("%s-%d", kind, major), fmt.Sprintf("%d.%d.%d", major, minor, patch)
}
