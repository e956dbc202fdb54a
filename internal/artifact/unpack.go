package artifact

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/socle-dev/socle/internal/artifact/internal/keylock"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/safefile"
)

// ErrUnsafeImage means that an image's layers would write outside its root.
var ErrUnsafeImage = errors.New("unsafe image")

// Rootfs is an image unpacked into a directory.
type Rootfs struct {
	// Digest of the image, as asked for (of the index, for a multi-platform image).
	Digest string `json:"digest"`
	// Dir is the root of the image's filesystem: its entrypoint /app/web is
	// <Dir>/app/web. Shared by every replica; treat it as read-only.
	Dir string `json:"-"`
	// Config is how the image says it runs.
	Config ImageConfig `json:"config"`
}

// ImageConfig is the part of an image's configuration a runtime uses.
type ImageConfig struct {
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// OS and Architecture the image is built for, e.g. linux and amd64: a
	// runtime that runs its entrypoint on the host checks them.
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
}

// Runnable says whether the image's executables are for this machine.
func (c ImageConfig) Runnable() bool {
	return c.OS == runtime.GOOS && c.Architecture == runtime.GOARCH
}

// Unpacker unpacks images into directories, once per digest: a runtime
// that runs processes from an image's files (the local runtime) asks for the
// image's directory each time it starts one.
type Unpacker struct {
	dir      string
	registry *registry.Store
	remote   []remote.Option
	locks    keylock.Map
	unpacks  atomic.Int64 // images unpacked, for tests
}

// NewUnpacker returns an Unpacker that keeps filesystems in dir (normally
// <data>/rootfs), reads images from socle's registry reg, and from others
// with the options opts. It removes what a crash left half unpacked.
func NewUnpacker(dir string, reg *registry.Store, opts ...remote.Option) (*Unpacker, error) {
	// The directories it returns are the roots replicas run in, whatever
	// their working directory: absolute.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		// Not those of a second process unpacking right now.
		if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), ".unpack-") && time.Since(info.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		} else if err == nil && e.IsDir() && !strings.HasPrefix(e.Name(), ".") && info.Mode().Perm() == 0o700 {
			// Unpacked by an earlier socle, searchable by root alone: the
			// sandboxes' users reach their rootfs through it.
			if err := os.Chmod(filepath.Join(dir, e.Name()), 0o711); err != nil {
				return nil, err
			}
		}
	}
	return &Unpacker{dir: dir, registry: reg, remote: opts}, nil
}

// Unpack returns the filesystem of the image ref, unpacking it the first time.
// ref is a digest (sha256:…) of an image in socle's registry, or a reference
// repository@sha256:… (or, not pinned, repository:tag) of any registry; an
// image that socle's registry holds is read from there.
//
// The image is unpacked into a temporary directory, then renamed into
// <dir>/sha256-<hex>: a directory that exists is complete. Layers are applied
// with their whiteouts; entries are confined to the root: a path that leaves
// it fails with ErrUnsafeImage, and symbolic links are rewritten relative to
// their own directory so that an absolute target (/usr/bin/x) points into the
// root, not to the host. Owners are not kept (everything belongs to socle's
// user), nor devices, FIFOs, and set-id bits; directories keep at least rwx
// for their owner.
func (u *Unpacker) Unpack(ctx context.Context, ref string) (Rootfs, error) {
	if _, err := registry.ParseDigest(ref); err == nil {
		return u.unpack(ctx, ref, func() (v1.Image, error) { return u.image(ctx, ref, nil) })
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return Rootfs{}, fmt.Errorf("unpacking %q: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok {
		repo := d.Context()
		return u.unpack(ctx, d.DigestStr(), func() (v1.Image, error) { return u.image(ctx, d.DigestStr(), &repo) })
	}
	// A tag: unpack what it points to now.
	img, err := remote.Image(r, u.remoteOptions(ctx)...)
	if err != nil {
		return Rootfs{}, fmt.Errorf("unpacking %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return Rootfs{}, err
	}
	return u.unpack(ctx, h.String(), func() (v1.Image, error) { return img, nil })
}

// image reads the image digest from socle's registry, else from repo.
func (u *Unpacker) image(ctx context.Context, digest string, repo *name.Repository) (v1.Image, error) {
	h, err := registry.ParseDigest(digest)
	if err != nil {
		return nil, err
	}
	if u.registry != nil {
		img, err := u.registry.Image(h)
		if err == nil || repo == nil || !errors.Is(err, registry.ErrManifestUnknown) {
			return img, err
		}
	}
	if repo == nil {
		return nil, fmt.Errorf("%w: %s", registry.ErrManifestUnknown, digest)
	}
	return remote.Image(repo.Digest(digest), u.remoteOptions(ctx)...)
}

func (u *Unpacker) remoteOptions(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})}, u.remote...)
}

