package loop

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// Which drivers_test a cell gets: a modern_bpf cell its clang's, a kmod
// cell the newest clang's that built; none for bpf, VM_BEHAVIOUR=off or a
// tree without drivers_test; an unavailable one, naming the failed build,
// when it did not build.
func TestBehaviourFor(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_COMPILERS": "gcc-12,clang-14,clang-19"})
	rf := &results.File{}
	rf.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-14", Status: results.CompileOK})
	rf.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-19", Status: results.CompileFail,
		Reason: "sys/capability.h: No such file", Log: "logs/compile/clang-19/drivers_test.log"})
	touch(t, cfg.Path(layout.DriversTestBin("clang-14", "")))
	cell := func(comp, drv string) results.Cell {
		return results.Cell{Kernel: "6.1.0-50-cloud-amd64", Compiler: comp, Driver: drv}
	}

	if b := behaviourFor(cfg, rf, cell("gcc-12", "kmod")); b == nil || b.Binary != cfg.Path(layout.DriversTestBin("clang-14", "")) {
		t.Errorf("kmod: %+v, want clang-14's (clang-19's did not build)", b)
	}
	if b := behaviourFor(cfg, rf, cell("clang-19", "modern_bpf")); b == nil || b.Binary != "" ||
		!strings.Contains(b.Unavailable, "clang-19/drivers_test did not build (log logs/compile/clang-19/drivers_test.log): sys/capability.h") {
		t.Errorf("modern_bpf clang-19: %+v", b)
	}
	if b := behaviourFor(cfg, rf, cell("clang-14", "bpf")); b != nil {
		t.Errorf("bpf: %+v, want none", b)
	}
	rf.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-19", Status: results.CompileOK})
	touch(t, cfg.Path(layout.DriversTestBin("clang-19", "")))
	if b := behaviourFor(cfg, rf, cell("gcc-12", "kmod")); b == nil || b.Binary != cfg.Path(layout.DriversTestBin("clang-19", "")) {
		t.Errorf("kmod: %+v, want the newest clang's", b)
	}

	none := &results.File{Builds: []results.Build{{Name: layout.DriversTest, Status: results.CompileSkip, Reason: "not in this libs version"}}}
	if b := behaviourFor(cfg, none, cell("gcc-12", "kmod")); b != nil {
		t.Errorf("tree without drivers_test: %+v, want none", b)
	}
	if b := behaviourFor(cfg, &results.File{}, cell("gcc-12", "kmod")); b == nil || b.Unavailable == "" {
		t.Errorf("nothing built: %+v, want an unavailable drivers_test", b)
	}
	off := testConfig(t, map[string]string{"VM_BEHAVIOUR": "off"})
	if b := behaviourFor(off, rf, cell("gcc-12", "kmod")); b != nil {
		t.Errorf("VM_BEHAVIOUR=off: %+v", b)
	}
}

// A passed cell is tested again when its behaviour is wanted and was not
// tested in this mode; the guest plan runs drivers_test in its own root
// with the module copied in (kmod) or -m (modern_bpf), with the smoke
// filter.
func TestBehaviourPlan(t *testing.T) {
	cfg := testConfig(t, map[string]string{"VM_COMPILERS": "gcc-12,clang-19", "VM_DRIVERS": "kmod,modern_bpf"})
	k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64"}
	touch(t, cfg.Path("scap-open"))
	touch(t, cfg.Path("driver", "gcc-12", k.UnameR+".ko"))
	touch(t, cfg.Path("driver", "clang-19", "modern_bpf", "scap-open"))
	touch(t, cfg.Path(layout.DriversTestBin("clang-19", "")))
	touch(t, cfg.Path(layout.DriversTestBin("clang-19", "")+".root", "usr", "bin", "true"))
	rf := &results.File{}
	rf.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-19", Status: results.CompileOK})
	rf.SetTest(k.UnameR, "gcc-12", "kmod", results.Test{Status: results.TestPass})
	rf.SetTest(k.UnameR, "clang-19", "modern_bpf", results.Test{Status: results.TestPass,
		Behaviour: &results.Behaviour{Mode: guest.BehaviourSmoke, Passed: 3}})
	p := PlanKernel(cfg, k, rf)
	if len(p.Todo) != 1 || p.Todo[0].Driver != "kmod" || p.Kept != 1 {
		t.Fatalf("todo %v, kept %d; want the kmod cell (passed without behaviour) again, modern_bpf kept", p.Todo, p.Kept)
	}
	rf.SetTest(k.UnameR, "clang-19", "modern_bpf", results.Test{Status: results.TestPass})
	p = PlanKernel(cfg, k, rf)
	plan, files, err := GuestPlan(cfg, []Job{{Kernel: k, Cells: p.Todo}}, "/")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Cells) != 2 {
		t.Fatalf("plan cells %+v", plan.Cells)
	}
	for _, pc := range plan.Cells {
		b := pc.Behaviour
		if b == nil || b.Binary != "/drivers_test" || !slices.Contains(plan.Roots, b.Root) || b.Filter != guest.SmokeFilter() || b.Seconds != 300 {
			t.Fatalf("%s: behaviour %+v (roots %v)", pc.ID, b, plan.Roots)
		}
		want := []string{"-m"}
		if pc.Driver == "kmod" {
			want = []string{"-k", "/drivers/gcc-12/" + k.UnameR + ".ko"}
		}
		if !slices.Equal(b.Args, want) {
			t.Errorf("%s: args %v, want %v", pc.ID, b.Args, want)
		}
	}
	root := plan.Cells[0].Behaviour.Root
	var have []string
	for _, f := range files {
		if strings.HasPrefix(f.Guest, root+"/") || f.Guest == root {
			have = append(have, f.Guest)
		}
	}
	for _, want := range []string{root, root + "/drivers_test", root + "/drivers/gcc-12/" + k.UnameR + ".ko"} {
		if !slices.Contains(have, want) {
			t.Errorf("guest files under %s: %v, want %s", root, have, want)
		}
	}
}

