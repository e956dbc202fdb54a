package container

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/supervise"
)

// Options configure a Driver.
type Options struct {
	// StateDir is the driver's state directory (see the package
	// documentation); required. Two drivers never share one.
	StateDir string
	// Registry is the host (and port) of socle's registry: images there
	// are pulled with a pull token of their app (PullToken).
	Registry string
	// PullToken returns the token with which app's images are pulled from
	// socle's registry in env; nil pulls without credentials.
	PullToken func(ctx context.Context, app, env string) (string, error)
	// Logger receives the driver's own log; nil discards it.
	Logger *slog.Logger
	// Clock dates when a replica started (Status.StartedAt). Nil is the
	// system's.
	Clock clock.Clock
}

// Labels that every container of a driver bears: what finds them again, and
// what pruning selects. Nothing without OwnerLabel=<the driver's owner id> is
// ever touched.
const (
	OwnerLabel   = "socle.dev/owner"
	AppLabel     = "socle.dev/app"
	EnvLabel     = "socle.dev/env"
	ReleaseLabel = "socle.dev/release"
	IndexLabel   = "socle.dev/replica"
)

// ErrStateLocked is returned by New when another driver uses the state
// directory.
var ErrStateLocked = supervise.ErrStateLocked

// Driver is the container runtime driver. Its zero value is not usable;
// call New.
type Driver struct {
	opts  Options
	pm    podman
	owner string // the value of OwnerLabel on this state directory's containers
	log   *slog.Logger
	lock  *os.File
	sup   *supervise.Supervisor[*supervise.Run]
}

var _ runtime.Driver = (*Driver)(nil)

const replicasDir = "replicas"

// New returns a driver over opts.StateDir, creating it if needed. Every
// replica recorded there is listed as Detached or Lost until Recover;
// containers of this state directory's owner that no record names (socle
// died between creating one and recording it, which it does in that
// order, or removing a record and its container) are removed.
func New(opts Options) (*Driver, error) {
	if opts.StateDir == "" {
		return nil, errors.New("container runtime: no state directory")
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	opts.StateDir = dir
	opts.Clock = clock.Or(opts.Clock)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, replicasDir), 0o700); err != nil {
		return nil, fmt.Errorf("container runtime: creating state directory: %w", err)
	}
	pm, err := newPodman(filepath.Join(dir, "containers.conf"))
	if err != nil {
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	lock, err := supervise.LockStateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	owner, err := ownerID(filepath.Join(dir, "owner"))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	d := &Driver{
		opts: opts, pm: pm, owner: owner, lock: lock,
		log: opts.Logger.With("runtime", "container"),
		// Podman keeps the exit of a container that ended while socle
		// was away: it is in the run's exit (see adopt).
		sup: supervise.New[*supervise.Run](TypeName, func(e runtime.Exit) string { return e.Reason }),
	}
	if err := d.load(); err != nil {
		d.Close()
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	return d, nil
}

// ownerID reads the owner id at path, or makes one.
func ownerID(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) == 16 {
		return strings.TrimSpace(string(b)), nil
	}
	id := randomHex(8)
	return id, os.WriteFile(path, []byte(id+"\n"), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// Name returns "container".
func (d *Driver) Name() string { return TypeName }

// Capabilities of the container driver: images run by Podman, exec probes
// (podman exec), the container ports of the spec (PORT is the container
// port, published on a loopback port of the host), re-attachment.
func (d *Driver) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{ExecProbes: true, Reattach: true}
}

// Start pulls the image if Podman lacks it, creates the replica's
// container and starts it; see runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.ReplicaSpec) (runtime.Handle, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return runtime.Handle{}, err
	}
	if spec.Image == "" {
		return runtime.Handle{}, fmt.Errorf("%w: replica %s: image: the container runtime runs an image and needs its reference", runtime.ErrInvalid, spec.Ref)
	}
	r := d.newReplica(spec, containerName(spec.Ref))
	r.Lock()
	defer r.Unlock()
	if err := d.sup.Add(r.Replica); err != nil {
		return runtime.Handle{}, err
	}
	fail := func(err error) (runtime.Handle, error) {
		_ = os.Remove(r.recordPath())
		_, _ = d.pm.run(context.WithoutCancel(ctx), "rm", "-f", "--ignore", r.ID)
		d.sup.Forget(r.Replica)
		return runtime.Handle{}, fmt.Errorf("starting replica %s: %w", spec.Ref, err)
	}
	if err := d.pull(ctx, spec); err != nil {
		return fail(err)
	}
	if err := r.PersistLocked(); err != nil { // before the container exists
		return fail(err)
	}
	if err := r.create(ctx); err != nil {
		return fail(err)
	}
	run, err := r.start(ctx)
	if err != nil {
		return fail(err)
	}
	r.SuperviseLocked(run)
	return r.Handle(), nil
}

// containerName names a replica's container after what it runs, with a
// suffix of its own: a new container never takes the name of one that is
// still being removed.
func containerName(ref runtime.Ref) string {
	return fmt.Sprintf("socle-%s-%s-%s-%d-%s", ref.Env, ref.App, ref.Release, ref.Index, randomHex(3))
}

