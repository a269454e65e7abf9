// Package drill holds the reliability drills: end-to-end tests that
// interrupt the pipeline the way a person or the host does (Ctrl-C in the
// terminal of `go run mage.go`, a Docker engine that stops mid-compile) and
// then check what is left behind (no container, no qemu, no partial file
// under a final name) and that the next run finishes the work without
// redoing what was finished. They run with VM_E2E=1, each on its own small
// build directory under the shared end-to-end one. The package has no code
// of its own.
package drill
