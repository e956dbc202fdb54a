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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
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
var ErrStateLocked = errors.New("state directory in use by another driver")

// Driver is the container runtime driver. Its zero value is not usable;
// call New.
type Driver struct {
	opts   Options
	pm     podman
	owner  string // the value of OwnerLabel on this state directory's containers
	log    *slog.Logger
	lock   *os.File
	ctx    context.Context // ends when Close is called
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below; never held while taking a replica's mu,
	// which may be held while taking it.
	mu       sync.Mutex
	closed   bool
	replicas map[string]*replica // by id, the container's name
	ports    map[int]bool        // host ports held by known replicas

	subsMu sync.Mutex
	subs   map[chan runtime.Event]struct{} // nil once closed
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
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	// A descriptor may linger for an instant in a child forked before it
	// was closed (until that child execs): try a little.
	err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for i := 0; i < 50 && errors.Is(err, unix.EWOULDBLOCK); i++ {
		time.Sleep(20 * time.Millisecond)
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("container runtime: %s: %w", dir, ErrStateLocked)
		}
		return nil, fmt.Errorf("container runtime: locking %s: %w", dir, err)
	}
	owner, err := ownerID(filepath.Join(dir, "owner"))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("container runtime: %w", err)
	}
	d := &Driver{
		opts: opts, pm: pm, owner: owner, lock: lock,
		log:      opts.Logger.With("runtime", "container"),
		replicas: map[string]*replica{},
		ports:    map[int]bool{},
		subs:     map[chan runtime.Event]struct{}{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := d.add(r); err != nil {
		return runtime.Handle{}, err
	}
	fail := func(err error) (runtime.Handle, error) {
		_ = os.Remove(r.recordPath())
		_, _ = d.pm.run(context.WithoutCancel(ctx), "rm", "-f", "--ignore", r.id)
		d.forget(r)
		return runtime.Handle{}, fmt.Errorf("starting replica %s: %w", spec.Ref, err)
	}
	if err := d.pull(ctx, spec); err != nil {
		return fail(err)
	}
	if err := r.persistLocked(); err != nil { // before the container exists
		return fail(err)
	}
	if err := r.create(ctx); err != nil {
		return fail(err)
	}
	run, err := r.start(ctx)
	if err != nil {
		return fail(err)
	}
	r.superviseLocked()
	r.setRunLocked(run)
	return r.handle(), nil
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

// add registers r, new, and gives it its host ports. ErrExists if a replica
// of its Ref is known.
func (d *Driver) add(r *replica) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return runtime.ErrClosed
	}
	for _, o := range d.replicas {
		if o.spec.Ref == r.spec.Ref {
			return fmt.Errorf("replica %s: %w", r.spec.Ref, runtime.ErrExists)
		}
	}
	for _, p := range r.spec.Ports {
		port, err := d.freePortLocked()
		if err != nil {
			d.releasePortsLocked(r.ports)
			return fmt.Errorf("replica %s: port %s: %w", r.spec.Ref, p.Name, err)
		}
		r.ports = append(r.ports, runtime.PortBinding{Name: p.Name, Port: p.Port, Address: addr(port)})
	}
	d.replicas[r.id] = r
	return nil
}

// freePortLocked returns a loopback port free now that no known replica
// holds. Podman binds it when the container starts; another program could
// take it in between, which the start then reports.
func (d *Driver) freePortLocked() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, err
		}
		if !d.ports[port] {
			d.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

func (d *Driver) releasePortsLocked(ports []runtime.PortBinding) {
	for _, b := range ports {
		delete(d.ports, portOf(b.Address))
	}
}

func (d *Driver) forget(r *replica) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.replicas[r.id] == r {
		delete(d.replicas, r.id)
		d.releasePortsLocked(r.ports)
	}
}

func (d *Driver) lookup(h runtime.Handle) (*replica, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, runtime.ErrClosed
	}
	r, ok := d.replicas[h.ID]
	if !ok || h.Driver != d.Name() {
		return nil, fmt.Errorf("%s replica %q: %w", h.Driver, h.ID, runtime.ErrNotFound)
	}
	return r, nil
}

// all returns the known replicas, ordered by Ref.
func (d *Driver) all() ([]*replica, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, runtime.ErrClosed
	}
	rs := make([]*replica, 0, len(d.replicas))
	for _, r := range d.replicas {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *replica) int { return a.spec.Ref.Compare(b.spec.Ref) })
	return rs, nil
}

