package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// Errors that Notify and NotifyTargets return, wrapped with the target's name
// (several joined when several targets fail). The event still goes to the
// other targets.
var (
	// ErrUnknownTarget: the platform in force has no notification target of
	// that name.
	ErrUnknownTarget = errors.New("unknown notification target")
	// ErrQueueFull: the target has Options.QueueSize deliveries pending; the
	// event is not sent to it.
	ErrQueueFull = errors.New("notification queue full")
	// ErrClosed: the Notifier was closed.
	ErrClosed = errors.New("notifier closed")
)

// EventLog records deliveries that fail for good, as events of kind
// "notify.failed" that name the target, so that people see in socle why a
// message never came. [store.Store] is one.
type EventLog interface {
	AppendEvent(ctx context.Context, e store.Event) (int64, error)
}

// Retry bounds the delivery of one event to one target.
type Retry struct {
	// Base is the wait after the first failed attempt; it doubles after each
	// further one, up to Max. Each wait is drawn at random between half and
	// all of that (jitter), unless the receiver's Retry-After says how long.
	Base, Max time.Duration
	// Attempts is the most attempts made, the first one included.
	Attempts int
	// MaxAge is how long after Notify a delivery is given up, even across
	// restarts of socle; a Retry-After beyond it gives up at once.
	MaxAge time.Duration
	// Timeout bounds each attempt, from connecting to reading the answer.
	Timeout time.Duration
}

// DefaultRetry is the policy for the zero fields of Options.Retry: about
// 45 minutes of attempts, for a day at most.
var DefaultRetry = Retry{Base: 2 * time.Second, Max: 5 * time.Minute, Attempts: 15, MaxAge: 24 * time.Hour, Timeout: 10 * time.Second}

// DefaultQueueSize is the number of pending deliveries per target when
// Options.QueueSize is zero.
const DefaultQueueSize = 256

// Options configure a Notifier.
type Options struct {
	// Dir is the spool directory of pending deliveries (the server gives
	// <data>/notify); created if missing; required. One Notifier at a time
	// may use it.
	Dir string
	// Platform is the platform in force at start. It may be nil, and set
	// later with SetPlatform: spooled deliveries wait for it.
	Platform *spec.Platform
	// Logger receives one record per delivery given up (error), per failed
	// attempt to be retried (warn) and per delivery (debug). Nil discards.
	Logger *slog.Logger
	// Registry receives the metrics socle_notify_{sent,failed,retries,
	// dropped}_total and socle_notify_pending, labelled by target; nil
	// leaves them unregistered.
	Registry prometheus.Registerer
	// Events records the deliveries that fail for good; optional.
	Events EventLog
	// Retry bounds each delivery; its zero fields take DefaultRetry's.
	Retry Retry
	// QueueSize bounds the deliveries pending per target; zero means
	// DefaultQueueSize.
	QueueSize int
	// Clock dates the events that come without a time (Event.Time), so
	// that what a notification says agrees with socle's other records;
	// the system's when nil. Deliveries are paced by the system's time
	// whatever it is: retries and Retry-After are a peer's real seconds.
	Clock clock.Clock
}

// Notifier sends events to the notification targets of the platform in
// force. Its methods are safe for concurrent use.
//
// Lifecycle: New resumes the spooled deliveries; Run delivers while it runs
// (while the process holds the lease of the notifications, so that two
// socle processes never send one twice), and Notify queues and spools
// whether it runs or not; SetPlatform swaps the targets when a new
// revision is in force; Close stops delivering, leaving what is pending in
// the spool for the next Notifier.
type Notifier struct {
	clock   clock.Clock
	log     *slog.Logger
	events  EventLog
	retry   Retry
	size    int
	metrics *metrics
	spool   *spool
	client  *http.Client

	routes atomic.Pointer[routes]
	ready  chan struct{} // closed by the first platform
	once   sync.Once

	ctx  context.Context // Run's: ends when Run's does, or at Close
	stop context.CancelFunc
	wg   sync.WaitGroup // the workers of Run

	mu      sync.Mutex // guards what follows, the queues' items, and spool writes of new deliveries
	closed  bool
	running bool // Run runs: each queue has its worker
	queues  map[string]*queue
	lastID  int64
}

// routes is a platform's notification settings, indexed.
type routes struct {
	targets map[string]spec.Notification
	envs    map[string][]string // environment → target names
	zones   map[string][]string // zone → target names
}

// queue holds a target's pending deliveries, the one being delivered first.
type queue struct {
	target string
	items  []*delivery
	wake   chan struct{} // signalled when an item is added
}

