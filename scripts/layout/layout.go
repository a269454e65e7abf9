// Package layout names, once, what lives under the build directory and
// the words of the grid: the drivers, and the artifact, logs and records
// of each cell. Other packages ask it for a name or a path rather than
// spelling one themselves, so README's Outputs table is written down in
// one place. Paths are relative to the build directory, slash-separated
// (config.Config.Path makes them absolute).
package layout

import (
	"path"
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
// (one per clang, for every kernel).
func Artifact(compiler, kernel, driver string) string {
	if driver == ModernBPF {
		return path.Join("driver", compiler, ModernBPF, ScapOpenBin)
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
func CompileLog(compiler, kernel, driver string) string {
	if driver == ModernBPF {
		return path.Join("logs", "compile", compiler, ModernBPF+".log")
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
// driver/<clang-N>/drivers_test/drivers_test (with .root/ and .key beside).
func DriversTestBin(clang string) string {
	return path.Join("driver", clang, DriversTest, DriversTest)
}

// DriversTestLog is its build log: logs/compile/<clang-N>/drivers_test.log.
func DriversTestLog(clang string) string {
	return path.Join("logs", "compile", clang, DriversTest+".log")
}

// ContainerLog is the build log of one builder image.
func ContainerLog(suite string) string { return path.Join("logs", "container", suite+".log") }