// Status reports a replica; see runtime.Driver.
func (d *Driver) Status(_ context.Context, h runtime.Handle) (runtime.Status, error) {
	r, err := d.lookup(h)
	if err != nil {
		return runtime.Status{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statusLocked(), nil
}

// List reports every known replica; see runtime.Driver.
func (d *Driver) List(_ context.Context) ([]runtime.Status, error) {
	rs, err := d.all()
	if err != nil {
		return nil, err
	}
	sts := make([]runtime.Status, len(rs))
	for i, r := range rs {
		r.mu.Lock()
		sts[i] = r.statusLocked()
		r.mu.Unlock()
	}
	return sts, nil
}

// Recover takes a replica found in the state directory under supervision;
// see runtime.Driver.
func (d *Driver) Recover(_ context.Context, h runtime.Handle) error {
	r, err := d.lookup(h)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil || r.stopping {
		return nil
	}
	r.superviseLocked()
	if r.run.ended() { // the supervisor records the exit and starts it again
		r.state, r.message = runtime.Lost, lostReason
		return nil
	}
	r.startingLocked()
	r.log.Info("replica recovered", "pid", r.run.pid)
	r.emitLocked(runtime.EventRecovered, fmt.Sprintf("container %s", r.id))
	return nil
}

// Stop stops a replica and removes its container; see runtime.Driver.
func (d *Driver) Stop(ctx context.Context, h runtime.Handle) error {
	r, err := d.lookup(h)
	if err != nil {
		return err
	}
	return r.stop(ctx)
}

// StopAll stops every known replica, in parallel.
func (d *Driver) StopAll(ctx context.Context) error {
	rs, err := d.all()
	if err != nil {
		return err
	}
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { errs[i] = r.stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Logs returns the container's output, from podman logs; see
// runtime.Driver. A followed log ends when the container stops or is
// removed, as well as when ctx ends or the reader is closed.
func (d *Driver) Logs(ctx context.Context, h runtime.Handle, follow bool) (io.ReadCloser, error) {
	r, err := d.lookup(h)
	if err != nil {
		return nil, err
	}
	args := []string{"logs"}
	if follow {
		args = append(args, "--follow")
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := d.pm.command(ctx, nil, append(args, r.id)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("logs of replica %s: %w", r.spec.Ref, err)
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
func (d *Driver) Watch(ctx context.Context) <-chan runtime.Event {
	ch := make(chan runtime.Event, 64)
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	if d.subs == nil {
		close(ch)
		return ch
	}
	d.subs[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		d.subsMu.Lock()
		defer d.subsMu.Unlock()
		if _, ok := d.subs[ch]; ok {
			delete(d.subs, ch)
			close(ch)
		}
	})
	return ch
}

func (d *Driver) publish(ev runtime.Event) {
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Close detaches the driver: its containers keep running (Podman's conmon
// watches them, not socle); see runtime.Driver.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.subsMu.Lock()
	for ch := range d.subs {
		close(ch)
	}
	d.subs = nil
	d.subsMu.Unlock()
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
		r.ports, r.restarts, r.failures, r.lastExit = rec.Ports, rec.Restarts, rec.Failures, rec.LastExit
		r.run = d.adopt(r, rec.StartedAt)
		d.replicas[id] = r
		for _, p := range r.ports {
			d.ports[portOf(p.Address)] = true
		}
		known[id] = true
	}
	names, err := d.pm.run(d.ctx, "ps", "--all", "--filter", "label="+OwnerLabel+"="+d.owner, "--format", "{{.Names}}")
	if err != nil {
		return err
	}
	for _, n := range strings.Fields(names) {
		if !known[n] {
			d.log.Info("removing a container no record names", "container", n)
			if _, err := d.pm.run(d.ctx, "rm", "--force", "--ignore", n); err != nil {
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

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func portOf(address string) int {
	_, p, _ := net.SplitHostPort(address)
	port, _ := strconv.Atoi(p)
	return port
}

// envName turns a port name into the end of a variable name: "metrics-v2"
// → "METRICS_V2".
func envName(name string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z':
			return c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			return c
		}
		return '_'
	}, name)
}