// A pass whose behaviour was asked for but not reported is an error, not
// retried; one with its behaviour, or without asking, stays a pass.
func TestBehaviourAsked(t *testing.T) {
	asked := Cell{Behaviour: &Behaviour{Binary: "/b/drivers_test"}}
	pass := guest.Outcome{Status: guest.Pass, Reason: "40 events"}
	if o := behaviourAsked(Attempt{Cell: asked, Outcome: pass}); o.Status != guest.Error || o.Retry() || !strings.Contains(o.Reason, "reported no drivers_test run") {
		t.Errorf("asked, not reported: %s retry %v %q", o, o.Retry(), o.Reason)
	}
	with := pass
	with.Behaviour = &guest.Behaviour{Passed: 3}
	if o := behaviourAsked(Attempt{Cell: asked, Outcome: with}); o.Status != guest.Pass {
		t.Errorf("asked and reported: %s", o)
	}
	if o := behaviourAsked(Attempt{Cell: Cell{}, Outcome: pass}); o.Status != guest.Pass {
		t.Errorf("not asked: %s", o)
	}
}

// In full mode drivers_test gets the kernel's overlay module (and what it
// depends on), loaded before the run, when the kernel builds it as a
// module; none in smoke mode, and none for a kernel with overlay built in.
func TestBehaviourModules(t *testing.T) {
	modules := t.TempDir()
	dep := "kernel/fs/overlayfs/overlay.ko.xz: kernel/lib/ovl-helper.ko.xz\n" +
		"kernel/lib/ovl-helper.ko.xz:\n" +
		"kernel/net/other.ko.xz:\n"
	if err := os.WriteFile(modules+"/modules.dep", []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := func(mode, modulesDir string) (guest.PlanCell, []GuestFile) {
		t.Helper()
		cfg := testConfig(t, map[string]string{"VM_COMPILERS": "gcc-12,clang-19", "VM_DRIVERS": "kmod", "VM_BEHAVIOUR": mode})
		k := kernel.Entry{UnameR: "6.1.0-50-cloud-amd64", ModulesDir: modulesDir}
		touch(t, cfg.Path("scap-open"))
		touch(t, cfg.Path("driver", "gcc-12", k.UnameR+".ko"))
		touch(t, cfg.Path(layout.DriversTestBin("clang-19", "")))
		rf := &results.File{}
		rf.SetBuild(results.Build{Name: layout.DriversTest, Compiler: "clang-19", Status: results.CompileOK})
		p := PlanKernel(cfg, k, rf)
		gp, files, err := GuestPlan(cfg, []Job{{Kernel: k, Cells: p.Todo}}, "/")
		if err != nil {
			t.Fatal(err)
		}
		if len(gp.Cells) != 1 || gp.Cells[0].Behaviour == nil {
			t.Fatalf("plan cells %+v", gp.Cells)
		}
		return gp.Cells[0], files
	}

	pc, files := plan(guest.BehaviourFull, modules)
	want := []string{"/lib/modules/6.1.0-50-cloud-amd64/ovl_helper.ko", "/lib/modules/6.1.0-50-cloud-amd64/overlay.ko"}
	if !slices.Equal(pc.Behaviour.Modules, want) {
		t.Errorf("full: modules %v, want %v", pc.Behaviour.Modules, want)
	}
	for i, w := range want {
		ok := false
		for _, f := range files {
			if f.Guest == w && f.Module && strings.HasSuffix(f.Host, []string{"ovl-helper.ko.xz", "overlay.ko.xz"}[i]) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("full: no guest file %s from the kernel's modules in %+v", w, files)
		}
	}
	if pc, _ := plan(guest.BehaviourSmoke, modules); len(pc.Behaviour.Modules) != 0 {
		t.Errorf("smoke: modules %v, want none", pc.Behaviour.Modules)
	}
	builtin := t.TempDir()
	if err := os.WriteFile(builtin+"/modules.dep", []byte("kernel/net/other.ko.xz:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pc, _ := plan(guest.BehaviourFull, builtin); len(pc.Behaviour.Modules) != 0 {
		t.Errorf("overlay built in: modules %v, want none", pc.Behaviour.Modules)
	}
	if pc, _ := plan(guest.BehaviourFull, ""); len(pc.Behaviour.Modules) != 0 {
		t.Errorf("no modules tree: modules %v, want none", pc.Behaviour.Modules)
	}
}
