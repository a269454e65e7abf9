package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vmTargets are the targets a libs build dir must offer.
var vmTargets = []string{"vm-container", "vm-kernel", "vm-init", "vm-compile", "vm-centos7",
	"vm-ubuntu", "vm-result", "vm-cleanup", "vm-all", "vm-doctor", "vm-loop", "vm-bench"}

// configureParent configures, with real cmake, a parent project that
// includes this directory the way libs does.
func configureParent(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("cmake"); err != nil {
		t.Skip("cmake not installed (go run mage.go setup installs it)")
	}
	here, _ := filepath.Abs(".")
	parent := t.TempDir()
	lists := `cmake_minimum_required(VERSION 3.12)
project(parent NONE)
option(CREATE_TEST_TARGETS "" OFF)
option(ENABLE_VM_TESTS "" OFF)
if(CREATE_TEST_TARGETS AND ENABLE_VM_TESTS)
	add_subdirectory("` + here + `" test-vm)
endif()
`
	if err := os.WriteFile(filepath.Join(parent, "CMakeLists.txt"), []byte(lists), 0o644); err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(parent, "build")
	run(t, parent, "cmake", "-S", parent, "-B", build, "-DCREATE_TEST_TARGETS=ON", "-DENABLE_VM_TESTS=ON", "-DVM_JOBS=2")
	return build
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

func TestCMakeDefinesEveryTarget(t *testing.T) {
	build := configureParent(t)
	help := run(t, build, "make", "help")
	for _, target := range vmTargets {
		if !strings.Contains(help, "... "+target+"\n") {
			t.Errorf("make help does not list %s:\n%s", target, help)
		}
	}
}

// TestE2ECMakeRunsMage builds the mage runner through CMake, runs
// vm-doctor on this (set-up) host, and checks that a bad setting fails at
// once with the variable's name.
func TestE2ECMakeRunsMage(t *testing.T) {
	if os.Getenv("VM_E2E") != "1" {
		t.Skip("slow end-to-end test: set VM_E2E=1")
	}
	build := configureParent(t)
	doctor := run(t, build, "make", "vm-doctor")
	if !strings.Contains(doctor, "docker engine") {
		t.Errorf("vm-doctor output lacks the docker check:\n%s", doctor)
	}
	// The runner is built: a second target must not rebuild it.
	if again := run(t, build, "make", "vm-doctor"); strings.Contains(again, "Building the test/vm mage runner") {
		t.Errorf("second make rebuilt the mage runner:\n%s", again)
	}

	cmd := exec.Command(filepath.Join(build, "test-vm", "vm-mage"), "compile")
	cmd.Env = append(os.Environ(), "VM_JOBS=zero")
	start := time.Now()
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "VM_JOBS") {
		t.Fatalf("VM_JOBS=zero compile: err %v, output:\n%s", err, b)
	}
	t.Logf("VM_JOBS=zero failed in %v: %s", time.Since(start), strings.TrimSpace(string(b)))
}
