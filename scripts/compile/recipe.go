package compile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/libstree"
)

// RecipeVersion is part of every cache key: bump it when a recipe changes,
// so every cell is built again. (The key also holds the script itself.)
const RecipeVersion = "2"

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
	outDrivers  = outDir + "/drivers_test"
	driversTest = "test/drivers/drivers_test"
)

// setting is one CMake cache setting of the libs build interface.
type setting struct {
	name, value string
	// read: the variable is valid when the tree reads it at all (a plain
	// variable such as MODERN_CLANG_EXE); otherwise the tree must declare
	// it with option() or set(... CACHE ...).
	read bool
	// optional: passed where the tree knows it, and not required for the
	// build to be in this libs version.
	optional bool
	why      string
}

// goal is one make goal of a build.
type goal struct {
	target string
	args   []string // make variables; {kerneldir}, {compiler}, {version} are filled in
	// optional goals run only where the tree defines the target; the others
	// must exist for the build to be in this libs version.
	optional bool
	// userspace goals build scap-open: when one fails after the driver's
	// goals succeeded, the driver compiled and its cells cannot be tested.
	userspace bool
}

// build is what the libs build interface says about one kind of job.
type build struct {
	settings []setting // wanted on top of commonSettings; each must be valid for the tree
	goals    []goal
	output   string // the artifact in the build dir, a shell glob matching one file
	copyTo   string // where the container leaves it
}

// commonSettings are passed to every configure, each only where the tree
// declares it: together they make a libs tree configure offline with the
// builder images' libraries, from 0.20.0 (legacy probe, gVisor, c-ares) to
// today's main.
var commonSettings = []setting{
	{name: "USE_BUNDLED_DEPS", value: "OFF",
		why: "bundled dependencies are downloaded while building (the driver's libelf, grpc for bpf, zlib and uthash for scap-open); the builder images have them all"},
	{name: "USE_BUNDLED_VALIJSON", value: "ON",
		why: "configure looks for libsinsp's valijson, which bullseye does not package; the bundle is a header-only download that only libsinsp targets trigger, and no goal here depends on one"},
	{name: "MINIMAL_BUILD", value: "ON",
		why: "without it configure wants c-ares and curl for libsinsp and protobuf and grpc for gVisor"},
	{name: "BUILD_LIBSCAP_GVISOR", value: "OFF",
		why: "gVisor support needs protobuf and grpc, and no cell uses it"},
	{name: "CREATE_TEST_TARGETS", value: "OFF",
		why: "test targets make configure download googletest"},
	{name: "BUILD_LIBSINSP_EXAMPLES", value: "OFF",
		why: "libsinsp's examples need cxxopts"},
}

// builds is the one description of the libs build interface: per job kind
// (the kmod, the legacy probe, the shared scap-open, scap-open with the
// modern probe), the settings it wants and the goals that produce it.
var builds = map[string]build{
	layout.Kmod: {
		goals:  []goal{{target: "driver", args: []string{"KERNELDIR={kerneldir}", "CC={kcc}"}}},
		output: "driver/*.ko", // the name is the tree's DRIVER_NAME (scap, falco, ...)
		copyTo: outKmod,
	},
	layout.BPF: {
		settings: []setting{{name: "BUILD_BPF", value: "ON", why: "the bpf goal exists only with it"}},
		goals:    []goal{{target: "bpf", args: []string{"KERNELDIR={kerneldir}", "CLANG={clang}", "LLC=llc-{version}"}}},
		output:   "driver/bpf/probe.o",
		copyTo:   outProbe,
	},
	layout.ModernBPF: {
		settings: []setting{
			{name: "BUILD_LIBSCAP_MODERN_BPF", value: "ON", why: "builds the CO-RE probe into libscap"},
			{name: "MODERN_CLANG_EXE", value: "/usr/bin/{compiler}", read: true, why: "the clang that compiles the probe (the tree's default is the first clang it finds)"},
		},
		goals: []goal{
			{target: "ProbeSkeleton", optional: true},
			{target: "scap-open", userspace: true},
		},
		output: scapOpen,
		copyTo: outScapOpen,
	},
	layout.ScapOpen: {
		goals:  []goal{{target: "scap-open", userspace: true}},
		output: scapOpen,
		copyTo: outScapOpen,
	},
	// libs' behaviour suite, with both engines it can test: the kmod and
	// the modern probe built by the job's clang. googletest and libcap
	// come from the image (nothing is downloaded).
	layout.DriversTest: {
		settings: []setting{
			{name: "CREATE_TEST_TARGETS", value: "ON", why: "drivers_test is a test target; with USE_BUNDLED_DEPS=OFF googletest is the image's"},
			{name: "ENABLE_DRIVERS_TESTS", value: "ON", why: "adds test/drivers"},
			{name: "ENABLE_IA32_TESTS", value: "OFF", optional: true, why: "the ia32 tests need a 32-bit gcc and glibc, which the builder images lack"},
			{name: "BUILD_LIBSCAP_MODERN_BPF", value: "ON", why: "the modern probe's engine, built into drivers_test"},
			{name: "MODERN_CLANG_EXE", value: "/usr/bin/{compiler}", read: true, why: "the clang that compiles the probe (the tree's default is the first clang it finds)"},
		},
		goals:  []goal{{target: "drivers_test", userspace: true}},
		output: driversTest,
		copyTo: outDrivers,
	},
}

