package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/socle-dev/socle/internal/artifact/internal/keylock"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/safefile"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
)

// ErrNoBuild means that the app has no build in its socle.yaml: none of its
// containers is built by socle.
var ErrNoBuild = errors.New("app has no build")

// DefaultTimeout bounds a build command when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Minute

// Artifact is an image built for an app: what a release runs, by digest.
type Artifact struct {
	// Digest of the image manifest, sha256:<hex>.
	Digest string `json:"digest"`
	// Ref is repository@digest, for pulling the image: in socle's registry,
	// or in the app's build.image repository.
	Ref string `json:"ref"`
	// App is the app's name.
	App string `json:"app"`
	// Revision is the platform revision the image was built from; a later
	// revision that leaves the app's source as it is reuses the image.
	Revision string `json:"revision"`
	// Source is the app's source hash the image was built from.
	Source string `json:"source"`
	// BuiltAt is when the build ran.
	BuiltAt time.Time `json:"builtAt"`
	// Size is how many bytes a pull transfers: manifest, config and layers.
	Size int64 `json:"size"`
}

// Config configures a Builder.
type Config struct {
	// Dir holds build records, logs and work directories, normally
	// <data>/artifacts. Created if missing.
	Dir string
	// Registry is socle's own registry: every image is stored there, also
	// those pushed elsewhere, so that this machine runs them without pulling.
	Registry *registry.Store
	// Host is host:port at which Registry is served (socle's listen address);
	// it names images in Artifact.Ref: <Host>/apps/<app>@sha256:….
	Host string
	// Timeout bounds one build command; default DefaultTimeout.
	Timeout time.Duration
	// Env is added to the build command's environment, KEY=value.
	Env []string
	// Remote are the options for external registries (pushes and Resolve):
	// authentication, transport. Default: the credentials of the Docker
	// configuration (~/.docker/config.json, credential helpers).
	Remote []remote.Option
	// Logger receives a line per build; default: discard.
	Logger *slog.Logger
	// Sandbox runs the build commands; nil is sandbox.Detect(). A build
	// in the sandbox sees the host read-only (its toolchain), Hide as
	// empty directories, its work directory and its app's cache
	// (<Dir>/cache/<app>, its HOME, GOCACHE and GOPATH) writable, and
	// processes of its own only. Refused fails every build with its
	// reason; sandbox.Off() runs them as socle's user.
	Sandbox *sandbox.Sandbox
	// Hide are the directories a build must not see: socle's data
	// directory. Default: the parent of Dir.
	Hide []string
	// GoSeed is the Go build cache of the standard library that socle
	// compiles itself and puts into the cache of each sandboxed Go build
	// (see goseed.go). Default: <user cache directory>/socle/go-std; "-"
	// for none.
	GoSeed string
}

// Builder builds apps into images. It is safe for concurrent use; two builds
// of the same app version run once.
type Builder struct {
	cfg    Config
	log    *slog.Logger
	remote []remote.Option
	locks  keylock.Map

	seedMu sync.Mutex // fills the Go seed, once
	seeded bool
}

