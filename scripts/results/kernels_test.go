package results

import (
	"path/filepath"
	"testing"
)

func TestKernelRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	err := Update(path, func(f *File) error {
		f.SetKernel(Kernel{Kernel: "6.12.117+deb13-cloud-amd64", Name: "debian13-6.12", Facts: &KernelFacts{Compiler: "gcc-13"}})
		f.SetKernel(Kernel{Kernel: "6.1.0-50-cloud-amd64", Facts: &KernelFacts{Compiler: "gcc-12", BTF: true, BPFJIT: true, SyscallTracepoints: true}})
		// Recorded again by a later run: replaced, not added.
		f.SetKernel(Kernel{Kernel: "6.12.117+deb13-cloud-amd64", Name: "debian13-6.12", Facts: &KernelFacts{Compiler: "gcc-14", BTF: true, PreemptRT: true, BPFJIT: true, SyscallTracepoints: true}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Kernels) != 2 || f.Kernels[0].Kernel != "6.1.0-50-cloud-amd64" {
		t.Fatalf("kernel records %+v, want two, by version", f.Kernels)
	}
	for k, want := range map[string]string{
		"6.1.0-50-cloud-amd64":       "gcc-12 · BTF",
		"6.12.117+deb13-cloud-amd64": "gcc-14 · BTF · RT",
		"5.10.0-32-cloud-amd64":      "",
	} {
		if got := f.FactsOf(k).Label(); got != want {
			t.Errorf("%s: label %q, want %q", k, got, want)
		}
	}
	if got := (&KernelFacts{BTF: true, BPFJIT: true, SyscallTracepoints: true}).Label(); got != "cc ? · BTF" {
		t.Errorf("unknown compiler: label %q", got)
	}
}
