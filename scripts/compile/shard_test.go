package compile

import (
	"testing"

	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
)

// A shard's results keep only its own kernels' cells; a kernel that failed
// before its release was known is named by its grid name, as its cells are.
func TestDropOtherKernels(t *testing.T) {
	f := &results.File{}
	for _, k := range []string{"6.1.0-50-cloud-amd64", "6.12.117+deb13-cloud-amd64", "broken"} {
		f.SetCompile(k, "gcc-12", "kmod", results.Compile{Status: results.CompileOK})
	}
	n := dropOtherKernels(f, []kernel.Entry{{UnameR: "6.1.0-50-cloud-amd64"}, {Name: "broken", Error: "404"}})
	if n != 1 || len(f.Cells) != 2 || f.Find("6.12.117+deb13-cloud-amd64", "gcc-12", "kmod") != nil {
		t.Errorf("dropped %d, left %+v", n, f.Cells)
	}
}
