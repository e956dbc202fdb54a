package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/supervise"
	"github.com/socle-dev/socle/internal/sandbox"
	"github.com/socle-dev/socle/internal/sandbox/cgroup"
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
var ErrStateLocked = supervise.ErrStateLocked

// Driver is the local runtime driver. Its zero value is not usable; call New.
type Driver struct {
	opts    Options
	sandbox *sandbox.Sandbox // opts.Sandbox
	// cgroups is where replicas with limits get a group, under cgScope;
	// nil if limits are not enforced (sandbox.Limits says why).
	cgroups *cgroup.Hierarchy
	cgScope string
	log     *slog.Logger
	lock    *os.File // the flock on StateDir/lock
	sup     *supervise.Supervisor[*process]
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
	lock, err := supervise.LockStateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	d := &Driver{
		opts:    opts,
		sandbox: opts.Sandbox,
		cgroups: opts.Sandbox.Cgroups(),
		cgScope: cgroupScope(dir),
		log:     opts.Logger.With("runtime", "local"),
		lock:    lock,
		// The exit status of a process that ended while socle was away is
		// unknown: it was not socle's child.
		sup: supervise.New[*process]("local", func(runtime.Exit) string { return lostReason }),
	}
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
	r.Lock()
	defer r.Unlock()
	if err := d.sup.Add(r.Replica); err != nil {
		return runtime.Handle{}, err
	}
	// The replica learns its host ports from its spec and environment.
	r.Spec = r.Spec.ExpandPorts(func(p runtime.Port) int {
		return supervise.PortOf(r.Ports[slices.Index(r.Spec.Ports, p)].Address)
	})
	r.env = environ(r.Spec, r.Ports, r.dir)
	p, err := r.create()
	if err != nil {
		if rmErr := r.Remove(ctx); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		d.sup.Forget(r.Replica)
		return runtime.Handle{}, fmt.Errorf("starting replica %s: %w", spec.Ref, err)
	}
	r.SuperviseLocked(p)
	return r.Handle(), nil
}

// Status reports a replica's status; see runtime.Driver.
func (d *Driver) Status(_ context.Context, h runtime.Handle) (runtime.Status, error) {
	return d.sup.Status(h)
}

// List reports every known replica; see runtime.Driver.
func (d *Driver) List(_ context.Context) ([]runtime.Status, error) { return d.sup.List() }

// Recover takes a replica found in the state directory under supervision;
// see runtime.Driver.
func (d *Driver) Recover(_ context.Context, h runtime.Handle) error { return d.sup.Recover(h) }

// Stop stops a replica and forgets it; see runtime.Driver.
func (d *Driver) Stop(ctx context.Context, h runtime.Handle) error { return d.sup.Stop(ctx, h) }

// StopAll stops every known replica; see runtime.Driver.
func (d *Driver) StopAll(ctx context.Context) error { return d.sup.StopAll(ctx) }

// Logs returns a replica's output; see runtime.Driver and the package
// documentation.
func (d *Driver) Logs(ctx context.Context, h runtime.Handle, follow bool) (io.ReadCloser, error) {
	r, err := d.sup.Lookup(h)
	if err != nil {
		return nil, err
	}
	return openLog(ctx, d.logPath(r.ID), d.opts.LogFiles, follow, r.Gone())
}

// Watch returns the driver's events; see runtime.Driver.
func (d *Driver) Watch(ctx context.Context) <-chan runtime.Event { return d.sup.Watch(ctx) }

// Close detaches the driver: supervision ends, replicas keep running, the
// state directory is released for the next driver.
func (d *Driver) Close() error {
	if !d.sup.Close() {
		return nil
	}
	return d.lock.Close() // releases the flock
}
