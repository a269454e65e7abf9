package check

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// The GitHub Actions workflow passes actionlint: syntax, expressions and
// their types, contexts such as matrix and strategy, action inputs, and
// (where shellcheck is installed) the scripts of its run steps.
func TestWorkflowLints(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflow under .github/workflows: %v", err)
	}
	shellcheck, _ := exec.LookPath("shellcheck")
	if shellcheck == "" {
		t.Log("shellcheck not installed: the run steps' scripts are not checked")
	}
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Shellcheck: shellcheck, Oneline: true, WorkingDir: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		errs, err := l.LintFile(f, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range errs {
			t.Errorf("%s:%d:%d: %s [%s]", filepath.Base(f), e.Line, e.Column, e.Message, e.Kind)
		}
	}
}

// The workflow runs the loop on shards and merges their results with the
// settings this suite reads.
func TestWorkflowShardsAndMerges(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", ".github", "workflows", "vm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"VM_SHARD: ${{ matrix.shard }}/${{ strategy.job-total }}",
		"go run mage.go loop",
		"VM_RESULTS: shards/*/results.json",
		`>> "$GITHUB_STEP_SUMMARY"`,
		"test/vm/build/results.junit.xml",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("vm.yml lacks %q", want)
		}
	}
}
