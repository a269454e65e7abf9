package compile

import (
	"fmt"
	"strings"
)

// RecipeVersion is part of every cache key: bump it when a recipe changes,
// so every cell is built again.
const RecipeVersion = "1"

// Paths inside a builder container.
const (
	srcDir   = "/libs"       // the source archive is extracted here (writable copy)
	buildDir = "/libs/build" // cmake's binary dir, as in the libs tree
	outDir   = "/out"        // where a recipe leaves its artifact
	scapOpen = "libscap/examples/01-open/scap-open"
)

// Artifact names inside outDir.
const (
	outKmod     = outDir + "/driver.ko"
	outProbe    = outDir + "/probe.o"
	outScapOpen = outDir + "/scap-open"
)

// Recipe returns the shell script a builder container runs for job: the
// libs build interface exactly (cmake options, make targets, KERNELDIR,
// CC/CXX, CLANG/LLC). hostGCC is the gcc-N of the image that configures
// the tree when the cell's compiler is a clang (images have no plain gcc).
func Recipe(j Job) string {
	var b strings.Builder
	b.WriteString("set -ex\nmkdir -p " + buildDir + " " + outDir + "\ncd " + buildDir + "\n")
	cc := j.Compiler
	if strings.HasPrefix(cc, "clang-") {
		cc = j.HostGCC
	}
	env := fmt.Sprintf("CC=%s CXX=%s", cc, strings.Replace(cc, "gcc-", "g++-", 1))
	ver := strings.TrimPrefix(j.Compiler, "clang-")
	switch j.Driver {
	case DriverKmod:
		fmt.Fprintf(&b, "%s cmake -DUSE_BUNDLED_DEPS=ON -DCREATE_TEST_TARGETS=OFF %s\n", env, srcDir)
		fmt.Fprintf(&b, "make driver KERNELDIR=%s CC=%s\n", j.Kernel.KernelDir, j.Compiler)
		// The module's name is the libs' DRIVER_NAME (scap, falco...): take
		// the one .ko kbuild left.
		b.WriteString("set -- driver/*.ko\ntest $# -eq 1 -a -f \"$1\"\ncp \"$1\" " + outKmod + "\n")
	case DriverBPF:
		fmt.Fprintf(&b, "%s cmake -DUSE_BUNDLED_DEPS=ON -DUSE_BUNDLED_LIBELF=OFF -DCREATE_TEST_TARGETS=OFF -DBUILD_BPF=ON %s\n", env, srcDir)
		fmt.Fprintf(&b, "make bpf KERNELDIR=%s CLANG=%s LLC=llc-%s\n", j.Kernel.KernelDir, j.Compiler, ver)
		b.WriteString("cp driver/bpf/probe.o " + outProbe + "\n")
	case DriverModernBPF:
		// -DBUILD_LIBSCAP_GVISOR=OFF: older libs build gVisor support by
		// default, which needs protobuf and grpc; newer ones ignore it.
		fmt.Fprintf(&b, "%s cmake -DUSE_BUNDLED_DEPS=OFF -DCREATE_TEST_TARGETS=OFF -DBUILD_LIBSINSP_EXAMPLES=OFF -DBUILD_LIBSCAP_GVISOR=OFF -DBUILD_LIBSCAP_MODERN_BPF=ON -DMODERN_CLANG_EXE=/usr/bin/%s %s\n", env, j.Compiler, srcDir)
		b.WriteString("make scap-open\ncp " + scapOpen + " " + outScapOpen + "\n")
	case DriverScapOpen:
		fmt.Fprintf(&b, "%s cmake -DUSE_BUNDLED_DEPS=OFF -DCREATE_TEST_TARGETS=OFF -DBUILD_LIBSINSP_EXAMPLES=OFF -DBUILD_LIBSCAP_GVISOR=OFF %s\n", env, srcDir)
		b.WriteString("make scap-open\ncp " + scapOpen + " " + outScapOpen + "\n")
	}
	return b.String()
}
