package vagrant

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/guest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
	"github.com/falcosecurity/libs/test/vm/scripts/vm/loop"
)

// agentStandIn writes a stand-in for the guest agent's run mode, for a
// guest that is this host, where no module may be loaded and no driver
// opened: it reads the plan's one cell as `agent run PLAN` does, checks
// that scap-open is in the cell's root, and answers with the records the
// real agent writes, as the cell's driver file tells it to ("pass",
// "load", "few", "unsupported", "otherkernel"; a modern_bpf cell, which has
// no file, passes). "panic" writes a panic to console and, as a panicking
// guest stops answering, kills its ssh session; "lost-once" does that
// without a word the first time, "lost-always" every time. It logs each
// run's plan to <home>/plans.
func agentStandIn(t *testing.T, console string) string {
	t.Helper()
	killSession := `p=$$
while [ "$p" -gt 1 ]; do
	if [ "$(cat /proc/$p/comm)" = sshd ]; then kill -9 "$p"; sleep 5; exit 1; fi
	p=$(awk '{print $4}' /proc/$p/stat)
done
exit 1`
	script := `#!/bin/sh
[ "$1" = run ] || { echo "usage: agent run PLAN" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "agent: not root" >&2; exit 1; }
plan=$2
cat "$plan" >> "$HOME/plans"; echo >> "$HOME/plans"
field() { grep -o "\"$1\":\"[^\"]*\"" "$plan" | head -n 1 | cut -d'"' -f4; }
id=$(field id) root=$(field root) module=$(field module) probe=$(field probe)
what=pass
if [ -n "$module" ]; then what=$(cat "$module"); elif [ -n "$probe" ]; then what=$(cat "$root$probe"); fi
uname=$(uname -r)
[ "$what" = otherkernel ] && uname=0.0.0-other
echo '{"type":"hello","uname":"'"$uname"'"}'
echo '{"type":"start","cell":"'"$id"'"}'
result() { printf '%s\n' '{"type":"result","cell":"'"$id"'",'"$1"'}'; }
if [ ! -x "$root/scap-open" ]; then
	result '"exit":-1,"events":-1,"error":"no scap-open in '"$root"'"'
else case "$what" in
pass|otherkernel) result '"exit":0,"events":40,"opened":true,"load_seconds":1.5,"capture":2.5,"timed_out":true,"output":"Events correctly captured (SCAP_SUCCESS): 40\n"' ;;
load) result '"exit":-1,"events":-1,"load":"finit_module: exec format error","kmsg":["scap: disagrees about version of symbol module_layout"]' ;;
few) result '"exit":0,"events":3,"opened":true,"load_seconds":0.5,"capture":20,"timed_out":true,"output":"Events correctly captured (SCAP_SUCCESS): 3\n"' ;;
unsupported) result '"exit":95,"events":-1,"output":"not supported\n"' ;;
panic) printf '%s' '` + panicConsole + `' >> ` + console + `
	` + killSession + ` ;;
lost-once) [ -e "$HOME/lost-once" ] || { touch "$HOME/lost-once"; ` + killSession + `; }
	result '"exit":0,"events":40,"opened":true,"load_seconds":1,"capture":2,"timed_out":true,"output":"Events correctly captured (SCAP_SUCCESS): 40\n"' ;;
lost-always) ` + killSession + ` ;;
esac fi
echo '{"type":"done"}'
`
	p := filepath.Join(t.TempDir(), "agent")
	writeFile(t, p, script)
	return p
}

// hostGuest makes l a lane over a guest that is this host, already on
// kernel k: Init's state and the VM's first boot are taken as done, the
// agent is the stand-in, and a reboot (which must not reboot this host)
// is only counted.
func hostGuest(l *looper, k kernel.Entry, cells []cell, agent string) *int {
	l.jobs = []loop.Job{{Name: k.UnameR, Kernel: k, Cells: orderCells(cells)}}
	l.st = &stateFile{Machine: l.group, Kernels: []string{k.UnameR}}
	l.ready, l.current, l.agent = true, k.UnameR, agent
	reboots := new(int)
	l.rebootGuest = func(context.Context, string) error { *reboots++; return nil }
	return reboots
}

