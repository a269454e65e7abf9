// Package setup checks the host for what the suite needs (the doctor) and,
// on Debian as root, installs what is missing and starts the Docker engine.
// Each missing piece is reported on one line with the command that fixes it.
package setup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	goversion "github.com/hashicorp/go-version"

	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// MinGo is the oldest Go toolchain the suite builds with.
const MinGo = "1.26"

// Purpose selects which requirements matter.
type Purpose int

const (
	// Run is what the pipeline needs.
	Run Purpose = iota
	// Test is what the test suite needs on top (real sshd, rpmbuild, vagrant).
	Test
)

// Requirement is one thing the host must have.
type Requirement struct {
	Name     string   // what a person calls it
	Optional bool     // reported, never an error (except ForTests ones when testing)
	ForTests bool     // needed by the tests; outside them only shown when Optional
	Packages []string // Debian packages that provide it
	// Check returns a short description (a version) or an error saying
	// what is wrong.
	Check func(ctx context.Context) (string, error)
	// Fix is the command that fixes it when Packages alone do not say.
	Fix string
	// Arch, when set, makes the requirement one of grids with kernels of
	// that architecture (and of the tests, which have some): required
	// then, shown as optional otherwise.
	Arch string
}

// Requirements lists everything the doctor checks, in order.
func Requirements() []Requirement {
	return []Requirement{
		{Name: "go", Check: checkGo, Fix: "install Go >= " + MinGo + " from https://go.dev/dl/"},
		{Name: "docker engine", Packages: []string{"docker.io"}, Check: checkDocker},
		{Name: "qemu-system-x86_64", Packages: []string{"qemu-system-x86"}, Check: versionOf("qemu-system-x86_64", "--version")},
		{Name: "qemu-system-aarch64", Arch: "arm64", Packages: []string{"qemu-system-arm"}, Check: versionOf("qemu-system-aarch64", "--version"),
			Fix: "apt-get install qemu-system-arm (arm64 kernels of the grid boot under it)"},
		{Name: "arm64 cross builders", Arch: "arm64", Optional: true, Check: checkCrossImages,
			Fix: "go run mage.go container builds them (the aarch64 cross gccs and arm64 libraries, in testvm-builder:<suite>-arm64 images) when the grid has arm64 kernels"},
		{Name: "cmake", Packages: []string{"cmake"}, Check: versionOf("cmake", "--version")},
		{Name: "debootstrap", Packages: []string{"debootstrap"}, Check: versionOf("debootstrap", "--version")},
		{Name: "gpgv", Packages: []string{"gpgv", "debian-archive-keyring"}, Check: fileCheck("/usr/share/keyrings/debian-archive-keyring.gpg", "gpgv")},
		{Name: "make", Packages: []string{"make"}, Check: versionOf("make", "--version")},
		{Name: "rpmbuild", ForTests: true, Packages: []string{"rpm"}, Check: versionOf("rpmbuild", "--version")},
		{Name: "libbpf/libelf headers", ForTests: true, Packages: []string{"gcc", "g++", "libbpf-dev", "libelf-dev", "zlib1g-dev", "pkg-config", "libgtest-dev"},
			Check: fileCheck("/usr/include/bpf/libbpf.h", "cc", "pkg-config")},
		{Name: "clang", ForTests: true, Packages: []string{"clang", "llvm"}, Check: versionOf("clang", "--version")},
		{Name: "shellcheck", ForTests: true, Packages: []string{"shellcheck"}, Check: versionOf("shellcheck", "--version")},
		{Name: "sshd", ForTests: true, Packages: []string{"openssh-server"}, Check: fileCheck("/usr/sbin/sshd")},
		{Name: "vagrant", Optional: true, ForTests: true, Packages: []string{"vagrant"}, Check: versionOf("vagrant", "--version")},
		{Name: "vagrant-libvirt", Optional: true, ForTests: true,
			Packages: []string{"vagrant-libvirt", "libvirt-daemon-system", "qemu-utils", "dnsmasq-base", "fdisk", "e2fsprogs"},
			Check:    fileCheck("/usr/share/vagrant-plugins/plugins.d/vagrant-libvirt.json", "libvirtd", "virtlogd", "virsh", "qemu-img", "sfdisk", "mkfs.ext4")},
		{Name: "VirtualBox", Optional: true, Check: versionOf("VBoxManage", "--version"),
			Fix: "install VirtualBox from https://www.virtualbox.org/wiki/Downloads (optional: VM_PROVIDER=qemu needs none)"},
	}
}