// NewBuilder returns a Builder, creating its directories and removing what
// interrupted builds left.
func NewBuilder(cfg Config) (*Builder, error) {
	if cfg.Dir == "" || cfg.Registry == nil || cfg.Host == "" {
		return nil, errors.New("artifact builder: Dir, Registry and Host are required")
	}
	// A build runs in the app's directory: every path it is handed
	// ($SOCLE_OUT, the fallback caches) must not depend on where it runs.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("artifact builder: %w", err)
	}
	cfg.Dir = dir
	if cfg.Sandbox == nil {
		cfg.Sandbox = sandbox.Detect()
	}
	if cfg.Hide == nil {
		cfg.Hide = []string{filepath.Dir(dir)}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch cfg.GoSeed {
	case "-":
		cfg.GoSeed = ""
	case "":
		if d, err := os.UserCacheDir(); err == nil {
			cfg.GoSeed = filepath.Join(d, "socle", "go-std")
		}
	}
	// Logs hold what builds print (secrets, at times), caches what they
	// fetch: socle's alone, each app's cache given to its builds' user.
	// (cache is searchable, so that a build's user reaches its own.)
	// Dir first: made by the first MkdirAll below, it would get that
	// directory's mode (0700 for logs: no build's user would reach its
	// work directory).
	if err := os.MkdirAll(cfg.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("artifact builder: %w", err)
	}
	for d, mode := range map[string]os.FileMode{"builds": 0o755, "logs": 0o700, "work": 0o755, "cache": 0o711} {
		p := filepath.Join(cfg.Dir, d)
		if err := os.MkdirAll(p, mode); err != nil {
			return nil, fmt.Errorf("artifact builder: %w", err)
		}
		// Those of an earlier socle were readable by all.
		if err := os.Chmod(p, mode); err != nil {
			return nil, fmt.Errorf("artifact builder: %w", err)
		}
	}
	// Work directories of builds that a crash interrupted: no build lasts
	// twice its timeout.
	if entries, err := os.ReadDir(filepath.Join(cfg.Dir, "work")); err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 2*cfg.Timeout {
				os.RemoveAll(filepath.Join(cfg.Dir, "work", e.Name()))
			}
		}
	}
	b := &Builder{cfg: cfg, log: cfg.Logger, remote: cfg.Remote}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.remote == nil {
		b.remote = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	}
	return b, nil
}

// repository is where an app's images live in socle's registry.
func repository(app string) string { return "apps/" + app }

// record is a build record: the cache entry of one app version.
type record struct {
	Artifact
	// Pushed lists the external repositories the image was pushed to.
	Pushed []string `json:"pushed,omitempty"`
}

// Build returns the image of the app at revision rev of repo: the one built
// before for the same app source, or a new one. It runs the app's build
// command, packages its output as an image, and stores it (see the package
// documentation). A failed command returns a *BuildError and stores nothing.
func (b *Builder) Build(ctx context.Context, repo *source.Repo, rev source.Revision, app *spec.App) (Artifact, error) {
	return b.BuildProgress(ctx, repo, rev, app, nil)
}

// BuildProgress is Build telling progress, when not nil, what the build
// is doing, so that a status can say it: progress is called only when the
// build command runs (an image built before is returned without a call),
// with the last line of its log each time the command prints; or once
// when the same build already runs for another caller, and this one waits
// for its result. progress must not block.
func (b *Builder) BuildProgress(ctx context.Context, repo *source.Repo, rev source.Revision, app *spec.App, progress func(line string)) (Artifact, error) {
	bc := app.Config.Build
	if bc == nil {
		return Artifact{}, fmt.Errorf("building %s: %w", app.Name, ErrNoBuild)
	}
	key := b.key(app)
	var waiting func()
	if progress != nil {
		waiting = func() { progress("waiting for the same build of " + app.Name + ", already running") }
	}
	defer b.locks.LockWaiting(key, waiting)()

	rec, err := b.cached(app, key)
	if err != nil {
		return Artifact{}, fmt.Errorf("building %s: %w", app.Name, err)
	}
	if rec != nil {
		b.log.Debug("reusing image", "app", app.Name, "revision", rev.SHA, "builtFrom", rec.Revision, "digest", rec.Digest)
	} else {
		start := time.Now()
		a, err := b.build(ctx, repo, rev, app, progress)
		if err != nil {
			return Artifact{}, err
		}
		rec = &record{Artifact: a}
		if err := b.save(key, rec); err != nil {
			return Artifact{}, fmt.Errorf("building %s: %w", app.Name, err)
		}
		b.log.Info("built image", "app", app.Name, "revision", rev.SHA, "digest", a.Digest, "size", a.Size, "duration", time.Since(start).Round(time.Millisecond))
	}
	// A push that fails is tried again by the next Build, without building.
	if bc.Image != "" && !slices.Contains(rec.Pushed, bc.Image) {
		if err := b.push(ctx, rec, bc.Image); err != nil {
			return Artifact{}, fmt.Errorf("building %s: %w", app.Name, err)
		}
		rec.Pushed = append(rec.Pushed, bc.Image)
		if err := b.save(key, rec); err != nil {
			return Artifact{}, fmt.Errorf("building %s: %w", app.Name, err)
		}
	}
	a := rec.Artifact
	a.Ref = b.cfg.Host + "/" + repository(app.Name) + "@" + a.Digest
	if bc.Image != "" {
		a.Ref = bc.Image + "@" + a.Digest
	}
	return a, nil
}

