package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/sandbox"
)

// Options configure a Driver.
type Options struct {
	// StateDir is the driver's state directory (see the package
	// documentation); required. Two drivers never share one.
	StateDir string
	// Logger receives the driver's own log; nil discards it.
	Logger *slog.Logger
	// LogSize is the size from which a replica's log is rotated (default
	// 10 MiB).
	LogSize int64
	// LogFiles is how many rotated logs are kept per replica (default 3).
	LogFiles int
	// Clock dates when a replica started (Status.StartedAt), which socle
	// compares with its own clock for the progress deadline: the two must
	// be one clock. Nil is the system's.
	Clock clock.Clock
	// Sandbox runs the replicas and exec probes (see the package
	// documentation); nil is sandbox.Detect(). A Refused sandbox makes
	// Start fail with its reason; sandbox.Off() runs them as plain
	// processes.
	Sandbox *sandbox.Sandbox
}

// Defaults of Options.
const (
	DefaultLogSize  = 10 << 20
	DefaultLogFiles = 3
)

// ErrStateLocked is returned by New when another driver uses the state
// directory.
var ErrStateLocked = errors.New("state directory in use by another driver")

// Driver is the local runtime driver. Its zero value is not usable; call New.
type Driver struct {
	opts    Options
	sandbox *sandbox.Sandbox // opts.Sandbox
	log     *slog.Logger
	lock    *os.File           // the flock on StateDir/lock
	ctx     context.Context    // ends when Close is called: supervision ends
	cancel  context.CancelFunc //
	wg      sync.WaitGroup     // supervisors and pidfd watchers

	// mu guards the fields below. It is never held while taking a
	// replica's mutex, which may be held while taking mu.
	mu       sync.Mutex
	closed   bool
	replicas map[string]*replica // by id
	ports    map[int]bool        // host ports held by known replicas

	subsMu sync.Mutex
	subs   map[chan runtime.Event]struct{} // nil once closed
}

var _ runtime.Driver = (*Driver)(nil)

