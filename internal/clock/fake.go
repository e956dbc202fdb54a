package clock

import (
	"slices"
	"sync"
	"time"
)

// Fake is a clock that moves only when told: Advance and Set. Waiters
// created with After fire, in deadline order, when the clock reaches their
// deadline. It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	// added is closed and replaced each time a waiter is added, so that a
	// test can wait until the code under test is waiting (BlockUntil).
	added chan struct{}
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

// NewFake returns a fake clock at t.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, added: make(chan struct{})}
}

// Now is the fake's time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After fires once the fake has been moved d past its time now.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan time.Time, 1)
	if d <= 0 {
		c <- f.now
		return c
	}
	f.waiters = append(f.waiters, waiter{at: f.now.Add(d), c: c})
	close(f.added)
	f.added = make(chan struct{})
	return c
}

// Advance moves the fake d ahead and fires the waiters it passes.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	t := f.now.Add(d)
	f.mu.Unlock()
	f.Set(t)
}

// Set moves the fake to t (never back) and fires the waiters it passes.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	slices.SortStableFunc(f.waiters, func(a, b waiter) int { return a.at.Compare(b.at) })
	n := 0
	for _, w := range f.waiters {
		if w.at.After(t) {
			f.waiters[n] = w
			n++
			continue
		}
		w.c <- t
	}
	clear(f.waiters[n:])
	f.waiters = f.waiters[:n]
}

// Waiters is how many After channels wait for the fake to move.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns once at least n waiters wait on the fake: a test
// calls it before Advance, so that the code under test has started to wait
// and the advance is not lost. It gives up, returning false, when done is
// closed first.
func (f *Fake) BlockUntil(n int, done <-chan struct{}) bool {
	for {
		f.mu.Lock()
		have, added := len(f.waiters), f.added
		f.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-added:
		case <-done:
			return false
		}
	}
}