// key identifies an app version: what the image depends on. The source
// hash covers the app's files, its socle.yaml (build command) and its Score
// file (entrypoint, variables).
func (b *Builder) key(app *spec.App) string {
	h := sha256.New()
	fmt.Fprintf(h, "socle-image/1\x00%s\x00%s\x00%s/%s", app.Name, app.Source, runtime.GOOS, runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))
}

func (b *Builder) recordPath(app, key string) string {
	return filepath.Join(b.cfg.Dir, "builds", app, key+".json")
}

// cached returns the build record of key if its image is still in the
// registry, or nil.
func (b *Builder) cached(app *spec.App, key string) (*record, error) {
	data, err := os.ReadFile(b.recordPath(app.Name, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		b.log.Warn("ignoring unreadable build record", "app", app.Name, "err", err)
		return nil, nil
	}
	if _, _, _, err := b.cfg.Registry.Manifest(repository(app.Name), rec.Digest); err != nil {
		b.log.Warn("image of build record missing from registry: building again", "app", app.Name, "digest", rec.Digest, "err", err)
		return nil, nil
	}
	return &rec, nil
}

func (b *Builder) save(key string, rec *record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(b.recordPath(rec.App, key), data)
}

// push copies the image from socle's registry to repo, tagged with the
// revision it was built from.
func (b *Builder) push(ctx context.Context, rec *record, repo string) error {
	tag, err := name.NewTag(repo + ":" + rec.Revision)
	if err != nil {
		return fmt.Errorf("build.image %q: %w", repo, err)
	}
	h, err := registry.ParseDigest(rec.Digest)
	if err != nil {
		return err
	}
	img, err := b.cfg.Registry.Image(h)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, b.remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("pushing to %s: %w", repo, err)
	}
	return nil
}

func (b *Builder) remoteOptions(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, b.remote...)
}

// Resolve pins an image reference to the digest of its manifest (of the
// index, for a multi-platform image), asking its registry. A reference that
// holds a digest already is returned as it is.
func (b *Builder) Resolve(ctx context.Context, ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("resolving %q: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	if desc, err := remote.Head(r, b.remoteOptions(ctx)...); err == nil {
		return desc.Digest.String(), nil
	}
	// Some registries answer GET but not HEAD on manifests.
	desc, err := remote.Get(r, b.remoteOptions(ctx)...)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}

// Register records digest, an image a CI pipeline pushed to socle's
// registry under the app's repository, as the image of the app's current
// source: Build then returns it rather than building. An image that is not
// in the registry is refused.
func (b *Builder) Register(app *spec.App, rev source.Revision, digest string) (Artifact, error) {
	if _, _, _, err := b.cfg.Registry.Manifest(repository(app.Name), digest); err != nil {
		return Artifact{}, fmt.Errorf("image %s is not in socle's registry under %s (push it to /v2/%s first): %w", digest, repository(app.Name), repository(app.Name), err)
	}
	key := b.key(app)
	defer b.locks.Lock(key)()
	rec := &record{Artifact: Artifact{Digest: digest, App: app.Name, Revision: rev.SHA, Source: app.Source}}
	if err := b.save(key, rec); err != nil {
		return Artifact{}, fmt.Errorf("registering %s for %s: %w", digest, app.Name, err)
	}
	a := rec.Artifact
	a.Ref = b.cfg.Host + "/" + repository(app.Name) + "@" + digest
	return a, nil
}
