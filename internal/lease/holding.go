package lease

import (
	"context"
	"errors"
	"fmt"
)

// ErrLost is the error of a lease that was lost and cannot be taken again.
var ErrLost = errors.New("lease lost")

// Holding is a Leaser that hands out a lease this process holds already,
// for every scope: with one socle per data directory (SQLite), the
// platform lease it takes at start covers all of its work, and there is no
// one to share a scope with. The leases it hands out are views of held:
// its token, lost when held is, released with held only (their Release
// does nothing). Once held is lost, it is lost for good: Acquire waits
// until its context ends, and the work stops until the process restarts.
func Holding(held Lease) Leaser { return holding{held} }

type holding struct{ held Lease }

func (h holding) TryAcquire(_ context.Context, scope string, _ Holder) (Lease, error) {
	select {
	case <-h.held.Lost():
		return nil, fmt.Errorf("%s (under the %s lease): %w", scope, h.held.Scope(), ErrLost)
	default:
		return view{h.held, scope}, nil
	}
}

func (h holding) Acquire(ctx context.Context, scope string, me Holder) (Lease, error) {
	l, err := h.TryAcquire(ctx, scope, me)
	if err == nil {
		return l, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// view is a scope under a lease held for more.
type view struct {
	held  Lease
	scope string
}

func (v view) Scope() string         { return v.scope }
func (v view) Token() uint64         { return v.held.Token() }
func (v view) Lost() <-chan struct{} { return v.held.Lost() }
func (v view) Release() error        { return nil }