// Recipe is how one job builds: the shell script its container runs, with
// the steps the script marks in its output.
type Recipe struct {
	Script string
	Steps  []Step
}

// Step is one marked part of a recipe: configure, or one make goal.
type Step struct {
	Name      string
	Userspace bool // it builds scap-open, not the driver
}

// stepMarker starts the line a script prints when a step begins, followed
// by the name and the time; the pseudo-steps stepDone (the script
// finished) and stepExit (the shell exits, also on failure) end the last.
const (
	stepMarker = "### step "
	stepDone   = "done"
	stepExit   = "exit"
)

// skipMarker starts the line a script prints when the cell cannot be built
// in this image for a reason that is not the driver's (its cmake is older
// than the tree requires), followed by the reason.
const skipMarker = "### skip "

// Available reports whether the tree has the build of driver: every
// required goal defined and every setting of its own valid. When not, the
// reason names what is missing, for the log; the cell is "not in this libs
// version".
func Available(t *libstree.Tree, driver string) (bool, string) {
	b, ok := builds[driver]
	if !ok {
		return false, "no build for " + driver
	}
	for _, s := range b.settings {
		if !s.optional && !valid(t, s) {
			return false, "the tree does not declare " + s.name
		}
	}
	for _, g := range b.goals {
		if !g.optional && !t.HasTarget(g.target) {
			return false, "the tree defines no " + g.target + " target"
		}
	}
	return true, ""
}

func valid(t *libstree.Tree, s setting) bool {
	if s.read {
		return t.Knows(s.name)
	}
	return t.Declares(s.name)
}

// merged is commonSettings with own's settings of the same name replaced
// by own's, then own's other settings.
func merged(own []setting) []setting {
	var out []setting
	for _, c := range commonSettings {
		if !slices.ContainsFunc(own, func(o setting) bool { return o.name == c.name }) {
			out = append(out, c)
		}
	}
	return append(out, own...)
}

// recipeParams are what a recipe takes from its job.
type recipeParams struct {
	driver    string
	compiler  string // gcc-N (kmod) or clang-N (probes)
	hostGCC   string // the image's gcc-N that configures the tree
	kernelDir string // KERNELDIR, "" for builds without headers
	arch      string // the architecture it builds for (layout.Amd64, layout.Arm64)
}

// crossTarget is what cross-building for a foreign architecture takes: the
// GNU triplet (the cross gcc's prefix, CROSS_COMPILE without its dash),
// the kernel's ARCH and CMake's CMAKE_SYSTEM_PROCESSOR.
type crossTarget struct{ triplet, kernelArch, processor string }

var crossTargets = map[string]crossTarget{
	layout.Arm64: {triplet: "aarch64-linux-gnu", kernelArch: "arm64", processor: "aarch64"},
}

// userspaceBuild reports whether driver's build is a program of the
// guest (scap-open, with or without the modern probe, and drivers_test),
// configured for the target; the kmod and the legacy probe are built by
// the kernel's kbuild, whose make variables say the target.
func userspaceBuild(driver string) bool {
	return driver == layout.ModernBPF || driver == layout.ScapOpen || driver == layout.DriversTest
}

