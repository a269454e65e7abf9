package container

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// What a run leaves on the engine when it is killed between creating a
// container and starting it: a container of its build directory that
// never ran. The next run's sweep removes it once it is surely stale, and
// leaves a just-created one (another run's, about to start) alone.
func TestE2ERemoveLeftovers(t *testing.T) {
	cfg := e2eConfig(t, "gcc-12")
	ctx := context.Background()
	e, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	images, err := e.Ensure(ctx, cfg, ui.New(os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	created, err := e.api.ContainerCreate(ctx, &container.Config{
		Image:  images[0].Tag(),
		Cmd:    []string{"true"},
		Labels: map[string]string{LabelOwner: "1", LabelBuild: build},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.api.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})

	if n, err := e.RemoveLeftovers(ctx, LabelBuild+"="+build); err != nil || n != 0 {
		t.Fatalf("a container just created: removed %d, %v; want it left", n, err)
	}
	saved := staleCreated
	staleCreated = time.Second
	defer func() { staleCreated = saved }()
	time.Sleep(2 * time.Second)
	if n, err := e.RemoveLeftovers(ctx, LabelBuild+"=/some/other/build"); err != nil || n != 0 {
		t.Fatalf("another build directory's sweep: removed %d, %v", n, err)
	}
	if n, err := e.RemoveLeftovers(ctx, LabelBuild+"="+build); err != nil || n != 1 {
		t.Fatalf("a stale created container: removed %d, %v; want 1", n, err)
	}
	ids, err := e.Remaining(ctx, LabelBuild+"="+build)
	if err != nil || slices.Contains(ids, created.ID) {
		t.Errorf("still there after the sweep: %v, %v", ids, err)
	}
}