// TestCellsOverSSH runs cells through the Vagrant lane against a real sshd
// on this host standing in for the guest: the agent, scap-open with its
// library closure, modules and probes uploaded where the plan says, the
// agent's run mode started as root on a plan of one cell, its records
// classified and recorded in results.json with the cell logs, driver_ok
// kept in step, and a reboot after each kmod cell. Only what cannot run
// here is a stand-in: the agent (agentStandIn) and sudo.
func TestCellsOverSSH(t *testing.T) {
	g := startFakeGuest(t, nil)
	unameB, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	k := kernel.Entry{UnameR: strings.TrimSpace(string(unameB)), VM: "debian"}

	// The host's side: a build directory as the compile stage leaves it.
	build := t.TempDir()
	cfg, err := config.Parse(func(name string) string {
		return map[string]string{
			"VM_BUILD_DIR":    build,
			"VM_COMPILERS":    "gcc-12,gcc-11,clang-14,clang-16,clang-18,clang-19",
			"VM_MIN_EVENTS":   "30",
			"VM_TEST_SECONDS": "20",
			"VM_BEHAVIOUR":    "off", // the stand-in agent script runs no drivers_test
		}[name]
	}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	scapOpen := filepath.Join(build, "scap-open")
	writeFile(t, scapOpen, "#!/bin/sh\n")
	// The library closure beside scap-open, here a symlink to the tree
	// as a shared build directory may have it.
	closure := t.TempDir()
	writeFile(t, filepath.Join(closure, "lib", "x86_64-linux-gnu", "libstandin.so.1"), "lib")
	if err := os.Symlink("libstandin.so.1", filepath.Join(closure, "lib", "x86_64-linux-gnu", "libstandin.so")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(closure, scapOpen+".root"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(build, "driver/clang-19/modern_bpf/scap-open"), "#!/bin/sh\n")
	for comp, content := range map[string]string{"gcc-12": "pass", "gcc-11": "load"} {
		writeFile(t, filepath.Join(build, "driver", comp, k.UnameR+".ko"), content)
	}
	for comp, content := range map[string]string{"clang-14": "pass", "clang-16": "few", "clang-18": "unsupported", "clang-19": "otherkernel"} {
		writeFile(t, filepath.Join(build, "driver", comp, k.UnameR+".o"), content)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var printed bytes.Buffer
	l := newLooper(cfg, ui.New(&printed), nil, "libvirt", "debian")
	l.g = &machine{name: "debian", fam: deb, ssh: g.client}
	cells := loop.PlanKernel(cfg, k, &results.File{}).Todo
	reboots := hostGuest(l, k, cells, agentStandIn(t, filepath.Join(t.TempDir(), "console")))
	if err := l.place(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := loop.Drive(ctx, cfg, l.out, "libvirt", &loop.Session{Parallel: 1, Lanes: []loop.Lane{l}}, time.Now()); err != nil {
		t.Fatalf("%v\n%s", err, printed.String())
	}
	// A reboot after each kmod cell (both come before the eBPF cells).
	if *reboots != 2 {
		t.Errorf("%d reboots, want 2, one after each kmod cell", *reboots)
	}

	rf, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"gcc-12/kmod":         "pass",
		"gcc-11/kmod":         "fail/load",
		"clang-14/bpf":        "pass",
		"clang-16/bpf":        "fail/events",
		"clang-18/bpf":        "skip",
		"clang-19/bpf":        "error",
		"clang-19/modern_bpf": "pass",
	}
	if len(rf.Cells) != len(want) {
		t.Errorf("%d cells recorded, want %d", len(rf.Cells), len(want))
	}
	for _, c := range rf.Cells {
		key := c.Compiler + "/" + c.Driver
		got := c.Test.Status
		if c.Test.Kind != "" {
			got += "/" + c.Test.Kind
		}
		if got != want[key] {
			t.Errorf("%s: %s (%s), want %s", key, got, c.Test.Reason, want[key])
		}
		// An infrastructure error (the guest on another kernel) is tried
		// VM_RETRIES (2) more times; nothing else is.
		attempts := 1
		if got == "error" {
			attempts = 3
		}
		if c.Test.Provider != "libvirt" || c.Test.Attempts != attempts || c.Test.Log != filepath.Join("logs", "test", k.UnameR, c.Compiler+"_"+c.Driver+".log") {
			t.Errorf("%s: record %+v", key, c.Test)
		}
		if _, err := os.Stat(cfg.Path(c.Test.Log)); err != nil {
			t.Errorf("%s: log: %v", key, err)
		}
		ok := filepath.Join(build, "driver_ok", c.Compiler, k.UnameR+map[string]string{"kmod": ".ko", "bpf": ".o"}[c.Driver])
		_, err := os.Stat(ok)
		if kept := err == nil; kept != (got == "pass" && c.Driver != "modern_bpf") {
			t.Errorf("%s: driver_ok copy present %v for outcome %s", key, kept, got)
		}
	}
	// The agent's times, as in a qemu VM.
	if c := rf.Find(k.UnameR, "gcc-12", "kmod"); c == nil || c.Test.Events != 40 || c.Test.Load != 1.5 || c.Test.Capture != 2.5 {
		t.Errorf("gcc-12/kmod record %+v", c.Test)
	}
	if c := rf.Find(k.UnameR, "gcc-11", "kmod"); c != nil && !strings.Contains(c.Test.Reason, "module_layout") {
		t.Errorf("load failure reason lacks the kernel's word: %q", c.Test.Reason)
	}
	if c := rf.Find(k.UnameR, "clang-19", "bpf"); c != nil && !strings.Contains(c.Test.Reason, `cell ran on kernel "0.0.0-other"`) {
		t.Errorf("a cell on another kernel: %q", c.Test.Reason)
	}
	// scap-open's output reached the terminal.
	if !strings.Contains(printed.String(), "Events correctly captured (SCAP_SUCCESS): 40") {
		t.Errorf("printed output:\n%s", printed.String())
	}
	// Each run's plan: one cell, every path under the home's test-vm.
	b, _ := os.ReadFile(filepath.Join(g.home, "plans"))
	var plans []guest.Plan
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var p guest.Plan
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("plan %q: %v", line, err)
		}
		plans = append(plans, p)
	}
	base := filepath.Join(g.home, remoteBase)
	for _, p := range plans {
		c := p.Cells[0]
		if len(p.Cells) != 1 || len(p.Roots) != 1 || p.Roots[0] != c.Root || !strings.HasPrefix(c.Root, base+"/roots/") ||
			(c.Module != "" && !strings.HasPrefix(c.Module, base+"/drivers/")) || p.NumEvents != 30 || p.TestSeconds != 20 {
			t.Errorf("plan %+v", p)
		}
	}
	if len(plans) != len(want)+2 {
		t.Errorf("%d agent runs, want %d (one per cell, two more for the retries)", len(plans), len(want)+2)
	}
	// The closure is in scap-open's root, symlinks kept.
	if l, err := os.Readlink(filepath.Join(base, "roots/0/lib/x86_64-linux-gnu/libstandin.so")); err != nil || l != "libstandin.so.1" {
		t.Errorf("closure in the guest: link %q, %v", l, err)
	}
	// The guest's mounts went away with its namespace.
	if out, _ := exec.Command("sh", "-c", "grep -c "+g.home+" /proc/mounts").Output(); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("mounts left under %s", g.home)
	}
}
