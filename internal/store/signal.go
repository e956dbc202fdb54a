package store

import (
	"context"
	"sync"
)

// EventWatcher is a store that tells when events were appended to it, so
// that a process reads its new events once for all of its event streams
// instead of each stream polling the store.
type EventWatcher interface {
	// WatchEvents calls wake soon after events were appended by any
	// writer of the store (other processes' too, for a shared store),
	// once when it starts, and again after any moment when it may have
	// missed a notice (a reconnect): a reader that reads what follows the
	// last event it saw whenever wake is called misses none. wake must
	// not block. WatchEvents returns when ctx ends.
	WatchEvents(ctx context.Context, wake func()) error
}

// Signal is an in-process broadcast of "events were appended": the
// EventWatcher of a store written by one process only (SQLite). The zero
// value is ready to use.
type Signal struct {
	mu   sync.Mutex
	next int
	fns  map[int]func()
}

// WatchEvents calls wake at once and at every Fire until ctx ends.
func (s *Signal) WatchEvents(ctx context.Context, wake func()) error {
	s.mu.Lock()
	if s.fns == nil {
		s.fns = map[int]func(){}
	}
	id := s.next
	s.next++
	s.fns[id] = wake
	s.mu.Unlock()
	wake()
	<-ctx.Done()
	s.mu.Lock()
	delete(s.fns, id)
	s.mu.Unlock()
	return nil
}

// Fire calls every watcher's wake: events were committed.
func (s *Signal) Fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, wake := range s.fns {
		wake()
	}
}
