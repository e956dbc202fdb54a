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
	now := time.Now()
	load := float64(w.e.cfg.Router.Stats(proxy.RouteName(d.App, d.Env, ""), "").InFlight)
	// In-flight requests are read at an instant; the peak over the last
	// two cool-downs decides a scale-down, so that a dip between two
	// bursts of a steady load does not shrink the unit.
	w.loads = append(w.loads, loadSample{at: now, load: load})
	for len(w.loads) > 0 && now.Sub(w.loads[0].at) > 2*p.Cooldown {
		w.loads = w.loads[1:]
	}
	peak := load
	for _, l := range w.loads {
		peak = max(peak, l.load)
	}
	want := func(load float64) int { return max(lo, min(hi, int(math.Ceil(load/p.TargetInFlight)))) }
	switch {
	case want(load) > w.scale && now.Sub(w.scaledAt) >= p.Cooldown:
		w.scale, w.scaledAt = want(load), now
	case want(peak) < w.scale && now.Sub(w.scaledAt) >= 2*p.Cooldown:
		w.scale, w.scaledAt = max(want(peak), w.scale-1), now
	}
	return w.scale
}

// loadSample is the in-flight requests of a unit at an instant.
type loadSample struct {
	at   time.Time
	load float64
}
