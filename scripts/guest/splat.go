package guest

import (
	"regexp"
	"strings"
)

// A splat is the kernel's report of something it caught going wrong: a
// WARN (the kernel carries on), a BUG or oops (the test VMs boot with
// oops=panic, so these usually end in a panic), a lockup or a sanitizer
// report. A cell whose driver captured enough events but made the kernel
// splat has not passed: the splat is the finding.

// splatRe matches the first line of a splat report.
var splatRe = regexp.MustCompile(`^(WARNING: |BUG: |kernel BUG at |Oops[: ]|general protection fault|Unable to handle kernel|unable to handle page fault|invalid opcode: |UBSAN: |KASAN: |INFO: task .* blocked for more than|INFO: rcu_\S+ detected stall|rcu: INFO: rcu_\S+ detected stall|watchdog: BUG: |Kernel panic - not syncing)`)

// cutHere is the line the kernel prints before a WARN or BUG report.
const cutHere = "------------[ cut here ]------------"

// consoleStampRe is the time stamp the console puts before kernel lines.
var consoleStampRe = regexp.MustCompile(`^\[\s*[0-9]+\.[0-9]+\]\s?`)

// SplatLines returns the first splat in lines (kernel log messages, with
// or without console time stamps) from its first line on, at most max
// lines, or nil when there is none. Lines are returned without stamps.
func SplatLines(lines []string, max int) []string {
	for i, l := range lines {
		if !splatRe.MatchString(stripStamp(l)) {
			continue
		}
		var out []string
		for _, k := range lines[i:] {
			if k = strings.TrimRight(stripStamp(k), "\r "); k != "" && k != cutHere {
				out = append(out, k)
			}
			if len(out) == max {
				break
			}
		}
		return out
	}
	return nil
}

// stripStamp removes a console time stamp and leading blanks.
func stripStamp(l string) string {
	return strings.TrimLeft(consoleStampRe.ReplaceAllString(l, ""), " \t")
}

// agentCellPrefix starts the line the agent prints on the console when a
// cell begins, so the console can be cut into cells.
const agentCellPrefix = "agent: cell "

// AgentCellLine is the console line the agent prints when cell id begins.
func AgentCellLine(id string) string { return agentCellPrefix + id }

// CellConsole returns the part of a VM's console written while cell id
// ran: from the agent's line for that cell to the agent's line for the
// next one. It returns "" when the console has no line for the cell.
func CellConsole(console, id string) string {
	mark := AgentCellLine(id)
	i := strings.Index(console, mark+"\n")
	if i < 0 {
		i = strings.Index(console, mark+"\r\n")
	}
	if i < 0 {
		return ""
	}
	rest := console[i+len(mark):]
	if j := strings.Index(rest, agentCellPrefix); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
