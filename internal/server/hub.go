package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/store"
)

// hub is the one reader of new events of a socle process: woken by the
// store (PostgreSQL's LISTEN/NOTIFY, SQLite's in-process signal), it reads
// the events after the last one it delivered, once, and hands them to
// every open event stream of the process. It also tells the streams when
// what their cells show may have changed (poke): the engine's statuses,
// the pipeline's blocks. No stream polls the store.
type hub struct {
	store store.Store
	watch func(ctx context.Context, wake func()) error
	log   *slog.Logger

	wakec chan struct{}
	// done is closed when run returns (socle stops): the streams end,
	// rather than hold the server's shutdown until their clients leave.
	done chan struct{}
	mu   sync.Mutex
	last int64 // the last event delivered
	subs map[*subscriber]struct{}
	// reads counts the hub's reads of events from the store; catchUps
	// the streams' own (from Last-Event-ID, or fallen behind).
	reads, catchUps atomic.Int64
}

// register adds the hub's counters to reg.
func (h *hub) register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "socle_event_hub_reads_total",
			Help: "Reads of new events from the store by the process's hub, for all of its event streams."},
			func() float64 { return float64(h.reads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "socle_event_stream_catchup_reads_total",
			Help: "Reads of events from the store by one event stream: to catch up from where its client was, or after it fell behind."},
			func() float64 { return float64(h.catchUps.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "socle_event_streams",
			Help: "Event streams open on this socle."},
			func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return float64(len(h.subs)) }),
	)
}

// hubResync is how often the hub reads the store without being woken: a
// notice lost without the store noticing (it should not happen) costs at
// most that much latency, never an event.
const hubResync = 30 * time.Second

// subscriberBacklog is how many events a stream may have waiting: one that
// falls further behind reads the store itself, once, to catch up.
const subscriberBacklog = 1024

func newHub(st store.Store, watch func(ctx context.Context, wake func()) error, log *slog.Logger) *hub {
	return &hub{store: st, watch: watch, log: log, wakec: make(chan struct{}, 1), done: make(chan struct{}), subs: map[*subscriber]struct{}{}}
}

// start sets the hub at the end of the event log; call it before any
// stream subscribes, and run after.
func (h *hub) start(ctx context.Context) error {
	last, err := h.store.LastEventID(ctx)
	h.mu.Lock()
	h.last = last
	h.mu.Unlock()
	return err
}

// run reads and hands out events whenever the store says there are new
// ones, until ctx ends.
func (h *hub) run(ctx context.Context) {
	defer close(h.done)
	go h.watch(ctx, h.wake)
	tick := time.NewTicker(hubResync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wakec:
		case <-tick.C:
		}
		h.read(ctx)
	}
}

func (h *hub) wake() {
	select {
	case h.wakec <- struct{}{}:
	default:
	}
}

// read hands out every event after the last delivered.
func (h *hub) read(ctx context.Context) {
	for {
		h.mu.Lock()
		after := h.last
		h.mu.Unlock()
		evs, err := h.store.Events(ctx, store.EventFilter{AfterID: after, Limit: store.MaxLimit})
		h.reads.Add(1)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("reading new events for the event streams", "err", err)
				time.AfterFunc(time.Second, h.wake)
			}
			return
		}
		if len(evs) == 0 {
			return
		}
		h.mu.Lock()
		h.last = evs[len(evs)-1].ID
		for sub := range h.subs {
			sub.push(evs, false)
		}
		h.mu.Unlock()
		if len(evs) < store.MaxLimit {
			return
		}
	}
}

// poke tells every stream that its cells may have changed.
func (h *hub) poke() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		sub.push(nil, true)
	}
}

// subscribe opens a stream's subscription: it gets every event the hub
// reads from now on. Events before may be missing: read them from the
// store after subscribing, and skip those seen twice by their ID.
func (h *hub) subscribe() *subscriber {
	sub := &subscriber{ready: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
}

// subscriber is an open stream's share of the hub.
type subscriber struct {
	ready   chan struct{} // something is waiting in take
	mu      sync.Mutex
	pending []store.Event
	behind  bool // pending overflowed: read the store
	changed bool // the cells may have changed
}

func (sub *subscriber) push(evs []store.Event, changed bool) {
	sub.mu.Lock()
	switch {
	case len(evs) == 0:
	case sub.behind:
	case len(sub.pending)+len(evs) > subscriberBacklog:
		sub.pending, sub.behind = nil, true
	default:
		sub.pending = append(sub.pending, evs...)
	}
	sub.changed = sub.changed || changed || len(evs) > 0
	sub.mu.Unlock()
	select {
	case sub.ready <- struct{}{}:
	default:
	}
}

// take returns what waits: the events, or behind when some were dropped
// (the stream reads the store after the last it sent), and whether the
// cells may have changed.
func (sub *subscriber) take() (evs []store.Event, behind, changed bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	evs, behind, changed = sub.pending, sub.behind, sub.changed
	sub.pending, sub.behind, sub.changed = nil, false, false
	return evs, behind, changed
}
