package compile

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/container"
	"github.com/falcosecurity/libs/test/vm/scripts/internal/e2etest"
	"github.com/falcosecurity/libs/test/vm/scripts/kernel"
	"github.com/falcosecurity/libs/test/vm/scripts/layout"
	"github.com/falcosecurity/libs/test/vm/scripts/results"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// TestE2ERemoteEngine compiles one cell (gcc-12 x the CI grid's 6.1
// kernel, kmod) and the shared scap-open twice, on the system engine and
// on a second dockerd that listens on tcp://127.0.0.1 (remote by its
// scheme, so the sysroot is copied through the Engine API, not
// bind-mounted), each into its own build directory: the same module, the
// same cache keys, a log that says the sysroot was copied, and no
// container left on either engine.
func TestE2ERemoteEngine(t *testing.T) {
	local, k61 := remoteConfig(t)
	cell := "gcc-12/" + k61 + "/kmod"
	ctx := t.Context()
	out := ui.New(os.Stderr)
	systemHost := os.Getenv("DOCKER_HOST")
	start := time.Now()
	if err := Run(ctx, local, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("local engine: %s", time.Since(start).Round(time.Second))

	// The second engine does not see the kernel's sysroot: a bind mount
	// of it would be an empty directory, and the compile would fail.
	lm, err := kernel.LoadManifest(local.BuildDir)
	if err != nil || len(lm.Kernels) != 1 || lm.Kernels[0].Sysroot == "" {
		t.Fatalf("manifest of %s: %v", local.BuildDir, err)
	}
	host := tcpEngine(t, local.Compilers, lm.Kernels[0].Sysroot)
	remote := *local
	remote.BuildDir = t.TempDir()
	copyManifest(t, local.BuildDir, remote.BuildDir)
	t.Setenv("DOCKER_HOST", host)
	start = time.Now()
	if err := Run(ctx, &remote, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("remote engine %s: %s", host, time.Since(start).Round(time.Second))

	lc, rc := cellMap(t, local)[cell], cellMap(t, &remote)[cell]
	if lc.Status != results.CompileOK || rc.Status != results.CompileOK {
		t.Fatalf("%s: local %s (%s), remote %s (%s)", cell, lc.Status, lc.Reason, rc.Status, rc.Reason)
	}
	lv, rv := vermagic(t, local.Path(lc.Artifact)), vermagic(t, remote.Path(rc.Artifact))
	if lv != rv || !strings.HasPrefix(rv, k61+" ") {
		t.Errorf("vermagic: local %q, remote %q", lv, rv)
	}
	// The image is copied by docker save and load, which keep its ID: the
	// keys, which name no host path, are equal.
	if lc.Key != rc.Key {
		t.Errorf("%s: key %s on the local engine, %s on the remote one", cell, lc.Key, rc.Key)
	}
	lk, lerr := os.ReadFile(local.Path(layout.ScapOpenBin + ".key"))
	rk, rerr := os.ReadFile(remote.Path(layout.ScapOpenBin + ".key"))
	if lerr != nil || rerr != nil || string(lk) != string(rk) {
		t.Errorf("scap-open keys: local %q (%v), remote %q (%v)", lk, lerr, rk, rerr)
	}

	m, err := kernel.LoadManifest(local.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	llog, _ := os.ReadFile(local.Path(lc.Log))
	rlog, _ := os.ReadFile(remote.Path(rc.Log))
	for _, k := range m.Kernels {
		if k.UnameR != k61 {
			continue
		}
		for _, mp := range k.Mounts {
			dir := filepath.Join(k.Sysroot, mp)
			if !strings.Contains(string(llog), "# mount "+dir+" at "+mp+" (read-only)") || strings.Contains(string(llog), "# copied ") {
				t.Errorf("the local log does not bind-mount %s", dir)
			}
			copied := "# copied " + dir + " to " + mp + ": "
			i := strings.Index(string(rlog), copied)
			if i < 0 {
				t.Fatalf("the remote log does not say %s was copied:\n%s", dir, rlog)
			}
			t.Logf("| %s", strings.SplitN(string(rlog[i:]), "\n", 2)[0])
		}
	}

	for name, cfg := range map[string]*config.Config{"local": local, "remote": &remote} {
		if name == "local" {
			t.Setenv("DOCKER_HOST", systemHost)
		} else {
			t.Setenv("DOCKER_HOST", host)
		}
		e, err := container.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.Remote() != (name == "remote") {
			t.Errorf("%s engine %s: Remote() = %v", name, e.Host(), e.Remote())
		}
		left, err := e.Remaining(ctx, container.LabelBuild+"="+cfg.BuildDir)
		e.Close()
		if err != nil || len(left) != 0 {
			t.Errorf("containers left on the %s engine: %v %v", name, left, err)
		}
	}
}

// remoteConfig is a private build directory whose manifest holds only the
// CI grid's 6.1 kernel (fetched into the shared end-to-end build
// directory), with compilers gcc-12 and driver kmod, and that kernel's
// uname -r.
func remoteConfig(t *testing.T) (*config.Config, string) {
	t.Helper()
	cfg := e2eSetup(t, map[string]string{"VM_COMPILERS": "gcc-12", "VM_DRIVERS": "kmod", "VM_JOBS": "1"})
	k61, _ := e2etest.CIKernels(t, cfg.BuildDir)
	m, err := kernel.LoadManifest(cfg.BuildDir)
	if err != nil {
		t.Fatal(err)
	}
	var keep []kernel.Entry
	for _, k := range m.Kernels {
		if k.UnameR == k61 {
			keep = append(keep, k)
		}
	}
	m.Kernels = keep
	build := t.TempDir()
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(build, layout.Manifest), b, 0o644); err != nil {
		t.Fatal(err)
	}
	libs := t.TempDir()
	copyTree(t, filepath.Join(repoRoot(t), config.StandInDir), libs)
	cfg.BuildDir, cfg.LibsDir, cfg.StandIn = build, libs, true
	return cfg, k61
}

func copyManifest(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, layout.Manifest))
	if err == nil {
		err = os.WriteFile(filepath.Join(to, layout.Manifest), b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// tcpEngine starts a second engine (e2etest.TCPEngine, its sysroots under
// hide covered) and copies into it from the system engine (docker save,
// then load through the Engine API) each builder image that compilers need
// (as the compile stage asks for them: every image that has one) when it
// lacks it. It returns the engine's DOCKER_HOST.
func tcpEngine(t *testing.T, compilers []string, hide string) string {
	t.Helper()
	host := e2etest.TCPEngine(t, "engine-tcp", hide)
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	system, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer system.Close()
	specs, err := container.Specs()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range container.Needed(specs, compilers, nil) {
		if _, err := api.ImageInspect(t.Context(), s.Tag()); err == nil {
			continue
		}
		start := time.Now()
		rc, err := system.ImageSave(t.Context(), []string{s.Tag()})
		if err != nil {
			t.Fatalf("copy %s from the system engine, which lacks it: %v", s.Tag(), err)
		}
		resp, err := api.ImageLoad(t.Context(), rc, client.ImageLoadWithQuiet(true))
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, err := api.ImageInspect(t.Context(), s.Tag()); err != nil {
			t.Fatalf("load %s: %v", s.Tag(), err)
		}
		t.Logf("copied %s into the engine at %s in %s", s.Tag(), host, time.Since(start).Round(time.Second))
	}
	return host
}
