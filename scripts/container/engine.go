package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/falcosecurity/libs/test/vm/scripts/fsx"
)

// Engine is a connection to the Docker daemon.
type Engine struct {
	api  *client.Client
	host string // DOCKER_HOST as the client resolved it
	// remote: the engine is not on this host, so it cannot see this
	// host's directories; Run copies Mounts in instead of binding them.
	remote bool
}

// OnThisHost tells whether the engine at host (a DOCKER_HOST value, as
// the client resolved it) runs on this machine, so that it can bind-mount
// this machine's directories. The rule is the address's scheme, nothing
// cleverer: a unix socket or a Windows named pipe is local; anything else
// (tcp://, ssh://, http(s)://) is taken as remote, also tcp://127.0.0.1,
// where copying is merely slower, never wrong.
func OnThisHost(host string) bool {
	return strings.HasPrefix(host, "unix://") || strings.HasPrefix(host, "npipe://")
}

// Connect opens a connection to the daemon named by DOCKER_HOST (or the
// default socket), negotiating the API version, and checks that it answers.
// When it does not, the error is one line that says how to start it.
func Connect(ctx context.Context) (*Engine, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	host := api.DaemonHost()
	if strings.HasPrefix(host, "ssh://") {
		// The Engine API client speaks no ssh itself.
		api.Close()
		dial, err := sshDialer(host)
		if err != nil {
			return nil, err
		}
		api, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation(),
			client.WithHost("http://docker.engine"), client.WithDialContext(dial))
		if err != nil {
			return nil, fmt.Errorf("docker client: %w", err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := api.Ping(pctx); err != nil {
		api.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("Docker daemon unreachable at %s (start it with `dockerd &` or `systemctl start docker`): %s",
			host, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return &Engine{api: api, host: host, remote: !OnThisHost(host)}, nil
}

// Remote reports whether the engine is not on this host (see OnThisHost):
// then Run copies RunSpec.Mounts into the container instead of binding them.
func (e *Engine) Remote() bool { return e.remote }

// Host is the engine's address, e.g. unix:///var/run/docker.sock.
func (e *Engine) Host() string { return e.host }

// ErrEngineDown is the error of an engine that stopped answering: work in
// flight on it is an infrastructure error, never an answer about a cell.
var ErrEngineDown = errors.New("the Docker engine stopped answering")

// Alive checks that the engine still answers (in a few seconds); the error
// wraps ErrEngineDown, names the engine and says how to start it again.
func (e *Engine) Alive(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := e.api.Ping(pctx)
	if err == nil {
		return nil
	}
	why := ""
	if !client.IsErrConnectionFailed(err) {
		why = " (" + strings.ReplaceAll(err.Error(), "\n", " ") + ")"
	}
	return fmt.Errorf("%w at %s%s: start it again (`go run mage.go setup`, or `dockerd &` as root) and re-run; finished work is kept",
		ErrEngineDown, e.host, why)
}

// Close releases the connection.
func (e *Engine) Close() error { return e.api.Close() }

// API is the underlying Engine API client, for what this package does not wrap.
func (e *Engine) API() *client.Client { return e.api }

// Mount is a host directory bind-mounted into a container. On a remote
// engine (Engine.Remote) the directory is copied in instead, through the
// Engine API, before the container starts: the same files at the same
// path, but writable, and merged with what the image has there rather than
// hiding it.
type Mount struct {
	Host, Container string
	ReadOnly        bool
}

// RunSpec says what one container runs.
type RunSpec struct {
	Image   string
	Cmd     []string
	Env     []string
	Mounts  []Mount
	Labels  map[string]string // added to testvm=1
	Timeout time.Duration     // 0: none
	// CopyIn is a tar archive (plain or gzip-compressed) extracted at "/"
	// before the container starts, e.g. the source tree; nil for none.
	CopyIn func() (io.ReadCloser, error)
	// Log receives the container's stdout and stderr as they come, after
	// one line per Mount copied in on a remote engine, with its size and time.
	Log io.Writer
	// After runs once the command has exited (with exit), while the
	// stopped container still exists, to copy results out of it.
	After func(ctx context.Context, c *Container, exit int) error
}

// Container is a container created by Run.
type Container struct {
	e  *Engine
	ID string
}

// ErrTimeout is returned by Run when the command outlives RunSpec.Timeout.
var ErrTimeout = errors.New("deadline exceeded")

// Run creates a container from spec, copies CopyIn into it, starts it,
// streams its output to Log, waits for it (at most Timeout), calls After and
// removes the container whatever happened, also when ctx is cancelled. It
// returns the command's exit code.
func (e *Engine) Run(ctx context.Context, spec RunSpec) (exit int, err error) {
	labels := map[string]string{LabelOwner: "1"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	var binds []string
	for _, m := range spec.Mounts {
		if e.remote {
			break
		}
		b := m.Host + ":" + m.Container
		if m.ReadOnly {
			b += ":ro"
		}
		binds = append(binds, b)
	}
	name := "testvm-" + randomHex(6)
	// Removal must happen even when ctx is cancelled, and also when the
	// create request was cancelled after the daemon acted on it: remove by
	// the name we chose.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		rerr := e.api.ContainerRemove(rctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if rerr != nil && !cerrdefs.IsNotFound(rerr) && err == nil {
			err = fmt.Errorf("remove container %s: %w", name, rerr)
		}
	}()
	// The create is not cancelled with ctx: a create request cancelled in
	// flight can still make the container after the removal above has
	// looked for it (an interrupted compile on a busy engine left one so).
	// It is short; ctx is checked once it has answered.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	created, err := e.api.ContainerCreate(cctx, &container.Config{
		Image:  spec.Image,
		Cmd:    spec.Cmd,
		Env:    spec.Env,
		Labels: labels,
	}, &container.HostConfig{Binds: binds, NetworkMode: "none"}, nil, nil, name)
	ccancel()
	if err != nil {
		return -1, fmt.Errorf("create container from %s: %w", spec.Image, err)
	}
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	c := &Container{e: e, ID: created.ID}
	if spec.CopyIn != nil {
		rc, err := spec.CopyIn()
		if err != nil {
			return -1, err
		}
		err = e.api.CopyToContainer(ctx, c.ID, "/", rc, container.CopyToContainerOptions{})
		rc.Close()
		if err != nil {
			return -1, fmt.Errorf("copy into container: %w", err)
		}
	}
	if e.remote {
		for _, m := range spec.Mounts {
			if err := e.copyMount(ctx, c.ID, m, spec.Log); err != nil {
				return -1, err
			}
		}
	}
	wctx := ctx
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	// Attach before start, as `docker run` does: a logs request made after
	// start can miss the output of a command that exits at once.
	att, err := e.api.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return -1, fmt.Errorf("attach to container: %w", err)
	}
	defer att.Close()
	logDone := make(chan error, 1)
	go func() {
		w := spec.Log
		if w == nil {
			w = io.Discard
		}
		_, err := stdcopy.StdCopy(w, w, att.Reader)
		logDone <- err
	}()
	stop := context.AfterFunc(wctx, func() { att.Close() })
	defer stop()
	if err := e.api.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return -1, fmt.Errorf("start container: %w", err)
	}
	// Once started, the container is running or has exited already:
	// not-running covers both without a race.
	waitc, errc := e.api.ContainerWait(wctx, c.ID, container.WaitConditionNotRunning)
	select {
	case res := <-waitc:
		<-logDone
		if res.Error != nil {
			return -1, fmt.Errorf("wait for container: %s", res.Error.Message)
		}
		exit = int(res.StatusCode)
	case err := <-errc:
		if wctx.Err() != nil {
			// The attach stream is closed with wctx: let the copy finish
			// writing before the caller reuses Log.
			<-logDone
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		if wctx.Err() != nil {
			return -1, fmt.Errorf("%w after %s", ErrTimeout, spec.Timeout)
		}
		return -1, fmt.Errorf("wait for container: %w", err)
	}
	if spec.After != nil {
		if err := spec.After(ctx, c, exit); err != nil {
			return exit, err
		}
	}
	return exit, nil
}

