package pipeline

import (
	"context"
	"time"

	"github.com/socle-dev/socle/internal/trace"
)

// Replan asks for the revision in force to be planned again: an approval
// was given, a release finished, a unit's phase changed (the source of a
// promotion became healthy, or stopped being), or a gate's time came.
func (p *Pipeline) Replan() {
	select {
	case p.replanc <- struct{}{}:
	default:
	}
}

// OpenAt asks for the revision in force to be planned again at t (a gate
// opens then); the zero time asks nothing.
func (p *Pipeline) OpenAt(t time.Time) {
	if t.IsZero() {
		return
	}
	p.opensMu.Lock()
	if p.nextOpen.IsZero() || t.Before(p.nextOpen) {
		p.nextOpen = t
	}
	p.opensMu.Unlock()
	select { // RecheckGates looks at nextOpen again
	case p.rewait <- struct{}{}:
	default:
	}
}

// RecheckGates plans the revision in force again while some change waits,
// when one of its inputs changes: a closed gate's time comes (soak,
// window, freeze, or a minute for a policy that reads the clock), or
// Replan is called (an approval, a release finished, a unit's phase
// changed), until ctx ends. Not on a timer: a denied unit whose inputs stay
// as they are is not planned again, and a plan again that decides the same
// records nothing (Record). The wait is on the Clock, whose After fires
// when the clock jumps past the gate's time, not only when real time does.
func (p *Pipeline) RecheckGates(ctx context.Context) {
	for {
		p.opensMu.Lock()
		next := p.nextOpen
		p.opensMu.Unlock()
		var opens <-chan time.Time // nil: no gate has a known time
		if !next.IsZero() {
			opens = p.clock.After(max(next.Sub(p.clock.Now())+100*time.Millisecond, 100*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-p.rewait:
			continue // an earlier opening time is known
		case <-opens:
		case <-p.replanc:
		}
		p.mu.Lock()
		waiting := len(p.blocked) > 0
		p.mu.Unlock()
		if !waiting {
			continue
		}
		p.opensMu.Lock()
		p.nextOpen = time.Time{}
		p.opensMu.Unlock()
		p.PlanInForce(ctx)
	}
}

// PlanInForce plans the revision in force again now, once no other
// revision is being planned; nothing before the first.
func (p *Pipeline) PlanInForce(ctx context.Context) {
	p.planMu.Lock()
	defer p.planMu.Unlock()
	p.mu.Lock()
	good := p.state.LastGood
	p.mu.Unlock()
	if good != nil {
		ctx, span := trace.Start(ctx, "replan", trace.Revision(good.SHA))
		defer span.End()
		p.plan(ctx, *good, true)
	}
}
