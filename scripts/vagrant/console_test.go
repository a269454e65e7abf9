package vagrant

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/sshx"
)

// A panic report as a Debian guest's serial console shows it.
const panicConsole = `[   41.112233] scap: loading out-of-tree module taints kernel.
[   41.203344] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   41.203701] #PF: supervisor read access in kernel mode
[   41.204012] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   41.204590] RIP: 0010:scap_init+0x1a/0x90 [scap]
[   41.209876] Kernel panic - not syncing: Fatal exception
`

func appendFile(t *testing.T, p, text string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestConsoleSince(t *testing.T) {
	p := filepath.Join(t.TempDir(), "debian.log")
	c := consoleLog{p}
	// No log yet (a provider without one): nothing, and no error.
	if got, err := c.since(c.mark()); got != "" || err != nil {
		t.Fatalf("missing log: %q %v", got, err)
	}
	appendFile(t, p, "earlier boot\n"+panicConsole)
	m := c.mark()
	appendFile(t, p, "during the cell\n")
	if got, err := c.since(m); got != "during the cell\n" || err != nil {
		t.Errorf("appended: %q %v", got, err)
	}
	// Truncated by a hypervisor that reopened it after a hard reset: the
	// new file from its start.
	m = c.mark()
	os.WriteFile(p, []byte("new boot\n"), 0o644)
	if got, _ := c.since(m); got != "new boot\n" {
		t.Errorf("truncated: %q", got)
	}
	// Rotated by virtlogd: the rest of <log>.0, then the new file.
	appendFile(t, p, "line before\n")
	m = c.mark()
	appendFile(t, p, "cell starts\n")
	if err := os.Rename(p, p+".0"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "after rotation\n")
	if got, _ := c.since(m); got != "cell starts\nafter rotation\n" {
		t.Errorf("rotated: %q", got)
	}
	// A flooding guest: only the end is read.
	m = c.mark()
	appendFile(t, p, strings.Repeat("x", maxConsoleRead)+"the end\n")
	if got, _ := c.since(m); len(got) != maxConsoleRead || !strings.HasSuffix(got, "the end\n") {
		t.Errorf("flood: %d bytes, ends %q", len(got), got[len(got)-10:])
	}
}

// A cell whose guest panicked (the ssh connection lost, the panic on the
// serial console) is fail/panic with the panic lines, as with qemu; a
// panic printed before the cell started is not this cell's; a guest lost
// without a word is an error, the kind that is retried.
func TestClassifyCellFromConsole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "debian.log")
	c := consoleLog{p}
	appendFile(t, p, "earlier boot\n"+panicConsole+"rebooted\n")
	k := cell{Cell: results.Cell{Kernel: "6.1.0-50-cloud-amd64", Compiler: "gcc-12", Driver: "kmod"}}
	lostErr := fmt.Errorf("ssh debian: %q: %w", "sudo sh -s", sshx.ErrConnectionLost)

	m := c.mark()
	appendFile(t, p, "[   40.000000] random: crng init done\n"+panicConsole)
	console, err := c.since(m)
	if err != nil {
		t.Fatal(err)
	}
	hello := `{"type":"hello","uname":"6.1.0-50-cloud-amd64"}` + "\n"
	started := hello + `{"type":"start","cell":"` + k.ID() + `"}` + "\n"
	o, rec := classifyCell(k, started, "", console, -1, lostErr, 30)
	if o.String() != "fail/panic" || rec != nil || !strings.HasPrefix(o.Reason, "kernel oops/panic: ") ||
		!strings.Contains(o.Reason, "BUG: kernel NULL pointer dereference") || len(o.Detail) != 5 || !strings.Contains(o.Detail[4], "Kernel panic - not syncing") {
		t.Errorf("panic: %s %q %q", o, o.Reason, o.Detail)
	}
	if o.Retry() {
		t.Error("a panic is retried")
	}

	m = c.mark()
	console, _ = c.since(m)
	o, _ = classifyCell(k, started, "", console, -1, lostErr, 30)
	if o.String() != "error" || !o.Retry() || !strings.Contains(o.Reason, "connection lost") {
		t.Errorf("lost guest, quiet console: %s %q", o, o.Reason)
	}

	// An agent that ran to its end is judged by its record; the kernel
	// it ran on must be the cell's.
	out := started + `{"type":"result","cell":"` + k.ID() + `","exit":0,"events":595,"opened":true,"load_seconds":1.2,"capture":2.5,"timed_out":true}` + "\n" + `{"type":"done"}` + "\n"
	if o, rec := classifyCell(k, out, "", "", 0, nil, 30); o.String() != "pass" || rec == nil || rec.Events != 595 || rec.LoadSeconds != 1.2 {
		t.Errorf("pass: %s %q", o, o.Reason)
	}
	if o, _ := classifyCell(k, strings.Replace(out, "6.1.0-50", "6.1.0-49", 1), "", "", 0, nil, 30); o.String() != "error" || !strings.Contains(o.Reason, `cell ran on kernel "6.1.0-49-cloud-amd64"`) {
		t.Errorf("wrong kernel: %s %q", o, o.Reason)
	}
	// An agent that could not run says why on stderr.
	if o, _ := classifyCell(k, "", "agent: read plan: no such file\n", "", 1, nil, 30); o.String() != "error" || !strings.Contains(o.Reason, "guest agent exit status 1: agent: read plan: no such file") {
		t.Errorf("agent failed: %s %q", o, o.Reason)
	}
}