// Remaining lists the containers of this suite (label testvm=1) that
// exist, running or stopped; labels ("key=value") narrow the list, e.g. to
// one build directory's containers (LabelBuild).
func (e *Engine) Remaining(ctx context.Context, labels ...string) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", LabelOwner+"=1"))
	for _, l := range labels {
		f.Add("label", l)
	}
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// staleCreated is how long after its creation a container never started
// is surely a leftover: a run starts its containers at once.
var staleCreated = time.Minute

// RemoveLeftovers removes the containers carrying labels that have ended
// (exited or dead): those a run could not remove because the engine went
// away under it (the engine keeps them, stopped, when it comes back); and
// those created more than a minute ago and never started, which a run
// that was killed between the two left. One that is running, or was just
// created, may belong to another run and stays. It returns how many it
// removed.
func (e *Engine) RemoveLeftovers(ctx context.Context, labels ...string) (int, error) {
	f := filters.NewArgs(filters.Arg("label", LabelOwner+"=1"))
	for _, l := range labels {
		f.Add("label", l)
	}
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	n := 0
	for _, c := range list {
		stale := c.State == "created" && time.Since(time.Unix(c.Created, 0)) > staleCreated
		if c.State != "exited" && c.State != "dead" && !stale {
			continue
		}
		if err := e.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return n, fmt.Errorf("remove container %s: %w", c.ID, err)
		}
		n++
	}
	return n, nil
}

// RemoveFor removes the containers of this suite (label testvm=1) that
// work for buildDir, or for no build directory at all, and returns how
// many it removed. Another build directory's containers (another run on
// this engine) stay.
func (e *Engine) RemoveFor(ctx context.Context, buildDir string) (int, error) {
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelOwner+"=1"))})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	n := 0
	for _, c := range list {
		if b := c.Labels[LabelBuild]; b != "" && b != buildDir {
			continue
		}
		if err := e.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return n, fmt.Errorf("remove container %s: %w", c.ID, err)
		}
		n++
	}
	return n, nil
}

// copyMount copies the host directory of m into the container at
// m.Container, as a tar archive written while it streams (never whole in
// memory), owned by root as the suite's own trees are, and notes its size
// and time in log.
func (e *Engine) copyMount(ctx context.Context, id string, m Mount, log io.Writer) error {
	start := time.Now()
	pr, pw := io.Pipe()
	var size countWriter
	go func() {
		pw.CloseWithError(fsx.WriteTar(io.MultiWriter(pw, &size), m.Host, fsx.TarOptions{Prefix: strings.Trim(path.Clean(m.Container), "/"), RootOwned: true}))
	}()
	err := e.api.CopyToContainer(ctx, id, "/", pr, container.CopyToContainerOptions{})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("copy %s into the container at %s (the engine at %s is not on this host): %w", m.Host, m.Container, e.host, err)
	}
	if log != nil {
		fmt.Fprintf(log, "# copied %s to %s: %.1f MB in %.1fs (the engine at %s is not on this host)\n",
			m.Host, m.Container, float64(size)/1e6, time.Since(start).Seconds(), e.host)
	}
	return nil
}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
