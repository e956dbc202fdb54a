package supervise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/socle-dev/socle/internal/runtime"
)

// Supervisor is the part of a driver that keeps its replicas: the
// replicas it knows, by ID, the host ports they hold, their supervisors and
// the driver's watchers. A driver's methods of runtime.Driver that do not
// depend on its engine (Status, List, Recover, Stop, StopAll, Watch) are
// its own. Its zero value is not usable; call New.
type Supervisor[P RunOf] struct {
	name string
	lost func(runtime.Exit) string
	ctx  context.Context    // ends when Close is called: supervision ends
	stop context.CancelFunc //
	wg   sync.WaitGroup     // supervisors and the driver's watchers (Go)

	// mu guards the fields below. It is never held while taking a
	// replica's mutex, which may be held while taking mu.
	mu       sync.Mutex
	closed   bool
	replicas map[string]*Replica[P] // by ID
	ports    map[int]bool           // host ports held by known replicas

	subsMu sync.Mutex
	subs   map[chan runtime.Event]struct{} // nil once closed
}

// New returns the supervisor of the driver named name (runtime.Handle's
// Driver). lost says why a replica whose run had ended when the driver
// found it (or that ended before Recover) is Lost, from that run's exit.
func New[P RunOf](name string, lost func(runtime.Exit) string) *Supervisor[P] {
	s := &Supervisor[P]{
		name:     name,
		lost:     lost,
		replicas: map[string]*Replica[P]{},
		ports:    map[int]bool{},
		subs:     map[chan runtime.Event]struct{}{},
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s
}

// Context ends when Close is called.
func (s *Supervisor[P]) Context() context.Context { return s.ctx }

// Go runs f in a goroutine that Close waits for: one that watches a run
// until it ends or Context ends.
func (s *Supervisor[P]) Go(f func()) { s.wg.Go(f) }

// Load makes a replica found in the driver's state directory known, with
// its ports and its run: Detached, or Lost if the run has ended, until
// Recover.
func (s *Supervisor[P]) Load(r *Replica[P]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas[r.ID] = r
	s.holdPortsLocked(r.Ports)
}

// Add makes r, new, known, and gives it a free loopback port of the host
// for each port of its spec (Ports). ErrExists if a replica of its ID or
// Ref is known. The caller holds r's lock until r is started.
func (s *Supervisor[P]) Add(r *Replica[P]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return runtime.ErrClosed
	}
	for id, o := range s.replicas {
		if id == r.ID || o.ref == r.ref {
			return fmt.Errorf("replica %s: %w", r.ref, runtime.ErrExists)
		}
	}
	for _, p := range r.Spec.Ports {
		port, err := s.freePortLocked()
		if err != nil {
			s.releasePortsLocked(r.Ports)
			r.Ports = nil
			return fmt.Errorf("replica %s: port %s: %w", r.ref, p.Name, err)
		}
		r.Ports = append(r.Ports, runtime.PortBinding{Name: p.Name, Port: p.Port, Address: Addr(port)})
	}
	s.replicas[r.ID] = r
	return nil
}

// Forget removes r and frees its ports: a replica that could not start,
// or one stopped.
func (s *Supervisor[P]) Forget(r *Replica[P]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replicas[r.ID] == r {
		delete(s.replicas, r.ID)
		s.releasePortsLocked(r.Ports)
	}
}

// Lookup returns the replica h names: ErrNotFound if none, ErrClosed once
// closed.
func (s *Supervisor[P]) Lookup(h runtime.Handle) (*Replica[P], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, runtime.ErrClosed
	}
	r, ok := s.replicas[h.ID]
	if !ok || h.Driver != s.name {
		return nil, fmt.Errorf("%s replica %q: %w", h.Driver, h.ID, runtime.ErrNotFound)
	}
	return r, nil
}

// all returns the known replicas, ordered by Ref.
func (s *Supervisor[P]) all() ([]*Replica[P], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, runtime.ErrClosed
	}
	rs := make([]*Replica[P], 0, len(s.replicas))
	for _, r := range s.replicas {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *Replica[P]) int { return a.ref.Compare(b.ref) })
	return rs, nil
}

// Status reports a replica's status; see runtime.Driver.
func (s *Supervisor[P]) Status(h runtime.Handle) (runtime.Status, error) {
	r, err := s.Lookup(h)
	if err != nil {
		return runtime.Status{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statusLocked(), nil
}

// List reports every known replica, ordered by Ref; see runtime.Driver.
func (s *Supervisor[P]) List() ([]runtime.Status, error) {
	rs, err := s.all()
	if err != nil {
		return nil, err
	}
	sts := make([]runtime.Status, 0, len(rs))
	for _, r := range rs {
		r.mu.Lock()
		// A replica whose Start failed while this waited for it is gone.
		if s.known(r) {
			sts = append(sts, r.statusLocked())
		}
		r.mu.Unlock()
	}
	return sts, nil
}

// known reports whether r is still one of the supervisor's replicas.
func (s *Supervisor[P]) known(r *Replica[P]) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replicas[r.ID] == r
}

// Recover supervises a replica found in the state directory: an ended run
// is recorded and started again after its backoff, a running one adopted;
// see runtime.Driver.
func (s *Supervisor[P]) Recover(h runtime.Handle) error {
	r, err := s.Lookup(h)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recoverLocked()
	return nil
}

// Stop stops a replica gracefully, has its runner remove it, and forgets
// it; see runtime.Driver.
func (s *Supervisor[P]) Stop(ctx context.Context, h runtime.Handle) error {
	r, err := s.Lookup(h)
	if err != nil {
		return err
	}
	return r.stop(ctx)
}

// StopAll stops every known replica, in parallel.
func (s *Supervisor[P]) StopAll(ctx context.Context) error {
	rs, err := s.all()
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

// Watch returns the replicas' events; see runtime.Driver.
func (s *Supervisor[P]) Watch(ctx context.Context) <-chan runtime.Event {
	ch := make(chan runtime.Event, 64)
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.subs == nil {
		close(ch)
		return ch
	}
	s.subs[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		s.subsMu.Lock()
		defer s.subsMu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	})
	return ch
}

// publish sends ev to every watcher that has room for it.
func (s *Supervisor[P]) publish(ev runtime.Event) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Close ends supervision, the watchers started by Go, and Watch's channels;
// the replicas keep running. It reports whether it closed s, false once
// closed.
func (s *Supervisor[P]) Close() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	s.subsMu.Lock()
	for ch := range s.subs {
		close(ch)
	}
	s.subs = nil
	s.subsMu.Unlock()
	return true
}
