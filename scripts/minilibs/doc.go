// Package minilibs tests the stand-in driver tree testdata/minilibs: its
// libs-compatible build interface (CMake options, make targets and the
// variables they pass to kbuild, output paths), the generated C array of the
// modern eBPF probe, scap-open's command line and exit codes, and how
// drivers_test (the behaviour suite) builds, lists its tests and fails its
// setup; running drivers_test needs a VM. The tree itself is C (C++ for
// drivers_test), CMake and kbuild; see testdata/minilibs/README.md.
package minilibs
