package server

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/socle-dev/socle/internal/artifact"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

// images gives the reconciler the images units run: built by socle from the
// platform repository for containers whose image is ".", pinned to their
// digest otherwise.
type images struct {
	builder  *artifact.Builder
	unpacker *artifact.Unpacker
	repo     *source.Repo
	appAt    func(app, revision string) *spec.App

	mu   sync.Mutex
	refs map[string]string // digest → a reference the unpacker can pull it by
}

var _ reconcile.Images = (*images)(nil)

func (im *images) Build(ctx context.Context, u plan.Unit, progress func(line string)) (string, error) {
	app := im.appAt(u.App, u.Revision)
	if app == nil || app.Workload == nil {
		return "", fmt.Errorf("app %s is not readable at revision %s", u.App, u.Revision)
	}
	built := false
	var external string
	for _, c := range app.Workload.Containers {
		if c.Image == "." {
			built = true
		} else {
			external = c.Image
		}
	}
	if !built {
		d, err := im.builder.Resolve(ctx, external)
		if err != nil {
			return "", fmt.Errorf("resolving image %s: %w", external, err)
		}
		im.remember(d, strings.SplitN(external, "@", 2)[0]+"@"+d)
		return d, nil
	}
	rev, err := im.repo.Revision(u.Revision)
	if err != nil {
		return "", err
	}
	a, err := im.builder.BuildProgress(ctx, im.repo, rev, app, progress)
	if err != nil {
		return "", err
	}
	im.remember(a.Digest, a.Ref)
	return a.Digest, nil
}

func (im *images) remember(digest, ref string) {
	im.mu.Lock()
	im.refs[digest] = ref
	im.mu.Unlock()
}

func (im *images) Unpack(ctx context.Context, digest string) (reconcile.Image, error) {
	im.mu.Lock()
	ref := im.refs[digest]
	im.mu.Unlock()
	if ref == "" {
		ref = digest // socle's own registry has every image it built or pinned
	}
	r, err := im.unpacker.Unpack(ctx, ref)
	if err != nil {
		return reconcile.Image{}, err
	}
	c := r.Config
	return reconcile.Image{Root: r.Dir, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir}, nil
}
