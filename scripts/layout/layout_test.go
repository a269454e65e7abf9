package layout

import "testing"

// The paths README's Outputs table documents, for each kind of cell.
func TestPaths(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Artifact("gcc-12", "6.1.0-50-cloud-amd64", Kmod, ""), "driver/gcc-12/6.1.0-50-cloud-amd64.ko"},
		{Artifact("clang-19", "6.1.0-50-cloud-amd64", BPF, ""), "driver/clang-19/6.1.0-50-cloud-amd64.o"},
		{Artifact("clang-19", "6.1.0-50-cloud-amd64", ModernBPF, ""), "driver/clang-19/modern_bpf/scap-open"},
		{DriverOK("gcc-12", "6.1.0-50-cloud-amd64", Kmod), "driver_ok/gcc-12/6.1.0-50-cloud-amd64.ko"},
		{DriverOK("clang-19", "7.3.4+deb13-cloud-amd64", BPF), "driver_ok/clang-19/7.3.4+deb13-cloud-amd64.o"},
		{DriverOK("clang-19", "7.3.4+deb13-cloud-amd64", ModernBPF), ""},
		{CompileLog("gcc-12", "6.1.0-50-cloud-amd64", Kmod, ""), "logs/compile/gcc-12/6.1.0-50-cloud-amd64.kmod.log"},
		{CompileLog("clang-19", "6.1.0-50-cloud-amd64", ModernBPF, ""), "logs/compile/clang-19/modern_bpf.log"},
		{TestLog("clang-19", "6.1.0-50-cloud-amd64", ModernBPF), "logs/test/6.1.0-50-cloud-amd64/clang-19_modern_bpf.log"},
		{ContainerLog("trixie"), "logs/container/trixie.log"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}
