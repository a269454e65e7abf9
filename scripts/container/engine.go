package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Engine is a connection to the Docker daemon.
type Engine struct {
	api *client.Client
}

// Connect opens a connection to the daemon named by DOCKER_HOST (or the
// default socket), negotiating the API version, and checks that it answers.
// When it does not, the error is one line that says how to start it.
func Connect(ctx context.Context) (*Engine, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := api.Ping(pctx); err != nil {
		api.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("Docker daemon unreachable at %s (start it with `dockerd &` or `systemctl start docker`): %s",
			api.DaemonHost(), strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return &Engine{api: api}, nil
}

// Close releases the connection.
func (e *Engine) Close() error { return e.api.Close() }

// API is the underlying Engine API client, for what this package does not wrap.
func (e *Engine) API() *client.Client { return e.api }

// Mount is a host directory bind-mounted into a container.
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
	// Log receives the container's stdout and stderr as they come.
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
	created, err := e.api.ContainerCreate(ctx, &container.Config{
		Image:  spec.Image,
		Cmd:    spec.Cmd,
		Env:    spec.Env,
		Labels: labels,
	}, &container.HostConfig{Binds: binds, NetworkMode: "none"}, nil, nil, name)
	if err != nil {
		return -1, fmt.Errorf("create container from %s: %w", spec.Image, err)
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

// RemoveAll removes every container of this suite (label testvm=1), e.g.
// after a run was killed without a chance to clean up.
func (e *Engine) RemoveAll(ctx context.Context) error {
	ids, err := e.Remaining(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
