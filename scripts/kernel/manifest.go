package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// Manifest lists every kernel of the grid, in grid order; with VM_SHARD,
// the kernels of this run's shard.
type Manifest struct {
	Schema int `json:"schema"`
	// Grid identifies the whole grid file (grid.Grid.ID), whatever part
	// of it this run takes: the shards of one grid share it.
	Grid string `json:"grid,omitempty"`
	// Shard is the part of the grid this run took (VM_SHARD); nil for
	// the whole grid.
	Shard   *config.Shard `json:"shard,omitempty"`
	Kernels []Entry       `json:"kernels"`
}

// Entry is one kernel of the grid after fetch and extraction. Paths are
// absolute on the host unless said otherwise.
type Entry struct {
	Name   string `json:"name"`    // grid "name", or derived from the packages
	Line   int    `json:"line"`    // line in the grid file
	VM     string `json:"vm"`      // VM group: debian, ubuntu, centos7, ...
	Arch   string `json:"arch"`    // amd64 or arm64 (layout.Amd64, layout.Arm64)
	UnameR string `json:"uname_r"` // uname -r, e.g. 6.1.0-50-cloud-amd64

	// Packages are the cached package files of this kernel: those the grid
	// line lists and the kernel packages its apt references depend on.
	Headers []string `json:"headers"`
	Kernels []string `json:"kernels"`
	// Resolved tells what each apt reference of the line stands for: the
	// package it names and the dependencies it brought, NAME=VERSION each
	// (a meta package such as linux-image-cloud-amd64 names the current
	// kernel this way).
	Resolved []Resolution `json:"resolved,omitempty"`
	// Unverified are the grid's references whose content nothing vouches
	// for: local paths and URLs without a #sha256= pin (apt: references
	// are checked against the signed index).
	Unverified []string `json:"unverified,omitempty"`

	// Sysroot is build/headers_extracted/<uname-r>: every header package of
	// the kernel extracted into one tree.
	Sysroot string `json:"sysroot,omitempty"`
	// KernelDir is the KERNELDIR to build against, as an absolute path
	// inside the sysroot (e.g. /usr/src/linux-headers-<uname-r>); the
	// compile stage bind-mounts Mounts at the same absolute paths, so the
	// headers' own absolute symlinks and includes resolve.
	KernelDir string   `json:"kernel_dir,omitempty"`
	Mounts    []string `json:"mounts,omitempty"` // absolute paths inside the sysroot, e.g. /usr/src

	// Boot is what the VM stage needs: the kernel image and its modules tree.
	Vmlinuz    string `json:"vmlinuz,omitempty"`
	ModulesDir string `json:"modules_dir,omitempty"` // .../lib/modules/<uname-r>

	// Facts are what the headers say about the kernel: its own compiler,
	// BTF, PREEMPT_RT, BPF JIT, module signing, lockdown, syscall
	// tracepoints.
	Facts *Facts `json:"facts,omitempty"`

	// Error is set when this kernel could not be fetched or extracted; its
	// cells are skipped with this reason, and the other kernels go on.
	Error string `json:"error,omitempty"`
}

// Resolution is what one apt reference resolved to.
type Resolution struct {
	Ref      string   `json:"ref"`      // as written in the grid
	Packages []string `json:"packages"` // NAME=VERSION: the package, then its dependencies
}

// HostKernelDir is KernelDir on the host (inside the sysroot).
func (e Entry) HostKernelDir() string {
	if e.Sysroot == "" || e.KernelDir == "" {
		return ""
	}
	return e.Sysroot + e.KernelDir
}

// LoadManifest reads the manifest the kernel stage wrote in buildDir.
func LoadManifest(buildDir string) (*Manifest, error) {
	p := filepath.Join(buildDir, layout.Manifest)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, errNoManifest)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if m.Schema != 1 {
		return nil, fmt.Errorf("%s: manifest schema %d, this version reads 1: run the kernel stage again", p, m.Schema)
	}
	return &m, nil
}

// writeManifest writes m to p atomically (temp file + rename).
func writeManifest(p string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return fsx.WriteFile(p, append(b, '\n'), 0o644)
}
