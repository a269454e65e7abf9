package container

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/falcosecurity/libs/test/vm/scripts/config"
	"github.com/falcosecurity/libs/test/vm/scripts/ui"
)

// Cleanup removes every container of this suite (label testvm=1), then the
// builder images (testvm-builder) and the bootstrapped base images
// (testvm-base), in every version.
func Cleanup(ctx context.Context, cfg *config.Config, out *ui.Printer) error {
	e, err := Connect(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	ids, err := e.Remaining(ctx)
	if err != nil {
		return err
	}
	if err := e.RemoveAll(ctx); err != nil {
		return err
	}
	if len(ids) > 0 {
		out.Linef("cleanup: removed %d containers", len(ids))
	}
	for _, repo := range []string{Repository, BaseRepository} {
		list, err := e.api.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo))})
		if err != nil {
			return fmt.Errorf("list %s images: %w", repo, err)
		}
		for _, im := range list {
			for _, tag := range im.RepoTags {
				if _, err := e.api.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err != nil {
					return fmt.Errorf("remove image %s: %w", tag, err)
				}
				out.Linef("cleanup: removed image %s", tag)
			}
		}
	}
	return nil
}
