// Package layout names, once, what lives under the build directory and
// the words of the grid: the drivers, and the artifact, logs and records
// of each cell. Other packages ask it for a name or a path rather than
// spelling one themselves, so README's Outputs table is written down in
// one place. Paths are relative to the build directory, slash-separated
// (config.Config.Path makes them absolute).
package layout

import (
	"path"
	"runtime"
	"strings"
)

// The drivers of the grid, and the shared scap-open build that runs the
// kmod and bpf cells (a pseudo-driver of the compile stage).
const (
	Kmod      = "kmod"       // the kernel module, built with gcc
	BPF       = "bpf"        // the legacy eBPF probe, built with clang
	ModernBPF = "modern_bpf" // the CO-RE probe, built with clang into its own scap-open
	ScapOpen  = "scap-open"
	// DriversTest is libs' behaviour suite (test/drivers), built once per
	// clang that builds the modern probe: a pseudo-driver of the compile
	// stage, like ScapOpen.
	DriversTest = "drivers_test"
)

// Drivers are the drivers a grid may test, in the order they are shown.
var Drivers = []string{Kmod, BPF, ModernBPF}

// The architectures a grid line may name (Debian's names). The build host
// is amd64: an arm64 kernel's drivers are cross-built and it boots under
// qemu-system-aarch64.
const (
	Amd64 = "amd64"
	Arm64 = "arm64"
)

// Arches are the architectures a grid may hold, the host's first.
var Arches = []string{Amd64, Arm64}

// HostArch is the architecture of this host, as Go names it (GOARCH
// amd64 and arm64 are Debian's names too).
func HostArch() string { return runtime.GOARCH }

// ArchOf is arch with the default filled in: "" (a record written before
// grids had an arch) is amd64.
func ArchOf(arch string) string {
	if arch == "" {
		return Amd64
	}
	return arch
}

// archName is name for amd64 and name-<arch> for another architecture:
// what a build shared by every kernel of one architecture is called
// (scap-open, scap-open-arm64).
func archName(name, arch string) string {
	if ArchOf(arch) == Amd64 {
		return name
	}
	return name + "-" + arch
}

// Files and directories directly under the build directory.
const (
	Results       = "results.json"    // the single source of truth
	Manifest      = "kernels.json"    // what the kernel stage found
	Accel         = "accel.json"      // the qemu provider's KVM/TCG decision
	History       = "history"         // earlier results, for the result stage's diff
	SourceArchive = "libs-src.tar.gz" // the libs source every compile cell copies
	ScapOpenBin   = "scap-open"       // the shared scap-open (with scap-open.root/)
	ScapOpenLog   = "logs/compile/scap-open.log"
)

// ScapOpenFor is the shared scap-open of an architecture's kmod and bpf
// cells: scap-open, or scap-open-<arch> (with its .root/ beside it).
func ScapOpenFor(arch string) string { return archName(ScapOpenBin, arch) }

// ScapOpenLogFor is its build log: logs/compile/scap-open[-<arch>].log.
func ScapOpenLogFor(arch string) string {
	return path.Join("logs", "compile", archName(ScapOpenBin, arch)+".log")
}

// Ext is the extension of a driver built for one kernel: .ko for the
// kernel module, .o for the eBPF probe.
func Ext(driver string) string {
	if driver == Kmod {
		return ".ko"
	}
	return ".o"
}

// Artifact is where the compile stage puts a cell's driver:
// driver/<compiler>/<kernel>.ko|.o, or for modern_bpf the scap-open with
// the probe built by that clang, driver/<compiler>/modern_bpf/scap-open
// (one per clang and architecture, for every kernel of it:
// modern_bpf-arm64/ for arm64).
func Artifact(compiler, kernel, driver, arch string) string {
	if driver == ModernBPF {
		return path.Join("driver", compiler, archName(ModernBPF, arch), ScapOpenBin)
	}
	return path.Join("driver", compiler, kernel+Ext(driver))
}

// DriverOK is where a driver whose latest VM test passed is kept:
// driver_ok/<compiler>/<kernel>.ko|.o. The modern probe, built into a
// scap-open shared by every kernel, has none ("").
func DriverOK(compiler, kernel, driver string) string {
	if driver == ModernBPF {
		return ""
	}
	return path.Join("driver_ok", compiler, kernel+Ext(driver))
}

// CompileLog is a cell's build log: logs/compile/<compiler>/<kernel>.<driver>.log,
// or logs/compile/<compiler>/modern_bpf.log for the modern probe's build
// (one per clang).
func CompileLog(compiler, kernel, driver, arch string) string {
	if driver == ModernBPF {
		return path.Join("logs", "compile", compiler, archName(ModernBPF, arch)+".log")
	}
	return path.Join("logs", "compile", compiler, kernel+"."+driver+".log")
}

// TestLogDir holds the test logs of one kernel: its cells' logs and the
// consoles of its VMs.
func TestLogDir(kernel string) string { return path.Join("logs", "test", kernel) }

// TestLog is a cell's test log: logs/test/<kernel>/<compiler>_<driver>.log.
func TestLog(compiler, kernel, driver string) string {
	return path.Join(TestLogDir(kernel), strings.ReplaceAll(compiler+"_"+driver, "/", "_")+".log")
}

// DriversTestBin is drivers_test built with the modern probe of clang:
// driver/<clang-N>/drivers_test/drivers_test (with .root/ and .key beside),
// drivers_test-arm64/ for arm64.
func DriversTestBin(clang, arch string) string {
	return path.Join("driver", clang, archName(DriversTest, arch), DriversTest)
}

// DriversTestLog is its build log: logs/compile/<clang-N>/drivers_test[-<arch>].log.
func DriversTestLog(clang, arch string) string {
	return path.Join("logs", "compile", clang, archName(DriversTest, arch)+".log")
}

// ContainerLog is the build log of one builder image.
func ContainerLog(suite string) string { return path.Join("logs", "container", suite+".log") }
