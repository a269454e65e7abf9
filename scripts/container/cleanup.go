package container

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Cleanup removes this build directory's containers (and any of this
// suite's that work for no build directory), then the builder images
// (testvm-builder) and the bootstrapped base images (testvm-base), in every
// version, except an image a container of another build directory still
// uses (said, and kept).
func Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	e, err := Connect(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	n, err := e.RemoveFor(ctx, cfg.BuildDir)
	if err != nil {
		return err
	}
	if n > 0 {
		out.Linef("cleanup: removed %d containers", n)
	}
	for _, repo := range []string{Repository, BaseRepository} {
		list, err := e.api.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo))})
		if err != nil {
			return fmt.Errorf("list %s images: %w", repo, err)
		}
		for _, im := range list {
			for _, tag := range im.RepoTags {
				_, err := e.api.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true})
				if cerrdefs.IsConflict(err) {
					// A container of another build directory uses it.
					out.Linef("cleanup: kept image %s: %v", tag, err)
					continue
				}
				if err != nil {
					return fmt.Errorf("remove image %s: %w", tag, err)
				}
				out.Linef("cleanup: removed image %s", tag)
			}
		}
	}
	return nil
}
