package guest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzReadReport feeds the report reader what a serial line can carry:
// noise, records cut short, records of unknown types, then one whole
// result record on its own line. Whatever came before, that record is read
// back as it was written, nothing panics, and every result read classifies
// into one of the statuses results.json knows.
func FuzzReadReport(f *testing.F) {
	f.Add([]byte("\x00garbage before\r\n"+`{"type":"hello","uname":"6.1.0-50-cloud-amd64","btf":true}`+"\n"+`{"type":"start","cell":"c"}`),
		"gcc-12/6.1.0-50-cloud-amd64/kmod", 200, 0, "Events correctly captured (SCAP_SUCCESS): 200\n", "")
	f.Add([]byte(`{"type":"result","cell":"clang-19/6.1.0-50-cl`), "clang-19/6.1.0-50-cloud-amd64/bpf", -1, 1,
		"libbpf: prog 'x': BPF program load failed: Permission denied\nR9 invalid mem access 'scalar'\n", "")
	f.Add([]byte("{\"type\":\"result\",\"cell\":\"x\",\"splat\":[\"WARNING: CPU: 0 PID: 1 at x\"]}\n{\"type\":\"done\"}\n"),
		"x", 40, 0, "", "insmod: ERROR: could not insert module: Invalid module format")
	f.Add([]byte("[    2.1] Kernel panic - not syncing: Fatal exception\n{}\n{\"type\":7}\n"), "k", 0, 95, "not supported\n", "")
	f.Fuzz(func(t *testing.T, noise []byte, cell string, events, exit int, output, load string) {
		want := &Record{Type: TypeResult, Cell: cell, Events: events, Exit: exit, Output: output, Load: load,
			Kmsg: strings.Split(output, "\n"), Opened: events%2 == 0, TimedOut: exit%3 == 0}
		var in bytes.Buffer
		in.Write(noise)
		in.WriteByte('\n')
		if err := Encode(&in, want); err != nil {
			t.Fatal(err)
		}
		rep, err := ReadReport(&in)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		// Invalid UTF-8 in a string is replaced when it is encoded: the
		// cell ID and the record are compared as they travel, in JSON.
		wb, _ := json.Marshal(want)
		var sent Record
		if err := json.Unmarshal(wb, &sent); err != nil {
			t.Fatal(err)
		}
		got := rep.Results[sent.Cell]
		if got == nil {
			t.Fatalf("the last record (cell %q) was not read back; results %q", sent.Cell, keys(rep.Results))
		}
		sb, _ := json.Marshal(&sent)
		gb, _ := json.Marshal(got)
		if !bytes.Equal(sb, gb) {
			t.Fatalf("record changed on the way:\n got %s\nwant %s", gb, sb)
		}
		for id, rec := range rep.Results {
			for _, vmErr := range []error{nil, errors.New("deadline")} {
				o := Classify(rec, slices.Contains(rep.Started, id), string(noise), vmErr, 30)
				checkOutcome(t, o)
			}
		}
		checkOutcome(t, Classify(nil, true, string(noise), nil, 30))
	})
}

// checkOutcome fails t when o is not an outcome results.json can record.
func checkOutcome(t *testing.T, o Outcome) {
	t.Helper()
	switch o.Status {
	case Pass, Skip, Error:
		if o.Kind != "" {
			t.Fatalf("%s with a kind: %+v", o.Status, o)
		}
	case Fail:
		if !slices.Contains([]string{KindLoad, KindEvents, KindPanic, KindWarn, KindExit}, o.Kind) {
			t.Fatalf("fail without a known kind: %+v", o)
		}
	default:
		t.Fatalf("unknown status: %+v", o)
	}
	if o.Reason == "" && o.Status != Pass {
		t.Fatalf("%s without a reason: %+v", o.Status, o)
	}
}

func keys(m map[string]*Record) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
