package replicas

import (
	"math"
	"time"

	"github.com/socle-dev/socle/internal/plan"
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

// scaler is the autoscaler's memory of one unit.
type scaler struct {
	size     int // the replicas it wants; 0 until first sized
	scaledAt time.Time
	loads    []loadSample // recent in-flight samples
}

// loadSample is the in-flight requests of a unit at an instant.
type loadSample struct {
	at   time.Time
	load float64
}

// want returns how many replicas the unit should run now: its size, moved
// towards what load (the requests in flight now) asks within its bounds
// and the cool-down. running is how many it runs, where the size starts; a
// unit whose load is not measured (no port behind the proxy) keeps it.
func (sc *scaler) want(p ScalePolicy, d *plan.Unit, running int, load float64, measured bool, now time.Time) int {
	lo, hi := d.Replicas.Min, max(d.Replicas.Max, d.Replicas.Min)
	if sc.size == 0 {
		sc.size = max(lo, min(running, hi))
	}
	sc.size = max(lo, min(sc.size, hi))
	if hi == lo || !measured {
		return sc.size
	}
	// In-flight requests are read at an instant; the peak over the last
	// two cool-downs decides a scale-down, so that a dip between two
	// bursts of a steady load does not shrink the unit.
	sc.loads = append(sc.loads, loadSample{at: now, load: load})
	for len(sc.loads) > 0 && now.Sub(sc.loads[0].at) > 2*p.Cooldown {
		sc.loads = sc.loads[1:]
	}
	peak := load
	for _, l := range sc.loads {
		peak = max(peak, l.load)
	}
	want := func(load float64) int { return max(lo, min(hi, int(math.Ceil(load/p.TargetInFlight)))) }
	switch {
	case want(load) > sc.size && now.Sub(sc.scaledAt) >= p.Cooldown:
		sc.size, sc.scaledAt = want(load), now
	case want(peak) < sc.size && now.Sub(sc.scaledAt) >= 2*p.Cooldown:
		sc.size, sc.scaledAt = max(want(peak), sc.size-1), now
	}
	return sc.size
}
