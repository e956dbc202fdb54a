package artifact

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	scoretypes "github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

// AppDir is where the build output is in the image.
const AppDir = "/app"

// Image labels.
const (
	LabelApp      = "dev.socle.app"
	LabelRevision = "dev.socle.revision"
	LabelSource   = "dev.socle.source"
)

// BuiltImage is the image of a Score container that socle builds.
const BuiltImage = "."

// epoch is the time of every entry and of the image itself: the digest
// depends on the output only.
var epoch = time.Unix(0, 0).UTC()

// packageImage makes the image of a build's output out. Its layer is
// written into socle's registry; its config and manifest are not yet.
func packageImage(reg *registry.Store, out string, app *spec.App, rev source.Revision) (v1.Image, error) {
	bw, err := reg.NewBlob()
	if err != nil {
		return nil, err
	}
	defer bw.Abort()
	layer, execs, err := writeLayer(out, bw)
	if err != nil {
		return nil, err
	}
	cfg, err := imageConfig(app, rev, execs)
	if err != nil {
		return nil, err
	}
	if err := bw.Commit(layer.digest); err != nil {
		return nil, err
	}
	layer.reg = reg
	l, err := partial.CompressedToLayer(layer)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Created:      v1.Time{Time: epoch},
		OS:           runtime.GOOS,
		Architecture: runtime.GOARCH,
		Config:       cfg,
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     l,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "socle build: " + app.Config.Build.Command},
	})
}

// storedLayer is a layer in socle's registry whose digests are known from
// writing it: nothing reads it again to package the image.
type storedLayer struct {
	reg            *registry.Store
	digest, diffID v1.Hash
	size           int64
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *storedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storedLayer) Size() (int64, error)                { return l.size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error)  { return l.reg.OpenBlob(l.digest) }

// writeLayer writes the tree out, under app/, as a gzipped tar to bw, and
// returns the layer and the paths in the image of the executable files.
// Entries are sorted and carry no time, owner or other mode bit than the
// executable ones, so the same output always gives the same bytes.
func writeLayer(out string, bw *registry.BlobWriter) (*storedLayer, []string, error) {
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return nil, nil, err
	}
	diffID := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diffID))
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch})
	}
	if err := dir(strings.TrimPrefix(AppDir, "/")); err != nil {
		return nil, nil, err
	}
	var execs []string
	files := 0
	// WalkDir visits entries in lexical order.
	err = filepath.WalkDir(out, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == out {
			return err
		}
		rel, err := filepath.Rel(out, p)
		if err != nil {
			return err
		}
		name := path.Join(AppDir, filepath.ToSlash(rel))[1:]
		switch t := e.Type(); {
		case t.IsDir():
			return dir(name)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files++
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch})
		case t.IsRegular():
			info, err := e.Info()
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
				execs = append(execs, "/"+name)
			}
			files++
			return copyFile(tw, p, &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: info.Size(), Mode: mode, ModTime: epoch})
		default:
			return fmt.Errorf("$SOCLE_OUT/%s is a %s: only files, directories and symbolic links go into an image", rel, t)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if files == 0 {
		return nil, nil, errors.New("the build wrote nothing into $SOCLE_OUT")
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return &storedLayer{
		digest: bw.Digest(),
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diffID.Sum(nil))},
		size:   bw.Size(),
	}, execs, nil
}

func copyFile(tw *tar.Writer, p string, h *tar.Header) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	// The header's size was read before: a file still growing is an error.
	_, err = io.CopyN(tw, f, h.Size)
	return err
}

// imageConfig is the image's run configuration, from the app's Score
// containers built by socle and the executables of the output.
func imageConfig(app *spec.App, rev source.Revision, execs []string) (v1.Config, error) {
	cfg := v1.Config{
		WorkingDir: AppDir,
		Labels: map[string]string{
			LabelApp:                            app.Name,
			LabelRevision:                       rev.SHA,
			LabelSource:                         app.Source,
			"org.opencontainers.image.title":    app.Name,
			"org.opencontainers.image.revision": rev.SHA,
		},
	}
	var built []scoretypes.Container
	if app.Workload != nil {
		names := make([]string, 0, len(app.Workload.Containers))
		for n, c := range app.Workload.Containers {
			if c.Image == BuiltImage {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			built = append(built, app.Workload.Containers[n])
		}
	}
	needEntrypoint := len(built) == 0
	for _, c := range built {
		needEntrypoint = needEntrypoint || len(c.Command) == 0
	}
	if len(built) == 1 {
		c := built[0]
		if !hasPlaceholder(c.Command...) {
			cfg.Entrypoint = c.Command
		}
		if !hasPlaceholder(c.Args...) {
			cfg.Cmd = c.Args
		}
		for k, v := range c.Variables {
			// A secret is handed to the process when it runs, never
			// written into an image that every member may pull.
			if !hasPlaceholder(v) && !slices.Contains(app.Config.Secrets, k) {
				cfg.Env = append(cfg.Env, k+"="+v)
			}
		}
		slices.Sort(cfg.Env)
	}
	if len(cfg.Entrypoint) == 0 {
		switch own := path.Join(AppDir, app.Name); {
		case slices.Contains(execs, own):
			cfg.Entrypoint = []string{own}
		case len(execs) == 1:
			cfg.Entrypoint = execs
		case needEntrypoint:
			return v1.Config{}, fmt.Errorf("cannot choose the image's entrypoint: the build wrote %d executables and none is $SOCLE_OUT/%s; set the container's command in score.yaml", len(execs), app.Name)
		}
	}
	return cfg, nil
}

// hasPlaceholder says whether a Score value holds a ${...} placeholder,
// which socle resolves only when it runs the image.
func hasPlaceholder(values ...string) bool {
	return slices.ContainsFunc(values, func(v string) bool { return strings.Contains(v, "${") })
}

// imageSize is what pulling img transfers.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	size := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, nil
}