const configFile = "config.json"

func (u *Unpacker) unpack(ctx context.Context, digest string, open func() (v1.Image, error)) (Rootfs, error) {
	h, err := registry.ParseDigest(digest)
	if err != nil {
		return Rootfs{}, err
	}
	final := filepath.Join(u.dir, h.Algorithm+"-"+h.Hex)
	defer u.locks.Lock(final)()
	if rf, err := readRootfs(final); err == nil {
		return rf, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Rootfs{}, err
	}

	img, err := open()
	if err != nil {
		return Rootfs{}, fmt.Errorf("unpacking %s: %w", digest, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Rootfs{}, fmt.Errorf("unpacking %s: %w", digest, err)
	}
	tmp, err := os.MkdirTemp(u.dir, ".unpack-")
	if err != nil {
		return Rootfs{}, err
	}
	defer os.RemoveAll(tmp) // after the rename, nothing is left there
	// The sandboxes' users (package sandbox) reach the rootfs through it,
	// without listing the images beside it.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return Rootfs{}, err
	}
	if err := os.Mkdir(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
		return Rootfs{}, err
	}
	rc := mutate.Extract(img)
	err = extract(ctx, rc, filepath.Join(tmp, "rootfs"))
	rc.Close()
	if err != nil {
		return Rootfs{}, fmt.Errorf("unpacking %s: %w", digest, err)
	}
	c := cf.Config
	rf := Rootfs{Digest: digest, Config: ImageConfig{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Labels: c.Labels,
		OS: cf.OS, Architecture: cf.Architecture,
	}}
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return Rootfs{}, err
	}
	if err := safefile.Write(filepath.Join(tmp, configFile), data); err != nil {
		return Rootfs{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process may have unpacked it first.
		if rf, rerr := readRootfs(final); rerr == nil {
			return rf, nil
		}
		return Rootfs{}, fmt.Errorf("unpacking %s: %w", digest, err)
	}
	u.unpacks.Add(1)
	rf.Dir = filepath.Join(final, "rootfs")
	return rf, nil
}

func readRootfs(dir string) (Rootfs, error) {
	data, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return Rootfs{}, err
	}
	var rf Rootfs
	if err := json.Unmarshal(data, &rf); err != nil {
		return Rootfs{}, fmt.Errorf("reading %s: %w", dir, err)
	}
	rf.Dir = filepath.Join(dir, "rootfs")
	return rf, nil
}

// extract writes the flattened tar stream r under dir, confined to it.
func extract(ctx context.Context, r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			// mutate.Extract ends the archive properly even when it fails
			// (a layer that does not read, an unsafe path), then reports the
			// failure: read to the end to get it.
			_, err = io.Copy(io.Discard, r)
			return err
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue
		}
		perm := hdr.FileInfo().Mode().Perm()
		if hdr.Typeflag == tar.TypeDir {
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
			if err := root.Chmod(name, perm|0o700); err != nil {
				return err
			}
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
		// Layers are flattened: a path comes once, but a lower layer's
		// directory entry may have created it as a parent already.
		if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			err = writeEntry(root, name, perm, tr)
		case tar.TypeSymlink:
			err = root.Symlink(linkTarget(name, hdr.Linkname), name)
		case tar.TypeLink:
			var old string
			if old, err = entryName(hdr.Linkname); err == nil {
				err = root.Link(old, name)
			}
		}
		if err != nil {
			return err
		}
	}
}

// entryName is the path of a tar entry relative to the root; one that leaves
// the root fails.
func entryName(n string) (string, error) {
	clean := path.Clean(strings.TrimLeft(n, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(n, "\x00") {
		return "", fmt.Errorf("%w: entry %q leaves the image's root", ErrUnsafeImage, n)
	}
	return clean, nil
}

// linkTarget makes the target of the symbolic link name relative to the
// link's directory, resolving it as inside a chroot (.. stops at the root),
// so that the link points into the unpacked root whatever it said.
func linkTarget(name, target string) string {
	dir := path.Join("/", path.Dir(name))
	abs := path.Clean(target)
	if !path.IsAbs(target) {
		abs = path.Join(dir, target)
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return "."
	}
	return filepath.ToSlash(rel)
}

func writeEntry(root *os.Root, name string, perm fs.FileMode, r io.Reader) error {
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Chmod(name, perm) // whatever the umask
}
