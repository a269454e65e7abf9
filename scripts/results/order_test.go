package results

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCompareKernels(t *testing.T) {
	want := []string{
		"3.10.0-957.el7.x86_64",
		"3.10.0-1160.el7.x86_64",
		"4.16.18-041618-generic",
		"5.10.0-4-cloud-amd64",
		"5.10.0-32-cloud-amd64",
		"5.10.16-1.el7.elrepo.x86_64",
		"5.15.0-91-generic",
		"6.1.0-50-cloud-amd64",
		"6.1.0-rc3-amd64",
		"6.12.117+deb13-cloud-amd64",
		"7.3.4+deb13-amd64",
		"7.3.4+deb13-cloud-amd64",
	}
	for seed := range uint64(20) {
		got := slices.Clone(want)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		slices.SortFunc(got, CompareKernels)
		if !slices.Equal(got, want) {
			t.Fatalf("sorted kernels:\n got %q\nwant %q", got, want)
		}
	}
	if CompareKernels("6.1.0-50-cloud-amd64", "6.1.0-050-cloud-amd64") == 0 {
		t.Error("different names compare equal: the order is not total")
	}
}

func TestCompareCompilers(t *testing.T) {
	want := []string{"gcc-9", "gcc-10", "gcc-12", "gcc-14", "clang-7", "clang-11", "clang-19", "icc-1"}
	got := []string{"clang-19", "gcc-12", "icc-1", "clang-7", "gcc-9", "clang-11", "gcc-14", "gcc-10"}
	slices.SortFunc(got, CompareCompilers)
	if !slices.Equal(got, want) {
		t.Fatalf("sorted compilers:\n got %q\nwant %q", got, want)
	}
}

func TestCompareDrivers(t *testing.T) {
	got := []string{"modern_bpf", "x", "kmod", "bpf"}
	slices.SortFunc(got, CompareDrivers)
	if want := []string{"kmod", "bpf", "modern_bpf", "x"}; !slices.Equal(got, want) {
		t.Fatalf("sorted drivers: got %q, want %q", got, want)
	}
}
