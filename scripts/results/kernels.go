package results

import (
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// Kernel is what the kernel stage read about one kernel of the grid, as
// the compile stage recorded it: the later stages and the matrices read a
// kernel's facts here, not in build/kernels.json.
type Kernel struct {
	Kernel string       `json:"kernel"`         // uname -r, as its cells name it
	Name   string       `json:"name,omitempty"` // its name in the grid file
	Arch   string       `json:"arch,omitempty"` // amd64 or arm64 ("": amd64)
	Facts  *KernelFacts `json:"facts,omitempty"`
}

// SetKernel records k, replacing the record of the same kernel.
func (f *File) SetKernel(k Kernel) {
	for i := range f.Kernels {
		if f.Kernels[i].Kernel == k.Kernel {
			f.Kernels[i] = k
			return
		}
	}
	f.Kernels = append(f.Kernels, k)
}

// ArchOf returns the recorded architecture of kernel (uname -r), amd64
// when none is recorded.
func (f *File) ArchOf(kernel string) string {
	for i := range f.Kernels {
		if f.Kernels[i].Kernel == kernel {
			return layout.ArchOf(f.Kernels[i].Arch)
		}
	}
	return layout.Amd64
}

// StampArches sets every cell's Arch from its kernel's record.
func (f *File) StampArches() {
	for i := range f.Cells {
		f.Cells[i].Arch = f.ArchOf(f.Cells[i].Kernel)
	}
}

// FactsOf returns the recorded facts of kernel (uname -r), or nil.
func (f *File) FactsOf(kernel string) *KernelFacts {
	for i := range f.Kernels {
		if f.Kernels[i].Kernel == kernel {
			return f.Kernels[i].Facts
		}
	}
	return nil
}

// KernelFacts are what a kernel's headers say about it that matters to drivers:
// the compiler that built it (a module must be built by a compatible one)
// and the configuration that changes how each driver loads and runs.
type KernelFacts struct {
	// Compiler is the kernel's own compiler as a grid compiler name,
	// "gcc-14" or "clang-19"; "" when the headers do not say.
	Compiler string `json:"compiler,omitempty"`
	// CompilerVersion is its full version, e.g. 14.2.0.
	CompilerVersion string `json:"compiler_version,omitempty"`
	// CompilerText is the headers' own words: CONFIG_CC_VERSION_TEXT, or
	// compile.h's LINUX_COMPILER on headers older than that option.
	CompilerText string `json:"compiler_text,omitempty"`
	// From says which file the compiler was read from (.config,
	// include/generated/autoconf.h or include/generated/compile.h).
	From string `json:"from,omitempty"`

	BTF                bool `json:"btf"`                 // CONFIG_DEBUG_INFO_BTF: /sys/kernel/btf/vmlinux, needed by modern_bpf
	PreemptRT          bool `json:"preempt_rt"`          // CONFIG_PREEMPT_RT: fully preemptible (the -rt flavours)
	BPFJIT             bool `json:"bpf_jit"`             // CONFIG_BPF_JIT
	BPFJITAlwaysOn     bool `json:"bpf_jit_always_on"`   // CONFIG_BPF_JIT_ALWAYS_ON: no interpreter fallback
	ModuleSigForce     bool `json:"module_sig_force"`    // CONFIG_MODULE_SIG_FORCE: unsigned modules refused
	Lockdown           bool `json:"lockdown"`            // CONFIG_SECURITY_LOCKDOWN_LSM: lockdown can be turned on
	LockdownForced     bool `json:"lockdown_forced"`     // CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY or _CONFIDENTIALITY
	SyscallTracepoints bool `json:"syscall_tracepoints"` // CONFIG_FTRACE_SYSCALLS: raw_syscalls tracepoints the drivers attach to
}

// Tags are the short marks of the facts that set this kernel apart, as
// shown on its matrix row: BTF, RT, sig-force, lockdown, no-JIT,
// no-syscall-tp.
func (f KernelFacts) Tags() []string {
	var out []string
	if f.BTF {
		out = append(out, "BTF")
	}
	if f.PreemptRT {
		out = append(out, "RT")
	}
	if f.ModuleSigForce {
		out = append(out, "sig-force")
	}
	if f.LockdownForced {
		out = append(out, "lockdown")
	}
	if !f.BPFJIT {
		out = append(out, "no-JIT")
	}
	if !f.SyscallTracepoints {
		out = append(out, "no-syscall-tp")
	}
	return out
}

// Summary is the facts in a few words: "built with gcc-14 (14.2.0); BTF, RT".
func (f *KernelFacts) Summary() string {
	if f == nil {
		return "no facts"
	}
	s := "built with an unknown compiler"
	if f.Compiler != "" {
		s = "built with " + f.Compiler + " (" + f.CompilerVersion + ")"
	}
	if tags := f.Tags(); len(tags) > 0 {
		s += "; " + strings.Join(tags, ", ")
	}
	return s
}

// Label is the facts as a matrix row shows them beside the kernel: its own
// compiler, then the tags, "gcc-14 · BTF · RT". A kernel whose compiler is
// unknown starts with "cc ?".
func (f *KernelFacts) Label() string {
	if f == nil {
		return ""
	}
	c := f.Compiler
	if c == "" {
		c = "cc ?"
	}
	return strings.Join(append([]string{c}, f.Tags()...), " · ")
}
