package runtime

import (
	"context"
	"errors"
	"io"
)

// Driver runs replicas. One Driver value owns the replicas it starts and
// those it finds again after a restart of socle; the reconciler decides how
// many replicas of which release should run, the driver keeps each one
// running.
//
// # Lifecycle of a replica
//
//  1. Start validates the spec (defaults applied, see ReplicaSpec.WithDefaults),
//     allocates the replica's addresses, starts it and returns its Handle as
//     soon as it runs, without waiting for it to be ready. The replica is then
//     Starting; it becomes Running once its readiness probe passes (at once
//     without one), and Status.Ready tells, probe after probe, whether it
//     should receive traffic.
//  2. While it runs the driver supervises it: a replica that exits, or whose
//     liveness probe fails FailureThreshold times in a row, is started again
//     with its addresses unchanged, after an exponential backoff
//     (RestartPolicy). Between attempts it is Backoff, or CrashLoop once it
//     failed CrashLoopAfter times in a row, with the last exit and the tail of
//     its log in Status.LastExit. A replica that ran for ResetAfter counts as
//     healthy again. Restarts never stop by themselves: the reconciler reads
//     the status and decides (roll back, stop, alert).
//  3. Stop sends the replica the polite signal, waits up to its GracePeriod,
//     kills whatever is left of it, and forgets it: afterwards Status returns
//     ErrNotFound and its logs are gone. StopAll does that to every replica
//     the driver knows.
//  4. Close detaches the driver: supervision ends but the replicas keep
//     running, as they do when socle is killed. A new Driver over the same
//     state (for package local, the same state directory) lists them as
//     Detached, or Lost if they ended in the meantime, and Recover takes
//     each one back under supervision: a live replica is adopted as it is,
//     never killed and never started twice; a lost one is started again
//     under its restart policy, its LastExit saying that it ended while
//     nobody watched. Drivers without Capabilities.Reattach stop nothing on
//     Close either, but cannot recover.
//
// Every method is safe for concurrent use, except Close, which must be the
// last call. Errors that callers test are the sentinels below, wrapped.
type Driver interface {
	// Name is the driver's name, as in an environment's runtime.type:
	// "local", "container", "kubernetes".
	Name() string

	// Capabilities says what the driver can do. It is constant for the
	// driver's lifetime: callers and the conformance suite read it instead
	// of discovering limits by failure.
	Capabilities() Capabilities

	// Start starts a new replica and returns its handle. It returns
	// ErrInvalid if the spec is wrong or asks for what the driver cannot do,
	// and ErrExists if the driver already has a replica with the same Ref
	// (List finds its handle): a driver never runs a replica twice.
	Start(ctx context.Context, spec ReplicaSpec) (Handle, error)

	// Status reports the replica's state now. ErrNotFound if the driver
	// does not know the handle.
	Status(ctx context.Context, h Handle) (Status, error)

	// List reports every replica the driver knows, whether it started it,
	// finds it in its state after a restart, or was told about it by
	// Recover, ordered by Ref. It is how the reconciler observes drift.
	List(ctx context.Context) ([]Status, error)

	// Recover takes the replica named by h, started by an earlier instance
	// of the driver, back under supervision (step 4 of the lifecycle).
	// Recovering a supervised replica does nothing. ErrNotFound if nothing
	// is known of h.
	Recover(ctx context.Context, h Handle) error

	// Stop stops the replica gracefully and forgets it (step 3). It returns
	// once nothing of the replica runs. If ctx ends before the grace period
	// does, the replica is killed at once. Stopping a replica that is
	// already stopping waits for that stop; ErrNotFound if the driver does
	// not know the handle.
	Stop(ctx context.Context, h Handle) error

	// StopAll stops every replica the driver knows, in parallel, as Stop.
	StopAll(ctx context.Context) error

	// Logs returns the replica's output (stdout and stderr interleaved) as
	// far back as the driver keeps it. With follow, the reader then waits
	// for more until ctx ends, the reader is closed, or the replica is
	// stopped.
	Logs(ctx context.Context, h Handle, follow bool) (io.ReadCloser, error)

	// Watch returns a channel of the driver's events, closed when ctx ends
	// or the driver closes. Events are hints for prompt reaction: a reader
	// that falls behind misses some, and Status remains the truth.
	Watch(ctx context.Context) <-chan Event

	// Close detaches the driver from its replicas without stopping them
	// (step 4) and releases its resources. Later calls return ErrClosed.
	Close() error
}

// Capabilities is what a driver can do, as data.
type Capabilities struct {
	// HostExecutables is true when the driver runs an image's entrypoint
	// as a plain process of this host, from the unpacked image
	// (ReplicaSpec.Root), without isolation: it runs only images whose
	// entrypoint can run here (static binaries for this OS and processor,
	// scripts whose interpreter the host has) and refuses others at Start
	// with a message that says why. Drivers that run containers set it
	// false and use ReplicaSpec.Image.
	HostExecutables bool
	// ExecProbes is true when probes may run a command (Probe.Exec).
	ExecProbes bool
	// PerReplicaPorts is true when each replica listens on ports of its
	// own, given to it in PORT and PORT_<NAME>, rather than on the
	// container ports of the spec at an address of its own.
	PerReplicaPorts bool
	// Reattach is true when a new instance of the driver finds the
	// replicas of an earlier one, and Recover adopts them.
	Reattach bool
	// Units is true when the driver also runs whole units (it implements
	// UnitDriver): the reconciler then hands it a unit's desired state and
	// lets the engine keep the replicas, instead of starting them one by
	// one.
	Units bool
	// FirstContainerOnly is true when a unit's replicas run one container
	// each: a workload with several runs its first, in name order.
	FirstContainerOnly bool
	// Simulated is true when replicas do not really run: a test cluster
	// whose nodes are simulated (kwok) reports pods ready without running
	// a process. Nothing answers at their address, probes are not run and
	// there are no logs; the conformance suite checks the lifecycle only.
	Simulated bool
}

// Handle names a replica to the driver that runs it. It is a plain value that
// callers may store (it marshals to JSON) and hand back to a later instance
// of the driver; only the driver interprets ID.
type Handle struct {
	Driver string `json:"driver"`
	ID     string `json:"id"`
}

// Sentinel errors, returned wrapped; test with errors.Is.
var (
	ErrInvalid  = errors.New("invalid replica spec")
	ErrExists   = errors.New("replica already exists")
	ErrNotFound = errors.New("replica not found")
	ErrClosed   = errors.New("driver closed")
)
