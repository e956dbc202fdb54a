package artifact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/socle-dev/socle/internal/artifact/registry"
)

// PinsType is the artifact type of a pin list: the artifact of a release
// whose containers run different images. A release is one digest (what is
// promoted, approved and rolled back); when its containers run several
// images, that digest names a pin list in socle's registry, which gives
// each container's image by digest, so that the list's digest pins them
// all at once, as an index pins the images of several platforms.
const PinsType types.MediaType = "application/vnd.socle.pins.v1+json"

// Pin is one container's image in a pin list.
type Pin struct {
	// Image is the container's image as the Score file names it: "." for
	// the one socle builds, else a reference (nginx:1.27).
	Image string `json:"image"`
	// Digest is the digest of the manifest (or index) it runs.
	Digest string `json:"digest"`
}

// pinList is the pin list's config blob.
type pinList struct {
	Containers map[string]Pin `json:"containers"`
}

// emptyJSON is the image spec's empty descriptor content, the one layer of
// an artifact that has no files.
var emptyJSON = []byte("{}")

// WritePins stores a pin list for app in socle's registry, under the app's
// repository, and returns its digest. The same pins give the same digest.
func (b *Builder) WritePins(app string, pins map[string]Pin) (string, error) {
	for _, n := range slices.Sorted(maps.Keys(pins)) {
		if _, err := registry.ParseDigest(pins[n].Digest); err != nil {
			return "", fmt.Errorf("pinning container %s of %s: %w", n, app, err)
		}
	}
	cfg, err := json.Marshal(pinList{Containers: pins}) // maps marshal in key order
	if err != nil {
		return "", err
	}
	put := func(data []byte) (v1.Descriptor, error) {
		h, _, err := v1.SHA256(bytes.NewReader(data))
		if err != nil {
			return v1.Descriptor{}, err
		}
		if _, err := b.cfg.Registry.PutBlob(bytes.NewReader(data), h); err != nil {
			return v1.Descriptor{}, err
		}
		return v1.Descriptor{Digest: h, Size: int64(len(data))}, nil
	}
	cd, err := put(cfg)
	if err != nil {
		return "", fmt.Errorf("pinning the images of %s: %w", app, err)
	}
	cd.MediaType = PinsType
	ed, err := put(emptyJSON)
	if err != nil {
		return "", fmt.Errorf("pinning the images of %s: %w", app, err)
	}
	ed.MediaType = "application/vnd.oci.empty.v1+json"
	raw, err := json.Marshal(struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		ArtifactType  types.MediaType `json:"artifactType"`
		Config        v1.Descriptor   `json:"config"`
		Layers        []v1.Descriptor `json:"layers"`
	}{2, types.OCIManifestSchema1, PinsType, cd, []v1.Descriptor{ed}})
	if err != nil {
		return "", err
	}
	h, err := b.cfg.Registry.PutManifest(repository(app), "", types.OCIManifestSchema1, raw)
	if err != nil {
		return "", fmt.Errorf("pinning the images of %s: %w", app, err)
	}
	return h.String(), nil
}

// maxPinList bounds the pin list read: far more than any workload's
// containers need.
const maxPinList = 1 << 20

// ErrNotPins means that a digest names an image, not a pin list.
var ErrNotPins = errors.New("not a pin list")

// ReadPins returns the pin list digest names in app's repository, or
// ErrNotPins when digest is an image (a release whose containers all run
// that image).
func (b *Builder) ReadPins(app, digest string) (map[string]Pin, error) {
	raw, _, _, err := b.cfg.Registry.Manifest(repository(app), digest)
	if err != nil {
		return nil, fmt.Errorf("reading the artifact %s of %s: %w", digest, app, err)
	}
	var m struct {
		ArtifactType types.MediaType `json:"artifactType"`
		Config       v1.Descriptor   `json:"config"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading the artifact %s of %s: %w", digest, app, err)
	}
	if m.ArtifactType != PinsType || m.Config.MediaType != PinsType {
		return nil, ErrNotPins
	}
	f, err := b.cfg.Registry.OpenBlob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading the pin list %s of %s: %w", digest, app, err)
	}
	defer f.Close()
	var l pinList
	// Anyone who may push to the app's repository may write a pin list:
	// a few hundred bytes per container, read within a budget.
	if err := json.NewDecoder(io.LimitReader(f, maxPinList)).Decode(&l); err != nil {
		return nil, fmt.Errorf("reading the pin list %s of %s: %w", digest, app, err)
	}
	return l.Containers, nil
}