// For says whether the requirement is required for purpose and a grid of
// arches, and whether it is shown at all: test-only tools are required by
// the tests and, when also Optional, shown as optional outside them; an
// architecture's tools are required by the grids that have it.
func (r Requirement) For(purpose Purpose, arches []string) (required, shown bool) {
	if r.ForTests {
		return purpose == Test, purpose == Test || r.Optional
	}
	if r.Arch != "" {
		return !r.Optional && (purpose == Test || slices.Contains(arches, r.Arch)), true
	}
	return !r.Optional, true
}

// Result is the outcome of one requirement's check.
type Result struct {
	Requirement
	Required bool // for the purpose checked
	Detail   string
	Err      error
}

// Doctor checks every requirement for purpose and a grid of arches, prints
// one line each, and returns an error listing the required pieces that are
// missing.
func Doctor(ctx context.Context, purpose Purpose, arches []string, out *ui.Printer) ([]Result, error) {
	var res []Result
	var missing []string
	for _, r := range Requirements() {
		required, shown := r.For(purpose, arches)
		if !shown {
			continue
		}
		detail, err := r.Check(ctx)
		res = append(res, Result{Requirement: r, Required: required, Detail: detail, Err: err})
		switch {
		case err == nil:
			out.Linef("ok       %-20s %s", r.Name, detail)
		case !required && r.Arch != "":
			out.Linef("optional %-20s %v; needed for %s kernels in the grid: %s", r.Name, err, r.Arch, r.fix())
		case !required:
			out.Linef("optional %-20s %v; to add it: %s", r.Name, err, r.fix())
		default:
			out.Linef("MISSING  %-20s %v; fix: %s", r.Name, err, r.fix())
			missing = append(missing, r.Name)
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("host is not ready: missing %s (run `go run mage.go setup` as root on Debian, or the fix commands above)", strings.Join(missing, ", "))
	}
	return res, nil
}

// Install installs what Doctor finds missing for purpose and a grid of
// arches (apt-get as root on Debian), starts the Docker engine when it is
// installed but not running, and checks again.
func Install(ctx context.Context, purpose Purpose, arches []string, out *ui.Printer) error {
	res, err := Doctor(ctx, purpose, arches, ui.Discard())
	if err == nil {
		out.Linef("setup: host is ready")
		return nil
	}
	var pkgs []string
	dockerDown := false
	for _, r := range res {
		if r.Err == nil || !r.Required {
			continue
		}
		if r.Name == "docker engine" && onPath("dockerd") {
			dockerDown = true
			continue
		}
		pkgs = append(pkgs, r.Packages...)
	}
	if len(pkgs) > 0 {
		if os.Geteuid() != 0 || !onPath("apt-get") {
			return fmt.Errorf("setup: cannot install %s here (needs root on Debian); install them and re-run: %w", strings.Join(pkgs, " "), err)
		}
		if err := aptInstall(ctx, out, pkgs); err != nil {
			return err
		}
		dockerDown = true // a fresh docker.io install needs its engine started
	}
	if dockerDown {
		if _, err := checkDocker(ctx); err != nil {
			if err := StartDocker(ctx, out); err != nil {
				return err
			}
		}
	}
	_, err = Doctor(ctx, purpose, arches, out)
	return err
}

func aptInstall(ctx context.Context, out *ui.Printer, pkgs []string) error {
	out.Linef("setup: apt-get install %s", strings.Join(pkgs, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"update", "-qq"},
		append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("setup: apt-get %s: %w\n%s", args[0], err, tail(string(b), 20))
		}
	}
	return nil
}

