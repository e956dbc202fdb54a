package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/artifact"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

// images gives the reconciler the images units run: built by socle from the
// platform repository for containers whose image is ".", pinned to their
// digest otherwise, each container on its own.
type images struct {
	builder  *artifact.Builder
	unpacker *artifact.Unpacker
	repo     *source.Repo
	appAt    func(app, revision string) *spec.App
}

var (
	_ apps.Images     = (*images)(nil)
	_ replicas.Images = (*images)(nil)
)

// Build returns the artifact of u's release: the image every container
// runs when they all run one (socle's build, or one external image), else
// a pin list in socle's registry that gives each container its own image
// by digest (see artifact.PinsType). progress hears the build log's last
// line while socle builds.
func (im *images) Build(ctx context.Context, u plan.Unit, progress func(line string)) (string, error) {
	app := im.appAt(u.App, u.Revision)
	if app == nil || app.Workload == nil {
		return "", fmt.Errorf("app %s is not readable at revision %s", u.App, u.Revision)
	}
	names := slices.Sorted(maps.Keys(app.Workload.Containers))
	if len(names) == 0 {
		return "", fmt.Errorf("app %s has no container", u.App)
	}
	pins := make(map[string]artifact.Pin, len(names))
	built := ""
	for _, n := range names {
		image := app.Workload.Containers[n].Image
		var d string
		if image == artifact.BuiltImage {
			if built == "" {
				var err error
				if built, err = im.build(ctx, app, u.Revision, progress); err != nil {
					return "", err
				}
			}
			d = built
		} else {
			var err error
			if d, err = im.builder.Resolve(ctx, image); err != nil {
				return "", fmt.Errorf("container %s: resolving image %s: %w", n, image, err)
			}
		}
		pins[n] = artifact.Pin{Image: image, Digest: d}
	}
	one := pins[names[0]]
	if !slices.ContainsFunc(names, func(n string) bool { return pins[n] != one }) {
		return one.Digest, nil
	}
	return im.builder.WritePins(u.App, pins)
}

func (im *images) build(ctx context.Context, app *spec.App, revision string, progress func(line string)) (string, error) {
	rev, err := im.repo.Revision(revision)
	if err != nil {
		return "", err
	}
	a, err := im.builder.BuildProgress(ctx, im.repo, rev, app, progress)
	if err != nil {
		return "", err
	}
	return a.Digest, nil
}

// Pins returns the digest each container of u runs in the release whose
// artifact is digest. A release made before pin lists existed has an image
// as its artifact: its containers built by socle run it, and so does an
// external image when no container is built; the others run their image as
// written, as they did then.
func (im *images) Pins(ctx context.Context, u plan.Unit, digest string) (map[string]string, error) {
	pins, err := im.builder.ReadPins(u.App, digest)
	switch {
	case err == nil:
		out := make(map[string]string, len(pins))
		for n, p := range pins {
			out[n] = p.Digest
		}
		return out, nil
	case errors.Is(err, artifact.ErrNotPins), errors.Is(err, registry.ErrManifestUnknown), errors.Is(err, registry.ErrNameUnknown):
		// An image: of socle's build, or one external image not kept here.
	default:
		return nil, err
	}
	built := false
	for _, c := range u.Containers {
		built = built || c.Image == artifact.BuiltImage
	}
	out := make(map[string]string, len(u.Containers))
	for n, c := range u.Containers {
		if c.Image == artifact.BuiltImage || !built {
			out[n] = digest
		}
	}
	return out, nil
}

// Unpack unpacks the image of a container whose Score image is image,
// pinned to digest ("" for the image as written).
func (im *images) Unpack(ctx context.Context, image, digest string) (replicas.Image, error) {
	ref := digest // socle's build is in socle's registry
	if image != artifact.BuiltImage {
		ref = image
		if digest != "" {
			r, err := name.ParseReference(image)
			if err != nil {
				return replicas.Image{}, fmt.Errorf("image %q: %w", image, err)
			}
			ref = r.Context().Name() + "@" + digest
		}
	}
	r, err := im.unpacker.Unpack(ctx, ref)
	if err != nil {
		return replicas.Image{}, err
	}
	c := r.Config
	return replicas.Image{Root: r.Dir, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir}, nil
}
