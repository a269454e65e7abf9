// Package minilibs tests the stand-in driver tree testdata/minilibs: its
// libs-compatible build interface (CMake options, make targets and the
// variables they pass to kbuild, output paths), the generated C array of the
// modern eBPF probe, and scap-open's command line and exit codes. The tree
// itself is C, CMake and kbuild; see testdata/minilibs/README.md.
package minilibs
