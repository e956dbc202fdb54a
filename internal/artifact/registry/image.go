package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WriteImage stores img in the repository name, blobs first and the manifest
// last, so that a reader never sees a manifest whose blobs are missing; tag,
// if not empty, then points to it. It returns the image's digest.
func (s *Store) WriteImage(name, tag string, img v1.Image) (v1.Hash, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return v1.Hash{}, err
		}
		if !mt.IsDistributable() {
			continue
		}
		h, err := l.Digest()
		if err != nil {
			return v1.Hash{}, err
		}
		if _, err := s.BlobSize(h); err == nil {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = s.PutBlob(rc, h)
		rc.Close()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("storing layer %s: %w", h, err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cfgHash, _, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := s.PutBlob(bytes.NewReader(cfg), cfgHash); err != nil {
		return v1.Hash{}, fmt.Errorf("storing config: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Hash{}, err
	}
	return s.PutManifest(name, tag, mt, raw)
}

// Image returns the image whose manifest has the digest h, from whichever
// repository holds it. If h is an index, Image picks the image for this
// machine's platform.
func (s *Store) Image(h v1.Hash) (v1.Image, error) {
	raw, err := s.readBlob(h)
	if errors.Is(err, ErrBlobUnknown) {
		return nil, fmt.Errorf("%w: %s", ErrManifestUnknown, h)
	}
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrManifestInvalid, h, err)
	}
	mt := mediaTypeOf(&m)
	if mt.IsIndex() {
		for _, d := range m.Manifests {
			if d.MediaType.IsImage() && (d.Platform == nil || d.Platform.Satisfies(hostPlatform)) {
				return s.Image(d.Digest)
			}
		}
		return nil, fmt.Errorf("%w: index %s has no image for %s", ErrManifestUnknown, h, hostPlatform)
	}
	if !mt.IsImage() || m.Config == nil {
		return nil, fmt.Errorf("%w: %s is a %s, not an image", ErrManifestInvalid, h, mt)
	}
	return partial.CompressedToImage(&storeImage{s: s, raw: raw, mt: mt, m: &m})
}

var hostPlatform = v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}

// storeImage reads an image from the store, lazily.
type storeImage struct {
	s   *Store
	raw []byte
	mt  types.MediaType
	m   *manifest
}

var _ partial.CompressedImageCore = (*storeImage)(nil)

func (i *storeImage) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) RawConfigFile() ([]byte, error)      { return i.s.readBlob(i.m.Config.Digest) }

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storeBlob{s: i.s, d: *i.m.Config}, nil
	}
	for _, d := range i.m.Layers {
		if d.Digest == h {
			return &storeBlob{s: i.s, d: d}, nil
		}
	}
	return nil, fmt.Errorf("%w: no layer %s in image", ErrBlobUnknown, h)
}

// storeBlob is a layer (or the config) of a storeImage.
type storeBlob struct {
	s *Store
	d v1.Descriptor
}

func (b *storeBlob) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b *storeBlob) Size() (int64, error)                { return b.d.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }
func (b *storeBlob) Compressed() (io.ReadCloser, error)  { return b.s.OpenBlob(b.d.Digest) }
