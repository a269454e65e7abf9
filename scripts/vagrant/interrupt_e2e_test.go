package vagrant

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// haltBound is how long the halt an interrupted loop started may take to
// power the VM off: the loop gives it two minutes.
const haltBound = 3 * time.Minute

// interruptedLoop is the Ctrl-C drill of the Vagrant loop, on the VM and
// build directory the test prepared: `go run mage.go loop`, as a terminal
// runs it (a process group of its own), on the grid's trixie kernel with
// one cell (gcc-14 kmod, VM_RETEST=all), gets SIGINT to its group once the
// cell runs in the guest. The run must end within mage's window; the
// loop's halt must be done or recorded in build/vagrant/debian.halt-pending,
// and, within haltBound, the VM must be powered off with no vagrant of the
// build directory left, or the record must be there for the next run; the
// interrupted cell must keep its earlier record. The next
// `go run mage.go loop` must then finish: the cell tested and recorded
// again, no halt record left, and a VM it just created not halted again.
func interruptedLoop(t *testing.T, cfg, shared *config.Config) {
	start := time.Now()
	defer func() { t.Logf("Ctrl-C drill of the Vagrant loop: %s", time.Since(start).Round(time.Second)) }()

	// A one-kernel grid: the CI grid's trixie kernel, the box's own.
	b, err := os.ReadFile(cfg.KernelsFile)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"apt:trixie/`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%s: want one trixie kernel, got %q", cfg.KernelsFile, lines)
	}
	grid := cfg.Path("drill-kernels.txt")
	if err := os.WriteFile(grid, []byte(lines[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The target runs every stage before the loop: they find the shared
	// build directory's packages, and the compiled cells (their records
	// are in results.json, the artifacts behind the links) up to date.
	for _, sub := range []string{"kernels", "headers", "apt"} {
		e2etest.LinkTree(shared.Path(sub), cfg.Path(sub))
	}
	key := cfg.Path(layout.ScapOpenBin + ".key")
	os.Remove(key)
	if err := os.Symlink(shared.Path(layout.ScapOpenBin+".key"), key); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"VM_BUILD_DIR":     cfg.BuildDir,
		"VM_KERNELS":       grid,
		"VM_LIBS_DIR":      cfg.LibsDir,
		"VM_DEBIAN_MIRROR": os.Getenv("VM_DEBIAN_MIRROR"),
		"VM_PROVIDER":      "libvirt",
		"VM_COMPILERS":     "gcc-14",
		"VM_DRIVERS":       "kmod",
		"VM_RETEST":        "all",
		"VM_SEED":          "1",
	}
	// The Vagrantfile's settings, as the test set them.
	for _, k := range []string{"VM_BOX_DEBIAN", "VM_IP_DEBIAN", "VM_LIBVIRT_DRIVER", "VM_MEMORY", "VM_CPUS", "VM_BOOT_TIMEOUT"} {
		env[k] = os.Getenv(k)
	}
	_, k612 := e2etest.CIKernels(t, shared.BuildDir)
	id := results.Cell{Kernel: k612, Compiler: "gcc-14", Driver: layout.Kmod}
	before := testRecord(t, cfg, id)
	pending := haltPendingPath(cfg, "debian")

	// The interrupted run's cell captures until a limit far off (the
	// stand-in's kmod is open and has its 30 events in about a second on
	// a quiet host, and the loop would be over before Ctrl-C).
	long := maps.Clone(env)
	long["VM_MIN_EVENTS"], long["VM_TEST_SECONDS"] = "1000000000", "300"
	r := e2etest.StartMage(t, "loop", long)
	r.WaitLine(regexp.MustCompile(`^loop debian: running `+regexp.QuoteMeta(id.ID())+`$`), bounded(t, 30*time.Minute))
	time.Sleep(3 * time.Second) // the agent is at work in the guest
	took := r.Interrupt()
	stopped := time.Now()
	if i := strings.LastIndex(r.Output(), "=== "+id.ID()); i >= 0 {
		t.Logf("the interrupted run from its cell on:\n%s", r.Output()[i:])
	}
	if took > e2etest.MageWindow+3*time.Second {
		t.Errorf("loop took %.1fs to end after Ctrl-C", took.Seconds())
	}
	if r.Err() == nil {
		t.Errorf("the interrupted loop exited 0")
	}
	if !strings.Contains(r.Output(), "loop debian: interrupted, halting the VM") {
		t.Errorf("the interrupted loop did not say it halts the VM:\n%s", r.Output())
	}
	state := domainState(t, cfg)
	_, err = os.Stat(pending)
	recorded := err == nil
	t.Logf("after Ctrl-C: VM %s, halt recorded: %v", state, recorded)
	if !recorded && state != "shut off" {
		t.Errorf("the VM is %s and no halt is recorded in %s", state, pending)
	}
	if after := testRecord(t, cfg, id); !reflect.DeepEqual(after, before) {
		t.Errorf("%s: recorded by the interrupted loop: %+v, was %+v", id.ID(), after, before)
	}

	// The halt goes on after mage's exit: within its bound the VM is
	// off and no vagrant of this build directory is left; or the halt is
	// recorded, for the next run.
	var procs []string
	deadline := time.Now().Add(haltBound)
	for {
		state, procs = domainState(t, cfg), vagrantProcesses(cfg)
		if state == "shut off" && len(procs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	_, err = os.Stat(pending)
	recorded = err == nil
	t.Logf("%s after the run ended: VM %s, vagrant processes of the build directory %v, halt recorded: %v",
		time.Since(stopped).Round(time.Second), state, procs, recorded)
	if len(procs) > 0 {
		t.Errorf("vagrant processes of the build directory still running %s after Ctrl-C: %v", haltBound, procs)
	}
	if state != "shut off" && !recorded {
		t.Errorf("the VM is %s %s after Ctrl-C and no halt is recorded for the next run", state, haltBound)
	}

	again := time.Now()
	r = e2etest.StartMage(t, "loop", env)
	if err := r.Wait(bounded(t, 30*time.Minute)); err != nil {
		t.Fatalf("the loop after the interrupted one: %v\n%s", err, r.Output())
	}
	out := r.Output()
	if !regexp.MustCompile(`(?m)^--- ` + regexp.QuoteMeta(id.ID()) + `: PASS`).MatchString(out) {
		t.Errorf("the loop after the interrupted one did not pass %s:\n%s", id.ID(), out)
	}
	if _, err := os.Stat(pending); err == nil {
		t.Errorf("%s still there after the next loop", pending)
	}
	// Init made the VM anew: halting it again is a boot for nothing.
	if i := strings.Index(out, "init debian: ready"); i >= 0 && strings.Contains(out[i:], "did not finish halting the VM") {
		t.Errorf("the next loop halted the VM its init had just created:\n%s", out)
	}
	got := testRecord(t, cfg, id)
	if got == nil || got.Status != results.TestPass || got.Provider != "libvirt" || got.Log == "" {
		t.Fatalf("%s after the next loop: %+v", id.ID(), got)
	}
	if fi, err := os.Stat(cfg.Path(got.Log)); err != nil || fi.ModTime().Before(again) {
		t.Errorf("%s: its log %s was not written by the next loop (%v)", id.ID(), got.Log, err)
	}
	t.Logf("the next loop: %s %s in %s", id.ID(), status(got), time.Since(again).Round(time.Second))
}

// bounded is d, or less when the test binary's deadline comes first: a
// run still going then fails the test with its output rather than
// panicking the binary.
func bounded(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		return max(min(d, time.Until(dl)-2*time.Minute), time.Minute)
	}
	return d
}

// testRecord is the test record of cell id in the build directory's
// results.json (nil when it has none).
func testRecord(t *testing.T, cfg *config.Config, id results.Cell) *results.Test {
	t.Helper()
	f, err := results.Load(cfg.Path(layout.Results))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Find(id.Kernel, id.Compiler, id.Driver)
	if c == nil || c.Test == nil {
		return nil
	}
	rec := *c.Test
	return &rec
}

// domainState is what libvirt says of the group debian's domain
// ("running", "shut off"), found through Vagrant's record of its id.
func domainState(t *testing.T, cfg *config.Config) string {
	t.Helper()
	id, err := os.ReadFile(filepath.Join(stateDir(cfg), "machines", "debian", "libvirt", "id"))
	if err != nil {
		t.Fatalf("the VM's libvirt id: %v", err)
	}
	out, err := exec.Command("virsh", "-c", "qemu:///system", "domstate", strings.TrimSpace(string(id))).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh domstate %s: %v\n%s", id, err, out)
	}
	return strings.TrimSpace(string(out))
}

// vagrantProcesses lists the processes run for the build directory's
// Vagrant state (vagrant and its children).
func vagrantProcesses(cfg *config.Config) []string {
	want := []byte("VAGRANT_DOTFILE_PATH=" + stateDir(cfg) + "\x00")
	var pids []string
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		b, err := os.ReadFile(p)
		if err == nil && (bytes.HasPrefix(b, want) || bytes.Contains(b, append([]byte{0}, want...))) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}
