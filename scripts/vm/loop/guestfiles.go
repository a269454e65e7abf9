package loop

import (
	"fmt"
	"path"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
)

// GuestFile is a host file or tree a plan needs in the guest.
type GuestFile struct {
	Guest string // absolute path in the guest
	Host  string
	// Tree is a directory tree (a scap-open's library closure).
	Tree bool
	// Module is one of the kernel's own modules, as the kernel package
	// ships it (maybe compressed): ReadModule gives what the guest loads.
	Module bool
}

// GuestPlan is the guest agent's plan for the cells of jobs, and the files
// it needs, all under base in the guest ("/" for an initramfs; a relative
// base is relative to wherever the plan runs from). Each distinct
// scap-open (with its library closure) gets its own root base/roots/<n>
// where the agent chroots to run it, so closures from different builder
// images never mix; a bpf probe goes inside the root of the scap-open that
// loads it; a module goes to base/drivers, with the kernel's own modules
// it depends on in base/lib/modules/<uname -r>, decompressed.
func GuestPlan(cfg *config.Config, jobs []Job, base string) (*guest.Plan, []GuestFile, error) {
	p := &guest.Plan{NumEvents: cfg.MinEvents, LoadSeconds: int(cfg.LoadTime.Seconds()), TestSeconds: int(cfg.TestTime.Seconds())}
	roots := map[string]string{} // host scap-open -> guest root
	var trees, files, modules []GuestFile
	seen := map[string]bool{} // guest paths of modules placed
	for _, j := range jobs {
		for _, c := range j.Cells {
			root, ok := roots[c.ScapOpen]
			if !ok {
				root = path.Join(base, "roots", fmt.Sprint(len(roots)))
				roots[c.ScapOpen] = root
				p.Roots = append(p.Roots, root)
				if isDir(c.Root) {
					trees = append(trees, GuestFile{Guest: root, Host: c.Root, Tree: true})
				}
				files = append(files, GuestFile{Guest: path.Join(root, "scap-open"), Host: c.ScapOpen})
			}
			pc := guest.PlanCell{ID: c.ID(), Driver: c.Driver, Root: root, ScapOpen: "/scap-open"}
			switch c.Driver {
			case layout.Kmod:
				pc.Module = path.Join(base, "drivers", c.Compiler, c.Kernel+".ko")
				files = append(files, GuestFile{Guest: pc.Module, Host: c.Artifact})
				deps, err := moduleDeps(c.Artifact, j.Kernel.ModulesDir)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", c.ID(), err)
				}
				for _, d := range deps {
					g := path.Join(base, "lib/modules", c.Kernel, modName(d)+".ko")
					pc.Deps = append(pc.Deps, g)
					if !seen[g] {
						seen[g] = true
						modules = append(modules, GuestFile{Guest: g, Host: d, Module: true})
					}
				}
			case layout.BPF:
				pc.Probe = path.Join("/drivers", c.Compiler, c.Kernel+".o")
				files = append(files, GuestFile{Guest: path.Join(root, pc.Probe), Host: c.Artifact})
			}
			if c.Behaviour != nil {
				broot := ""
				if bin := c.Behaviour.Binary; bin != "" {
					if broot, ok = roots[bin]; !ok {
						broot = path.Join(base, "roots", fmt.Sprint(len(roots)))
						roots[bin] = broot
						p.Roots = append(p.Roots, broot)
						if isDir(bin + ".root") {
							trees = append(trees, GuestFile{Guest: broot, Host: bin + ".root", Tree: true})
						}
						files = append(files, GuestFile{Guest: path.Join(broot, layout.DriversTest), Host: bin})
					}
					if c.Driver == layout.Kmod {
						files = append(files, GuestFile{Guest: path.Join(broot, behaviourModule(c)), Host: c.Artifact})
					}
				}
				pc.Behaviour = behaviourRun(cfg, c, broot)
				if pc.Behaviour.Binary != "" && pc.Behaviour.Mode == guest.BehaviourFull {
					mods, err := optionalModules(behaviourModules, j.Kernel.ModulesDir)
					if err != nil {
						return nil, nil, fmt.Errorf("%s: drivers_test: %w", c.ID(), err)
					}
					for _, d := range mods {
						g := path.Join(base, "lib/modules", c.Kernel, modName(d)+".ko")
						pc.Behaviour.Modules = append(pc.Behaviour.Modules, g)
						if !seen[g] {
							seen[g] = true
							modules = append(modules, GuestFile{Guest: g, Host: d, Module: true})
						}
					}
				}
			}
			p.Cells = append(p.Cells, pc)
		}
	}
	return p, append(append(trees, files...), modules...), nil
}

// ReadModule is the content of a kernel module file, decompressed.
func ReadModule(p string) ([]byte, error) { return readModule(p) }
