package reconcile

import (
	"math"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/proxy"
)

// ScalePolicy sizes a unit between its minimum and maximum replicas from the
// requests in flight per replica, measured at the proxy.
type ScalePolicy struct {
	// TargetInFlight is the in-flight requests per replica the autoscaler
	// aims for (default 10).
	TargetInFlight float64
	// Cooldown is the least time between two changes of a unit's size
	// (default 30s); scaling down waits twice as long, so a burst does not
	// make the unit flap.
	Cooldown time.Duration
}

func (p ScalePolicy) withDefaults() ScalePolicy {
	if p.TargetInFlight <= 0 {
		p.TargetInFlight = 10
	}
	if p.Cooldown <= 0 {
		p.Cooldown = 30 * time.Second
	}
	return p
}

// wantReplicas returns how many replicas the unit should run now: the
// current size, moved towards what the load asks within min..max and the
// cool-down.
func (w *worker) wantReplicas(d *plan.Unit, running int) int {
	lo, hi := d.Replicas.Min, max(d.Replicas.Max, d.Replicas.Min)
	if w.scale == 0 {
		w.scale = max(lo, min(running, hi))
	}
	w.scale = max(lo, min(w.scale, hi))
	if hi == lo || primaryPort(d) == "" {
		return w.scale
	}
	p := w.e.cfg.Scale
	load := w.e.cfg.Router.Stats(proxy.RouteName(d.App, d.Env, ""), "").InFlight
	want := max(lo, min(hi, int(math.Ceil(float64(load)/p.TargetInFlight))))
	now := time.Now()
	switch {
	case want > w.scale && now.Sub(w.scaledAt) >= p.Cooldown:
		w.scale, w.scaledAt = want, now
	case want < w.scale && now.Sub(w.scaledAt) >= 2*p.Cooldown:
		w.scale, w.scaledAt = max(want, w.scale-1), now
	}
	return w.scale
}