// pull pulls the spec's image unless Podman has it: from socle's registry
// with the app's pull token, from a registry on loopback without TLS.
func (d *Driver) pull(ctx context.Context, spec runtime.ReplicaSpec) error {
	if _, err := d.pm.run(ctx, "image", "exists", spec.Image); err == nil {
		return nil
	}
	args := []string{"pull", "--quiet"}
	host := registryHost(spec.Image)
	if isLoopback(host) {
		args = append(args, "--tls-verify=false")
	}
	if d.opts.PullToken != nil && host != "" && host == d.opts.Registry {
		tok, err := d.opts.PullToken(ctx, spec.App, spec.Env)
		if err != nil {
			return fmt.Errorf("pull token of %s: %w", spec.App, err)
		}
		// The credentials go in an auth file of socle's user, never on
		// podman's command line, which every user of the machine reads.
		auth, err := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte("pull-" + spec.App + ":" + tok)),
		}}})
		if err != nil {
			return err
		}
		f, err := os.CreateTemp(d.opts.StateDir, "auth-*.json")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		_, err = f.Write(auth)
		if err = errors.Join(err, f.Close()); err != nil {
			return err
		}
		args = append(args, "--authfile", f.Name())
	}
	if _, err := d.pm.run(ctx, append(args, spec.Image)...); err != nil {
		return fmt.Errorf("pulling %s: %w", spec.Image, err)
	}
	return nil
}

// registryHost is the registry of an image reference, "" for a reference
// without one (Podman's short names, image IDs).
func registryHost(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if !ok || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return ""
	}
	return first
}

func isLoopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Status reports a replica; see runtime.Driver.
func (d *Driver) Status(_ context.Context, h runtime.Handle) (runtime.Status, error) {
	return d.sup.Status(h)
}

// List reports every known replica; see runtime.Driver.
func (d *Driver) List(_ context.Context) ([]runtime.Status, error) { return d.sup.List() }

// Recover takes a replica found in the state directory under supervision;
// see runtime.Driver.
func (d *Driver) Recover(_ context.Context, h runtime.Handle) error { return d.sup.Recover(h) }

// Stop stops a replica and removes its container; see runtime.Driver.
func (d *Driver) Stop(ctx context.Context, h runtime.Handle) error { return d.sup.Stop(ctx, h) }

// StopAll stops every known replica, in parallel.
func (d *Driver) StopAll(ctx context.Context) error { return d.sup.StopAll(ctx) }

// Logs returns the container's output, from podman logs; see
// runtime.Driver. A followed log ends when the container stops or is
// removed, as well as when ctx ends or the reader is closed.
func (d *Driver) Logs(ctx context.Context, h runtime.Handle, follow bool) (io.ReadCloser, error) {
	r, err := d.sup.Lookup(h)
	if err != nil {
		return nil, err
	}
	args := []string{"logs"}
	if follow {
		args = append(args, "--follow")
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := d.pm.command(ctx, nil, append(args, r.ID)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("logs of replica %s: %w", r.Spec.Ref, err)
	}
	go func() {
		err := cmd.Wait()
		if ctx.Err() != nil {
			err = nil // closed or ended: not the log's fault
		}
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (l *logReader) Close() error {
	l.cancel()
	return l.PipeReader.Close()
}

// Watch returns the driver's events; see runtime.Driver.
func (d *Driver) Watch(ctx context.Context) <-chan runtime.Event { return d.sup.Watch(ctx) }

// Close detaches the driver: its containers keep running (Podman's conmon
// watches them, not socle); see runtime.Driver.
func (d *Driver) Close() error {
	if !d.sup.Close() {
		return nil
	}
	return d.lock.Close()
}

// record is a replica's file in the state directory.
type record struct {
	Spec      runtime.ReplicaSpec   `json:"spec"`
	Container string                `json:"container"`
	Ports     []runtime.PortBinding `json:"ports"`
	Restarts  int                   `json:"restarts"`
	Failures  int                   `json:"failures"`
	LastExit  *runtime.Exit         `json:"lastExit,omitempty"`
	StartedAt time.Time             `json:"startedAt,omitzero"`
}

// load lists the replicas recorded in the state directory and removes the
// owner's containers that none names.
func (d *Driver) load() error {
	entries, err := os.ReadDir(filepath.Join(d.opts.StateDir, replicasDir))
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.opts.StateDir, replicasDir, e.Name()))
		if err != nil {
			return err
		}
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil || rec.Container != id {
			d.log.Warn("ignoring an unreadable replica record", "file", e.Name(), "err", err)
			continue
		}
		r := d.newReplica(rec.Spec, id)
		r.Ports, r.Restarts, r.Failures, r.LastExit = rec.Ports, rec.Restarts, rec.Failures, rec.LastExit
		r.Run = d.adopt(r, rec.StartedAt)
		d.sup.Load(r.Replica)
		known[id] = true
	}
	names, err := d.pm.run(d.sup.Context(), "ps", "--all", "--filter", "label="+OwnerLabel+"="+d.owner, "--format", "{{.Names}}")
	if err != nil {
		return err
	}
	for _, n := range strings.Fields(names) {
		if !known[n] {
			d.log.Info("removing a container no record names", "container", n)
			if _, err := d.pm.run(d.sup.Context(), "rm", "--force", "--ignore", n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Prune removes every container of owner that runs on this machine and
// returns their names: what socle's data directory owned, when it is
// removed for good (the tests' cleanup). It is not needed in normal
// operation, where Stop removes each container.
func Prune(ctx context.Context, stateDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "owner"))
	if err != nil {
		return nil, err
	}
	pm, err := newPodman(filepath.Join(stateDir, "containers.conf"))
	if err != nil {
		return nil, err
	}
	names, err := pm.run(ctx, "ps", "--all", "--filter", "label="+OwnerLabel+"="+strings.TrimSpace(string(b)), "--format", "{{.Names}}")
	if err != nil || names == "" {
		return nil, err
	}
	list := strings.Fields(names)
	_, err = pm.run(ctx, append([]string{"rm", "--force", "--ignore", "--time", "0"}, list...)...)
	return list, err
}
