package kernel

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// headers writes a KERNELDIR with the given files.
func headers(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Debian's cloud kernels share these settings (as their .config files say).
const debianCommon = `CONFIG_BPF_JIT=y
# CONFIG_BPF_JIT_ALWAYS_ON is not set
CONFIG_BPF_JIT_DEFAULT_ON=y
# CONFIG_MODULE_SIG_FORCE is not set
CONFIG_SECURITY_LOCKDOWN_LSM=y
CONFIG_SECURITY_LOCKDOWN_LSM_EARLY=y
CONFIG_LOCK_DOWN_KERNEL_FORCE_NONE=y
# CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY is not set
# CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY is not set
CONFIG_DEBUG_INFO_BTF=y
CONFIG_FTRACE_SYSCALLS=y
`

func TestReadFacts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		compiler string
		version  string
		from     string
		tags     []string
	}{
		{"Debian 5.10 (bullseye)", map[string]string{".config": `CONFIG_CC_VERSION_TEXT="gcc-10 (Debian 10.2.1-6) 10.2.1 20210110"
CONFIG_GCC_VERSION=100201
CONFIG_CLANG_VERSION=0
` + debianCommon}, "gcc-10", "10.2.1", ".config", []string{"BTF"}},
		{"Debian 6.1 (bookworm)", map[string]string{".config": `CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"
CONFIG_GCC_VERSION=120200
CONFIG_CLANG_VERSION=0
` + debianCommon}, "gcc-12", "12.2.0", ".config", []string{"BTF"}},
		{"Debian 6.12 (trixie), cross-prefixed gcc", map[string]string{".config": `CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"
CONFIG_GCC_VERSION=140200
CONFIG_CLANG_VERSION=0
# CONFIG_PREEMPT_RT is not set
` + debianCommon}, "gcc-14", "14.2.0", ".config", []string{"BTF"}},
		{"Debian 7.x rt flavour", map[string]string{".config": `CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"
CONFIG_GCC_VERSION=140200
CONFIG_PREEMPT_RT=y
` + debianCommon}, "gcc-14", "14.2.0", ".config", []string{"BTF", "RT"}},
		{"clang-built kernel", map[string]string{".config": `CONFIG_CC_VERSION_TEXT="Debian clang version 19.1.7 (3+b1)"
CONFIG_GCC_VERSION=0
CONFIG_CLANG_VERSION=190107
CONFIG_BPF_JIT=y
CONFIG_BPF_JIT_ALWAYS_ON=y
CONFIG_MODULE_SIG_FORCE=y
CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY=y
CONFIG_FTRACE_SYSCALLS=y
`}, "clang-19", "19.1.7", ".config", []string{"sig-force", "lockdown"}},
		{"4.19: version numbers only", map[string]string{".config": `CONFIG_GCC_VERSION=80300
CONFIG_BPF_JIT=y
CONFIG_FTRACE_SYSCALLS=y
`}, "gcc-8", "8.3.0", ".config", nil},
		{"el7 3.10: compile.h", map[string]string{
			".config": "CONFIG_BPF_JIT=y\nCONFIG_FTRACE_SYSCALLS=y\nCONFIG_MODULE_SIG=y\n",
			"include/generated/compile.h": `/* This file is auto generated, version 1 */
/* SMP */
#define UTS_MACHINE "x86_64"
#define UTS_VERSION "#1 SMP Wed Oct 12 09:12:31 UTC 2022"
#define LINUX_COMPILE_BY "mockbuild"
#define LINUX_COMPILE_HOST "kbuilder.bsys.centos.org"
#define LINUX_COMPILER "gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC) "
`}, "gcc-4", "4.8.5", "include/generated/compile.h", nil},
		{"autoconf.h only", map[string]string{"include/generated/autoconf.h": `#define CONFIG_CC_VERSION_TEXT "gcc-12 (Debian 12.2.0-14) 12.2.0"
#define CONFIG_BPF_JIT 1
#define CONFIG_DEBUG_INFO_BTF 1
#define CONFIG_FTRACE_SYSCALLS 1
#define CONFIG_SCSI_MODULE 1
`}, "gcc-12", "12.2.0", "include/generated/autoconf.h", []string{"BTF"}},
		{"no syscall tracepoints, no JIT", map[string]string{".config": `CONFIG_CC_VERSION_TEXT="gcc (GCC) 11.3.1 20221121 (Red Hat 11.3.1-4)"
`}, "gcc-11", "11.3.1", ".config", []string{"no-JIT", "no-syscall-tp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFacts(headers(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if f.Compiler != tc.compiler || f.CompilerVersion != tc.version || f.From != tc.from {
				t.Errorf("compiler %q %q from %q, want %q %q from %q", f.Compiler, f.CompilerVersion, f.From, tc.compiler, tc.version, tc.from)
			}
			if !slices.Equal(f.Tags(), tc.tags) {
				t.Errorf("tags %v, want %v", f.Tags(), tc.tags)
			}
		})
	}
}

func TestReadFactsNeedsAConfiguration(t *testing.T) {
	if _, err := ReadFacts(headers(t, map[string]string{"Makefile": "x"})); err == nil {
		t.Fatal("headers without .config or autoconf.h gave no error")
	}
}

func TestAutoconfModules(t *testing.T) {
	c := parseAutoconf([]byte("#define CONFIG_BPF_JIT_MODULE 1\n#define CONFIG_X \"a \\\"b\\\"\"\n"))
	if !c.on("CONFIG_BPF_JIT") || c["CONFIG_X"] != `a "b"` {
		t.Errorf("parsed %v", c)
	}
}