// New returns a driver over opts.StateDir, creating it if needed, with every
// replica recorded there listed as Detached or Lost until Recover.
func New(opts Options) (*Driver, error) {
	if opts.StateDir == "" {
		return nil, errors.New("local runtime: no state directory")
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	opts.StateDir = dir
	opts.LogSize = cmp.Or(opts.LogSize, DefaultLogSize)
	opts.LogFiles = cmp.Or(opts.LogFiles, DefaultLogFiles)
	opts.Clock = clock.Or(opts.Clock)
	if opts.Sandbox == nil {
		opts.Sandbox = sandbox.Detect()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, replicasDir), 0o700); err != nil {
		return nil, fmt.Errorf("local runtime: creating state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	// A lock released a moment ago may still be held for an instant by a
	// process forked (by any goroutine of this program) before the lock's
	// descriptor was closed, until that process execs: wait a little.
	err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for i := 0; i < 50 && errors.Is(err, unix.EWOULDBLOCK); i++ {
		time.Sleep(20 * time.Millisecond)
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("local runtime: %s: %w", dir, ErrStateLocked)
		}
		return nil, fmt.Errorf("local runtime: locking %s: %w", dir, err)
	}
	d := &Driver{
		opts:     opts,
		sandbox:  opts.Sandbox,
		log:      opts.Logger.With("runtime", "local"),
		lock:     lock,
		replicas: map[string]*replica{},
		ports:    map[int]bool{},
		subs:     map[chan runtime.Event]struct{}{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.load(); err != nil {
		d.Close()
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	return d, nil
}

// Name returns "local".
func (d *Driver) Name() string { return "local" }

// Capabilities of the local driver: host executables only, exec probes,
// ports of its own per replica, re-attachment.
func (d *Driver) Capabilities() runtime.Capabilities {
	return runtime.Capabilities{HostExecutables: true, ExecProbes: true, PerReplicaPorts: true, Reattach: true}
}

// Start starts a replica; see runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.ReplicaSpec) (runtime.Handle, error) {
	spec = spec.WithDefaults()
	if err := d.sandbox.Ready(); err != nil {
		return runtime.Handle{}, fmt.Errorf("starting replica %s: %w", spec.Ref, err)
	}
	if err := check(spec, d.sandbox.Enabled()); err != nil {
		return runtime.Handle{}, err
	}
	if err := d.sandbox.Reachable(sandboxName(spec.Ref), spec.Root); err != nil {
		return runtime.Handle{}, fmt.Errorf("%w: replica %s: root: %w", runtime.ErrInvalid, spec.Ref, err)
	}
	r := d.newReplica(spec)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := d.add(r); err != nil {
		return runtime.Handle{}, err
	}
	p, err := r.create()
	if err != nil {
		d.forget(r)
		if rmErr := os.RemoveAll(r.dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return runtime.Handle{}, fmt.Errorf("starting replica %s: %w", spec.Ref, err)
	}
	r.superviseLocked()
	r.setProcessLocked(p)
	return r.handle(), nil
}

// add registers r, new, and gives it its ports. ErrExists if its id is taken.
func (d *Driver) add(r *replica) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return runtime.ErrClosed
	}
	if _, ok := d.replicas[r.id]; ok {
		return fmt.Errorf("replica %s: %w", r.spec.Ref, runtime.ErrExists)
	}
	for _, p := range r.spec.Ports {
		port, err := d.freePortLocked()
		if err != nil {
			d.releasePortsLocked(r.ports)
			return fmt.Errorf("replica %s: port %s: %w", r.spec.Ref, p.Name, err)
		}
		r.ports = append(r.ports, runtime.PortBinding{Name: p.Name, Port: p.Port, Address: addr(port)})
	}
	r.spec = r.spec.ExpandPorts(func(p runtime.Port) int { return portOf(r.ports[slices.Index(r.spec.Ports, p)].Address) })
	r.env = environ(r.spec, r.ports, r.dir)
	d.replicas[r.id] = r
	return nil
}

// freePortLocked returns a loopback port that is free now and that no known
// replica holds (one in backoff has no socket on its port). The replica
// binds it itself later: another program could take it in between, which the
// replica then reports by failing.
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

// forget removes r from the driver and frees its ports.
func (d *Driver) forget(r *replica) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.replicas[r.id] == r {
		delete(d.replicas, r.id)
		d.releasePortsLocked(r.ports)
	}
}

// lookup returns the replica h names.
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

// Status reports a replica's status; see runtime.Driver.
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
	if r.proc.ended() { // the supervisor records the exit and starts it again
		r.state, r.message = runtime.Lost, lostReason
		return nil
	}
	r.startingLocked()
	r.emitLocked(runtime.EventRecovered, fmt.Sprintf("adopted pid %d", r.proc.pid))
	r.log.Info("replica adopted", "pid", r.proc.pid)
	return nil
}

// Stop stops a replica and forgets it; see runtime.Driver.
func (d *Driver) Stop(ctx context.Context, h runtime.Handle) error {
	r, err := d.lookup(h)
	if err != nil {
		return err
	}
	return r.stop(ctx)
}

// StopAll stops every known replica; see runtime.Driver.
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

// Logs returns a replica's output; see runtime.Driver and the package
// documentation.
func (d *Driver) Logs(ctx context.Context, h runtime.Handle, follow bool) (io.ReadCloser, error) {
	r, err := d.lookup(h)
	if err != nil {
		return nil, err
	}
	return openLog(ctx, r.logPath(), d.opts.LogFiles, follow, r.gone)
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

// publish sends ev to every watcher that has room for it.
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

// Close detaches the driver: supervision ends, replicas keep running, the
// state directory is released for the next driver.
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
	return d.lock.Close() // releases the flock
}