// StartDocker starts the Docker engine that DOCKER_HOST names: the
// system's through systemd when it runs, else dockerd detached in its own
// session, logging to /var/log/testvm-dockerd.log; an engine of its own
// when DOCKER_HOST is another unix socket (see PrivateEngineDir). An
// engine on another machine (tcp://, ssh://) is not started: the error says
// so. It waits until the engine answers.
func StartDocker(ctx context.Context, out *ui.Printer) error {
	if os.Geteuid() != 0 {
		return errors.New("setup: the Docker engine is not running; start it as root: dockerd (or systemctl start docker)")
	}
	host, dir, private := PrivateEngineDir()
	if !strings.HasPrefix(host, "unix://") {
		// tcp:// or ssh://: an engine on another machine (see the
		// container package's OnThisHost); starting this machine's would
		// not bring it.
		return fmt.Errorf("setup: the Docker engine at %s does not answer and is not on this host: start it there (dockerd, or systemctl start docker), or unset DOCKER_HOST to use this host's", host)
	}
	if private {
		if err := startPrivateDocker(out, host, dir); err != nil {
			return err
		}
	} else if _, err := os.Stat("/run/systemd/system"); err == nil {
		out.Linef("setup: systemctl start docker")
		if b, err := exec.CommandContext(ctx, "systemctl", "start", "docker").CombinedOutput(); err != nil {
			return fmt.Errorf("setup: systemctl start docker: %w: %s", err, b)
		}
	} else {
		logPath := "/var/log/testvm-dockerd.log"
		out.Linef("setup: starting dockerd (log: %s)", logPath)
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		defer logf.Close()
		cmd := exec.Command(lookPath("dockerd"))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("setup: start dockerd: %w", err)
		}
		_ = cmd.Process.Release()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := checkDocker(ctx); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("setup: the Docker engine did not come up in 60 s: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// PrivateEngineDir tells whether DOCKER_HOST names an engine of the
// suite's own: a unix socket other than the system engine's,
// unix://DIR/docker.sock. Such an engine keeps everything in DIR
// (data/, exec/, dockerd.pid, dockerd.log), so it runs beside the system
// engine without touching it: no bridge network and no firewall rules
// (those are the system engine's), which the suite's containers do not
// use. Its builder images are loaded into it, or built from base images
// whose Dockerfile steps need no network. The reliability drills stop and
// restart one.
func PrivateEngineDir() (host, dir string, ok bool) {
	cli, err := client.NewClientWithOpts(client.FromEnv)
	if err != nil {
		return "", "", false
	}
	defer cli.Close()
	host = cli.DaemonHost()
	sock, isUnix := strings.CutPrefix(host, "unix://")
	if !isUnix || filepath.Base(sock) != "docker.sock" {
		return host, "", false
	}
	switch filepath.Clean(sock) {
	case "/var/run/docker.sock", "/run/docker.sock":
		return host, "", false
	}
	return host, filepath.Dir(sock), true
}

// startPrivateDocker starts the engine of its own at host with its state
// in dir, detached in its own session.
func startPrivateDocker(out *ui.Printer, host, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	logPath := filepath.Join(dir, "dockerd.log")
	out.Linef("setup: starting dockerd at %s (state and log in %s)", host, dir)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer logf.Close()
	bridge, err := EngineBridge(dir)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	cmd := exec.Command(lookPath("dockerd"), "--host", host,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--bridge", bridge, "--iptables=false", "--ip6tables=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("setup: start dockerd: %w", err)
	}
	return cmd.Process.Release()
}

// EngineBridge makes sure a Linux bridge of its own exists for a second
// engine with its state in dir, and returns its name, for dockerd's
// --bridge. A second dockerd must not run with --bridge none: it then
// deletes the interface docker0 at start, the system engine's default
// bridge, and every container or image build of the system engine that
// needs a network fails after it ("could not find bridge docker0").
func EngineBridge(dir string) (string, error) {
	name, err := bridgeName(dir)
	if err != nil {
		return "", err
	}
	if _, err := net.InterfaceByName(name); err == nil {
		return name, nil
	}
	for _, args := range [][]string{{"link", "add", name, "type", "bridge"}, {"link", "set", name, "up"}} {
		if out, err := exec.Command(lookPath("ip"), args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("bridge %s for the engine in %s: ip %s: %v: %s", name, dir, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return name, nil
}

// bridgeName is the bridge EngineBridge gives the engine of dir.
func bridgeName(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return "tvm" + hex.EncodeToString(sum[:])[:8], nil // at most 15 characters
}

// RemoveEngineBridges deletes the bridges EngineBridge made for the
// engines whose state is under root (a directory holding dockerd.log, up
// to three levels down) and that no longer run (no live dockerd.pid); it
// returns their names. An engine still running keeps its bridge.
func RemoveEngineBridges(root string) ([]string, error) {
	var removed []string
	var errs []error
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(root, p); strings.Count(rel, string(filepath.Separator)) >= 3 || d.Name() == "data" || d.Name() == "exec" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "dockerd.log" {
			return nil
		}
		dir := filepath.Dir(p)
		if b, err := os.ReadFile(filepath.Join(dir, "dockerd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
				return nil // running
			}
		}
		name, err := bridgeName(dir)
		if err != nil {
			return nil
		}
		if _, err := net.InterfaceByName(name); err != nil {
			return nil
		}
		if out, err := exec.Command(lookPath("ip"), "link", "del", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("bridge %s of the engine in %s: ip link del: %v: %s", name, dir, err, strings.TrimSpace(string(out))))
			return nil
		}
		removed = append(removed, name)
		return nil
	})
	return removed, errors.Join(errs...)
}

func (r Requirement) fix() string {
	if r.Fix != "" {
		return r.Fix
	}
	if r.Name == "docker engine" {
		return "apt-get install -y docker.io && dockerd & (or systemctl start docker; on macOS start Docker Desktop)"
	}
	return "apt-get install -y " + strings.Join(r.Packages, " ")
}

func checkGo(context.Context) (string, error) {
	have := strings.TrimPrefix(runtime.Version(), "go")
	v, err := goversion.NewVersion(strings.Fields(have)[0])
	if err != nil {
		return have, nil // a development toolchain
	}
	if v.LessThan(goversion.Must(goversion.NewVersion(MinGo))) {
		return "", fmt.Errorf("go %s is older than %s", have, MinGo)
	}
	return "go" + have, nil
}

// DockerUnreachable is the one line printed when the engine does not answer.
const DockerUnreachable = "the Docker daemon is unreachable (start it: `dockerd &` as root, or `systemctl start docker`; or run `go run mage.go setup`)"

// askEngine calls ask with a client of the engine DOCKER_HOST names and a
// context that gives it 5 s.
func askEngine(ctx context.Context, ask func(context.Context, *client.Client) (string, error)) (string, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return ask(ctx, cli)
}

func checkDocker(ctx context.Context) (string, error) {
	return askEngine(ctx, engineVersion)
}

func engineVersion(ctx context.Context, cli *client.Client) (string, error) {
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		if !onPath("dockerd") && !onPath("docker") {
			return "", errors.New("not installed")
		}
		return "", errors.New("installed but the daemon is unreachable")
	}
	return "engine " + v.Version + ", API " + v.APIVersion, nil
}

// checkCrossImages lists the arm64 cross builder images the engine has
// (the container stage builds them; they hold the cross toolchains).
func checkCrossImages(ctx context.Context) (string, error) {
	return askEngine(ctx, crossImages)
}

func crossImages(ctx context.Context, cli *client.Client) (string, error) {
	list, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "testvm-builder:*-arm64-*"))})
	if err != nil {
		return "", errors.New("the Docker engine does not answer")
	}
	var tags []string
	for _, im := range list {
		tags = append(tags, im.RepoTags...)
	}
	if len(tags) == 0 {
		return "", errors.New("none built yet")
	}
	slices.Sort(tags)
	return strings.Join(tags, ", "), nil
}

var versionRe = regexp.MustCompile(`[0-9]+\.[0-9]+(\.[0-9]+)?`)

func versionOf(name string, args ...string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		path := lookPath(name)
		if path == "" {
			return "", errors.New("not found")
		}
		b, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		if v := versionRe.FindString(string(b)); v != "" {
			return v, nil
		}
		return "found", nil
	}
}

func fileCheck(path string, programs ...string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s not found", path)
		}
		for _, p := range programs {
			if lookPath(p) == "" {
				return "", fmt.Errorf("%s not found", p)
			}
		}
		return path, nil
	}
}

// lookPath finds a program on PATH or in the sbin directories a non-root
// PATH often lacks.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func onPath(name string) bool { return lookPath(name) != "" }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
