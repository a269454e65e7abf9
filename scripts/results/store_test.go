package results

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestLoadMissingIsEmpty(t *testing.T) {
	f, err := Load(filepath.Join(t.TempDir(), "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cells) != 0 || f.Schema != SchemaVersion {
		t.Fatalf("missing file loaded as %+v", f)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{\n  \"schema\": 1,\n  \"cells\": [\n    {,}\n  ]\n}\n"), 0o644)
	_, err := Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":4:") {
		t.Errorf("syntax error: got %v, want the file and line 4", err)
	}
	newer := filepath.Join(dir, "newer.json")
	os.WriteFile(newer, []byte(`{"schema": 99, "cells": []}`), 0o644)
	if _, err := Load(newer); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer schema: got %v", err)
	}
	nokey := filepath.Join(dir, "nokey.json")
	os.WriteFile(nokey, []byte(`{"schema": 1, "cells": [{"kernel": "6.1.0-50-cloud-amd64", "driver": "kmod"}]}`), 0o644)
	if _, err := Load(nokey); err == nil || !strings.Contains(err.Error(), "cell 0") {
		t.Errorf("cell without compiler: got %v", err)
	}
}

func TestUpdateRoundTripAndAbort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "results.json")
	err := Update(path, func(f *File) error {
		f.SetCompile("6.1.0-50-cloud-amd64", "clang-14", "bpf", Compile{Status: CompileOK})
		f.SetCompile("5.10.0-32-cloud-amd64", "gcc-12", "kmod", Compile{Status: CompileFail, Reason: "x"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err = Update(path, func(f *File) error {
		f.Cells = nil
		return fmt.Errorf("stage failed")
	})
	if err == nil || err.Error() != "stage failed" {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("a failed update changed the file")
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cells) != 2 || f.Cells[0].Kernel != "5.10.0-32-cloud-amd64" {
		t.Fatalf("cells not saved in kernel order: %+v", f.Cells)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".results.json.tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// The concurrency test runs this test binary again as a second writer; in
// that child, TestHelperWriter does the writing.
const (
	helperPath = "RESULTS_HELPER_PATH"
	helperName = "RESULTS_HELPER_COMPILER"
)

func TestHelperWriter(t *testing.T) {
	path := os.Getenv(helperPath)
	if path == "" {
		t.Skip("helper process of TestUpdateConcurrent")
	}
	addCells(t, path, os.Getenv(helperName), 40)
}

func addCells(t *testing.T, path, compiler string, n int) {
	for i := range n {
		err := Update(path, func(f *File) error {
			f.SetCompile("6.1.0-"+strconv.Itoa(i)+"-cloud-amd64", compiler, "kmod", Compile{Status: CompileOK})
			return nil
		})
		if err != nil {
			t.Error(err)
			return
		}
	}
}

func TestUpdateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	const goroutines, each, children = 8, 25, 2

	var procs []*exec.Cmd
	for p := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperPath+"="+path, helperName+"=gcc-"+strconv.Itoa(100+p))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() { addCells(t, path, "clang-"+strconv.Itoa(g), each) })
	}
	wg.Wait()
	for _, cmd := range procs {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("second writer process: %v", err)
		}
	}

	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := goroutines*each + children*40; len(f.Cells) != want {
		t.Fatalf("got %d cells, want %d: records were lost", len(f.Cells), want)
	}
	for p := range children {
		if f.Find("6.1.0-39-cloud-amd64", "gcc-"+strconv.Itoa(100+p), "kmod") == nil {
			t.Errorf("the last record of writer process %d is missing", p)
		}
	}
}
