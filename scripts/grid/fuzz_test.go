package grid

import (
	"strings"
	"testing"
)

// FuzzParse: any input either parses into kernels with packages, or fails
// with an error that names the file.
func FuzzParse(f *testing.F) {
	f.Add(`{"headers": ["apt:bookworm/linux-headers-6.1.0-50-cloud-amd64"], "kernels": ["apt:linux-image-6.1.0-50-cloud-amd64=6.1.176-1"]}`)
	f.Add("# c\n{\"name\": \"x\", \"headers\": [\"a.deb\"], \"kernels\": [\"file:///b.rpm\"]}\n")
	f.Add(`{"headers": ["https://h/x_1_all.deb"], "kernels": ["http://h/y.rpm"], "vm": "centos7"}`)
	f.Fuzz(func(t *testing.T, text string) {
		g, err := Parse(strings.NewReader(text), "/d/kernels.txt")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kernels.txt") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, k := range g.Kernels {
			if len(k.Headers) == 0 || len(k.Kernels) == 0 || k.Name == "" || k.VM == "" || k.Line < 1 {
				t.Fatalf("incomplete kernel %+v", k)
			}
		}
	})
}