// New returns a Notifier that resumes the deliveries spooled in opts.Dir.
// Call Close when done.
func New(opts Options) (*Notifier, error) {
	if opts.Dir == "" {
		return nil, errors.New("notify: no spool directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	r, d := &opts.Retry, DefaultRetry
	r.Base, r.Max, r.Attempts, r.MaxAge, r.Timeout = or(r.Base, d.Base), or(r.Max, d.Max), or(r.Attempts, d.Attempts), or(r.MaxAge, d.MaxAge), or(r.Timeout, d.Timeout)
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	sp, pending, err := openSpool(opts.Dir, opts.Logger)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	n := &Notifier{
		clock:   clock.Or(opts.Clock),
		log:     opts.Logger,
		events:  opts.Events,
		retry:   opts.Retry,
		size:    opts.QueueSize,
		metrics: m,
		spool:   sp,
		client: &http.Client{
			Transport: transport,
			// A webhook answers; a redirect would send the body (and
			// log the URL) somewhere else, so it is a refusal.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ready:  make(chan struct{}),
		queues: map[string]*queue{},
	}
	n.SetPlatform(opts.Platform)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range pending {
		n.push(n.queueLocked(d.Target), d)
	}
	if len(pending) > 0 {
		n.log.Info("resuming pending notifications", "count", len(pending))
	}
	return n, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// SetPlatform makes p's notification targets and environments the ones in
// force, for new events and for the next attempt of pending ones. A nil p
// is ignored.
func (n *Notifier) SetPlatform(p *spec.Platform) {
	if p == nil {
		return
	}
	r := &routes{targets: map[string]spec.Notification{}, envs: map[string][]string{}, zones: map[string][]string{}}
	for _, t := range p.Notifications {
		r.targets[t.Name] = t
	}
	for _, e := range p.Environments {
		r.envs[e.Name] = e.Notify
	}
	for _, z := range p.Zones {
		r.zones[z.Name] = z.Notify
		if len(z.Notify) > 0 {
			continue
		}
		for _, e := range p.Environments {
			if e.Zone == z.Name {
				r.zones[z.Name] = append(r.zones[z.Name], e.Notify...) // queueFor skips a name repeated
			}
		}
	}
	n.routes.Store(r)
	n.once.Do(func() { close(n.ready) })
}

// Notify queues ev for each target that ev.Env's notify list names (ev.Zone's
// for an event of a zone's own) and whose events filter accepts ev.Kind. It returns once the deliveries are spooled,
// without waiting for the network (so ctx does not bound delivery). An event
// of an environment that the platform does not know, or sent before any
// platform, goes nowhere. ev.Kind must be one of Kinds.
func (n *Notifier) Notify(ctx context.Context, ev Event) error {
	if err := ev.normalize(n.clock.Now()); err != nil {
		return err
	}
	r := n.routes.Load()
	if r == nil {
		return nil
	}
	names := r.envs[ev.Env]
	if ev.Zone != "" {
		names = r.zones[ev.Zone]
	}
	return n.queueFor(r, names, ev)
}

// NotifyTargets queues ev for each of the named targets (a budget's notify
// list) whose events filter accepts ev.Kind, as Notify does.
func (n *Notifier) NotifyTargets(ctx context.Context, names []string, ev Event) error {
	if err := ev.normalize(n.clock.Now()); err != nil {
		return err
	}
	r := n.routes.Load()
	if r == nil {
		r = &routes{}
	}
	return n.queueFor(r, names, ev)
}

func (n *Notifier) queueFor(r *routes, names []string, ev Event) error {
	ev.Fields = maps.Clone(ev.Fields) // the caller may reuse its map
	var errs []error
	for i, name := range names {
		if slices.Contains(names[:i], name) {
			continue
		}
		t, ok := r.targets[name]
		if !ok {
			errs = append(errs, fmt.Errorf("notifying %q: %w", name, ErrUnknownTarget))
			continue
		}
		if !wants(t, ev.Kind) {
			continue
		}
		if err := n.enqueue(name, ev); err != nil {
			errs = append(errs, fmt.Errorf("notifying %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// wants reports whether t's events filter accepts k.
func wants(t spec.Notification, k Kind) bool {
	return len(t.Events) == 0 || slices.Contains(t.Events, string(k))
}

func (n *Notifier) enqueue(target string, ev Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	q := n.queueLocked(target)
	if len(q.items) >= n.size {
		n.metrics.dropped.WithLabelValues(target).Inc()
		return ErrQueueFull
	}
	now := time.Now()
	n.lastID = max(n.lastID+1, now.UnixNano())
	d := &delivery{ID: fmt.Sprintf("%016x-%08x", n.lastID, rand.Uint32()), Target: target, Event: ev, Queued: now.UTC()}
	if err := n.spool.write(d); err != nil {
		return fmt.Errorf("spooling the notification: %w", err)
	}
	n.push(q, d)
	return nil
}

// queueLocked returns target's queue, creating it, and its worker while
// Run runs, if needed. n.mu is held and n is not closed.
func (n *Notifier) queueLocked(target string) *queue {
	q := n.queues[target]
	if q == nil {
		q = &queue{target: target, wake: make(chan struct{}, 1)}
		n.queues[target] = q
		if n.running {
			n.wg.Add(1)
			go n.work(q)
		}
	}
	return q
}

// Run delivers what is queued, and what is queued meanwhile, until ctx ends
// or Close; what is not delivered then stays queued and spooled, for the
// next Run or the next Notifier. An attempt in flight when it ends is
// abandoned and not counted. One Run at a time.
func (n *Notifier) Run(ctx context.Context) error {
	n.mu.Lock()
	switch {
	case n.closed:
		n.mu.Unlock()
		return ErrClosed
	case n.running:
		n.mu.Unlock()
		return errors.New("notify: Run runs already")
	}
	rctx, stop := context.WithCancel(ctx)
	n.ctx, n.stop = rctx, stop
	n.running = true
	for _, q := range n.queues {
		n.wg.Add(1)
		go n.work(q)
	}
	n.mu.Unlock()
	<-rctx.Done()
	stop()
	n.wg.Wait()
	n.mu.Lock()
	n.running = false
	n.mu.Unlock()
	return nil
}

// push adds d to q; n.mu is held.
func (n *Notifier) push(q *queue, d *delivery) {
	q.items = append(q.items, d)
	n.metrics.pending.WithLabelValues(q.target).Set(float64(len(q.items)))
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Close stops delivering and waits for the workers. An attempt in flight is
// abandoned and not counted; pending deliveries stay in the spool.
func (n *Notifier) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	stop := n.stop
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
	n.wg.Wait()
	n.client.CloseIdleConnections()
	return nil
}
