// Package lease decides which socle process does the work of a scope (the
// whole platform, or one environment): the engine, the repository watcher,
// the notifier and every scheduled job run only while their process holds
// the lease of their scope, so that two processes never converge the same
// unit or send the same notification twice.
//
// A lease carries a fencing token that grows with each acquisition of its
// scope: a holder that lost its lease without noticing (a long GC pause, a
// network partition) is told apart from the new holder by its smaller
// token, in every write that must not come from two holders.
//
// File is the implementation for one machine (SQLite): an advisory lock on a
// file in the data directory, which the kernel releases when the process
// dies, kill -9 included. The PostgreSQL store brings one for several
// machines.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Platform is the scope of the work that concerns the whole platform.
const Platform = "platform"

// Holder says who holds a lease, for the message of the process that
// cannot take it.
type Holder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Addr  string    `json:"addr,omitempty"` // the holder's API address
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d on %s", h.PID, h.Host)
	if h.Addr != "" {
		s += ", API on " + h.Addr
	}
	if !h.Since.IsZero() {
		s += ", since " + h.Since.Local().Format(time.DateTime)
	}
	return s
}

// Lease is a scope held by this process.
type Lease interface {
	// Scope is what the lease is for.
	Scope() string
	// Token is the fencing token: larger than that of every earlier
	// holder of the scope.
	Token() uint64
	// Lost is closed when the lease is lost: whoever works under it must
	// stop at once. A lease released by Release is not lost.
	Lost() <-chan struct{}
	// Release gives the scope up; the next Acquire may take it.
	Release() error
}

// Leaser hands out leases.
type Leaser interface {
	// TryAcquire takes scope if no one holds it, and returns a *HeldError
	// naming the holder otherwise.
	TryAcquire(ctx context.Context, scope string, me Holder) (Lease, error)
	// Acquire waits until this process holds scope, or ctx ends.
	Acquire(ctx context.Context, scope string, me Holder) (Lease, error)
}

// ErrHeld is the error of a scope another process holds; the error is a
// *HeldError, which names the holder.
var ErrHeld = errors.New("held by another process")

// HeldError is a scope another process holds.
type HeldError struct {
	Scope  string
	Holder Holder
	// Where is where the lease lives (the lock file), for the message.
	Where string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by another socle (%s; lock %s)", e.Scope, e.Holder, e.Where)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// ErrFenced is the error, wrapped, of a write refused because the lease
// it was made under is no longer current: expired, or taken over by
// another holder with a larger token.
var ErrFenced = errors.New("write refused: its lease is no longer held")

// Run runs job while this process holds scope: it waits for the lease,
// runs job with a context that ends when the lease is lost, and, when the
// lease was lost, waits for it again. It returns when ctx ends, or with
// job's error when job fails while it holds the lease.
func Run(ctx context.Context, l Leaser, scope string, me Holder, job func(ctx context.Context, token uint64) error) error {
	for {
		le, err := l.Acquire(ctx, scope, me)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		jctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- job(jctx, le.Token()) }()
		select {
		case err = <-done:
			cancel()
			le.Release()
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-le.Lost():
			cancel()
			<-done // never two runs of job at once
			le.Release()
		}
	}
}