// makeRecipe writes the script of one job from the description and what the
// tree declares. The script's header says which settings were passed and
// where the tree declares each (the reason they are valid here), and which
// were left out because this tree does not know them.
func makeRecipe(t *libstree.Tree, p recipeParams) Recipe {
	b := builds[p.driver]
	cc := p.compiler
	if strings.HasPrefix(cc, "clang-") {
		cc = p.hostGCC
	}
	cross, isCross := crossTargets[p.arch]
	kcc := p.compiler // the kmod's CC
	clang := p.compiler
	if isCross {
		kcc = cross.triplet + "-" + kcc
		// The legacy probe's clang parses the target's kernel headers
		// (their inline assembly) before emitting BPF: it must know the
		// target.
		clang = `"` + p.compiler + " --target=" + cross.triplet + `"`
	}
	fill := strings.NewReplacer("{kerneldir}", p.kernelDir, "{compiler}", p.compiler, "{kcc}", kcc, "{clang}", clang,
		"{version}", strings.TrimPrefix(p.compiler, "clang-")).Replace
	var configureEnv string
	var crossArgs []string
	if isCross && userspaceBuild(p.driver) {
		// A CMake cross build: the target's compilers, and pkg-config
		// reading the target's multiarch directory only.
		cc = cross.triplet + "-" + cc
		configureEnv = "PKG_CONFIG_LIBDIR=/usr/lib/" + cross.triplet + "/pkgconfig:/usr/share/pkgconfig "
		crossArgs = []string{"-DCMAKE_SYSTEM_NAME=Linux", "-DCMAKE_SYSTEM_PROCESSOR=" + cross.processor}
	}

	var head, body strings.Builder
	fmt.Fprintf(&head, "# %s with %s", p.driver, p.compiler)
	if p.kernelDir != "" {
		fmt.Fprintf(&head, " for KERNELDIR=%s", p.kernelDir)
	}
	if isCross {
		fmt.Fprintf(&head, ", cross-built for %s (%s)", p.arch, cross.triplet)
	}
	head.WriteString("\n# CMake settings, each valid for this tree where noted:\n")
	var args, skipped []string
	for _, s := range merged(b.settings) {
		arg := "-D" + s.name + "=" + fill(s.value)
		if !valid(t, s) {
			skipped = append(skipped, arg)
			continue
		}
		verb := "declared"
		if !t.Declares(s.name) {
			verb = "read"
		}
		fmt.Fprintf(&head, "#   %s (%s at %s): %s\n", arg, verb, t.Where(s.name), s.why)
		args = append(args, arg)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&head, "# not passed, this tree does not know them: %s\n", strings.Join(skipped, " "))
	}

	r := Recipe{Steps: []Step{{Name: "configure"}}}
	body.WriteString("set -ex\n")
	body.WriteString(`step() { { set +x; } 2>/dev/null; echo "` + stepMarker + `$1 $(date +%s.%N)"; set -x; }` + "\n")
	body.WriteString(`trap 'step ` + stepExit + `' EXIT` + "\n")
	body.WriteString("mkdir -p " + buildDir + " " + outDir + "\ncd " + buildDir + "\n")
	body.WriteString("step configure\n")
	if t.CMakeMinimum != "" {
		// The tree's own minimum: an image whose cmake is older cannot
		// configure it, which says nothing about the driver. The cell is
		// a skip with that reason, as for a glibc too old for kbuild.
		fmt.Fprintf(&body, "have=$(cmake --version | sed -n '1s/^cmake version //p')\n"+
			"if [ \"$(printf '%%s\\n' %s \"$have\" | sort -V | head -n 1)\" != %s ]; then echo \"%sbuilder cmake $have < needed %s\"; exit 97; fi\n",
			t.CMakeMinimum, t.CMakeMinimum, skipMarker, t.CMakeMinimum)
	}
	fmt.Fprintf(&body, "%sCC=%s CXX=%s cmake %s %s\n", configureEnv, cc, strings.Replace(cc, "gcc-", "g++-", 1), strings.Join(append(crossArgs, args...), " "), srcDir)
	var goals []string
	for i, g := range b.goals {
		if !t.HasTarget(g.target) {
			continue // an optional goal this tree lacks (Available checked the others)
		}
		goals = append(goals, fmt.Sprintf("%s (%s)", g.target, t.TargetWhere(g.target)))
		r.Steps = append(r.Steps, Step{Name: g.target, Userspace: g.userspace})
		body.WriteString("step " + g.target + "\n")
		line := "make " + g.target
		if isCross && userspaceBuild(p.driver) {
			// A cross build may build a tool of its own for the build
			// host (libs' modern probe: its events dimensions generator,
			// configured by a CMake of its own): the host's compilers.
			line = "CC=" + p.hostGCC + " CXX=" + strings.Replace(p.hostGCC, "gcc-", "g++-", 1) + " " + line
		}
		for _, a := range g.args {
			line += " " + fill(a)
		}
		if isCross && !userspaceBuild(p.driver) {
			line += " ARCH=" + cross.kernelArch + " CROSS_COMPILE=" + cross.triplet + "-"
		}
		body.WriteString(line + "\n")
		if i == len(b.goals)-1 {
			// The artifact is part of the last goal: no file, no build.
			fmt.Fprintf(&body, "set -- %s\ntest $# -eq 1 -a -f \"$1\"\ncp \"$1\" %s\n", b.output, b.copyTo)
		}
	}
	body.WriteString("step " + stepDone + "\n")
	fmt.Fprintf(&head, "# make goals: %s\n", strings.Join(goals, ", "))
	if t.CMakeMinimum != "" {
		fmt.Fprintf(&head, "# the tree requires cmake >= %s (CMakeLists.txt)\n", t.CMakeMinimum)
	}
	r.Script = head.String() + body.String()
	return r
}

// userspace reports whether the step called name builds scap-open.
func (r Recipe) userspace(name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Userspace
		}
	}
	return false
}
