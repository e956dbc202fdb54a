package proxy

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"net/http"
	"sync/atomic"
	"time"
)

// Snapshot is what the proxy has counted for the backends of one version of a
// route (or all of them), as [Proxy.Stats] returns it. Counters run from the
// moment the version first got a backend on the route, and include backends
// removed since, until the version has none left; to look at an interval
// (a canary step's pause, an autoscaler's period) take a snapshot at each end
// and use [Snapshot.Since].
type Snapshot struct {
	// Requests counts requests sent to the backends, including attempts
	// that failed to reach one (and were retried elsewhere).
	Requests uint64
	// Errors counts 5xx answers plus attempts that got no answer at all.
	Errors uint64
	// Unanswered counts the attempts that got no answer at all (the
	// backend refused, reset or timed out): the proxy's failures, which
	// Errors includes.
	Unanswered uint64
	// P95 is the 95th percentile of the time from sending a request to the
	// end of its answer, over the answered requests (an upper bound,
	// within 12.5%).
	P95 time.Duration
	// InFlight is the number of requests on the backends now.
	InFlight int64
	// Backends is the number of the version's backends on the route now,
	// so that InFlight/Backends is the load per replica.
	Backends int

	latencySum time.Duration
	hist       []uint64
}

// ErrorRate returns Errors/Requests, 0 when there were no requests.
func (s Snapshot) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Since returns the counts and latency of the requests that finished between
// prev and s, two snapshots of the same route and version; InFlight and
// Backends are s's. Counts that went down were reset (the proxy process
// restarted, or the version was removed from its route and added again):
// s counts from zero, and is what finished since, as Prometheus takes a
// counter reset.
func (s Snapshot) Since(prev Snapshot) Snapshot {
	if s.Requests < prev.Requests {
		s.P95 = s.Quantile(0.95)
		return s
	}
	d := s
	d.Requests = sub(s.Requests, prev.Requests)
	d.Errors = sub(s.Errors, prev.Errors)
	d.Unanswered = sub(s.Unanswered, prev.Unanswered)
	d.latencySum = time.Duration(sub(uint64(s.latencySum), uint64(prev.latencySum)))
	d.hist = make([]uint64, len(s.hist))
	for i := range s.hist {
		if i < len(prev.hist) {
			d.hist[i] = sub(s.hist[i], prev.hist[i])
		} else {
			d.hist[i] = s.hist[i]
		}
	}
	d.P95 = d.Quantile(0.95)
	return d
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// Quantile returns the q-quantile (0 < q ≤ 1) of the answered requests'
// latency, as the upper bound of the histogram bucket it falls in; 0 without
// data.
func (s Snapshot) Quantile(q float64) time.Duration {
	var n uint64
	for _, c := range s.hist {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.hist {
		seen += c
		if seen >= rank {
			return bucketUpper(i)
		}
	}
	return bucketUpper(len(s.hist) - 1)
}

// counters are what a backend has counted, as atomics so that requests
// record without a lock. Stats and the Prometheus collector read them.
type counters struct {
	// byClass counts requests by the class of their answer: [0] no
	// answer, [1] to [5] 1xx to 5xx. Requests and errors are sums of
	// them, so a request costs one add here.
	byClass [6]atomic.Uint64
	latency atomic.Uint64 // sum, in nanoseconds
	hist    [histBuckets]atomic.Uint64
}

// classOf returns the index in counters.byClass of an answer's status.
func classOf(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// record counts a request that ended with status (0: no answer).
func (c *counters) record(start time.Time, status int) {
	c.byClass[classOf(status)].Add(1)
	// The time a connection stays switched to another protocol (a
	// WebSocket) says nothing of the backend's speed.
	if status != 0 && status != http.StatusSwitchingProtocols {
		d := time.Since(start)
		c.latency.Add(uint64(d))
		c.hist[bucketOf(d)].Add(1)
	}
}

// addTo adds c's counts to s.
func (c *counters) addTo(s *Snapshot) {
	for i := range c.byClass {
		s.Requests += c.byClass[i].Load()
	}
	unanswered := c.byClass[0].Load()
	s.Errors += unanswered + c.byClass[5].Load()
	s.Unanswered += unanswered
	s.latencySum += time.Duration(c.latency.Load())
	if s.hist == nil {
		s.hist = make([]uint64, histBuckets)
	}
	for i := range c.hist {
		s.hist[i] += c.hist[i].Load()
	}
}

// add adds the counts of o to s.
func (s *Snapshot) add(o Snapshot) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Unanswered += o.Unanswered
	s.latencySum += o.latencySum
	if s.hist == nil {
		s.hist = make([]uint64, histBuckets)
	}
	for i, n := range o.hist {
		s.hist[i] += n
	}
}

// The latency histogram is log-linear in microseconds: exact below 16µs, then
// 8 buckets per power of two (at most 12.5% wide) up to 2^40µs (12 days).
// Finding a bucket takes a few bit operations, cheap enough for every request.
const (
	histLinear  = 16
	histSub     = 8
	histMaxExp  = 40
	histBuckets = histLinear + (histMaxExp-4)*histSub
)

func bucketOf(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < histLinear {
		return int(us)
	}
	e := bits.Len64(us) // ≥ 5: us has e significant bits
	i := histLinear + (e-5)*histSub + int(us>>(e-4)&(histSub-1))
	return min(i, histBuckets-1)
}

// bucketUpper returns the exclusive upper bound of bucket i.
func bucketUpper(i int) time.Duration {
	if i < histLinear {
		return time.Duration(i+1) * time.Microsecond
	}
	e := (i-histLinear)/histSub + 5
	sub := (i - histLinear) % histSub
	return time.Duration(uint64(histSub+sub+1)<<(e-4)) * time.Microsecond
}

// snapshotJSON is what a Snapshot keeps of its counts when persisted: a
// canary step's analysis baseline outlives socle. In-flight requests and
// backends are of the instant and are not kept; the histogram is kept
// sparse, bucket by count.
type snapshotJSON struct {
	Requests   uint64         `json:"requests"`
	Errors     uint64         `json:"errors"`
	Unanswered uint64         `json:"unanswered,omitempty"`
	LatencySum time.Duration  `json:"latencySum"`
	Hist       map[int]uint64 `json:"hist,omitempty"`
}

// MarshalJSON keeps the counts of s (see [Snapshot.Since]).
func (s Snapshot) MarshalJSON() ([]byte, error) {
	j := snapshotJSON{Requests: s.Requests, Errors: s.Errors, Unanswered: s.Unanswered, LatencySum: s.latencySum}
	for i, n := range s.hist {
		if n > 0 {
			if j.Hist == nil {
				j.Hist = map[int]uint64{}
			}
			j.Hist[i] = n
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	var j snapshotJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Snapshot{Requests: j.Requests, Errors: j.Errors, Unanswered: j.Unanswered, latencySum: j.LatencySum, hist: make([]uint64, histBuckets)}
	for i, n := range j.Hist {
		if i < 0 || i >= histBuckets {
			return fmt.Errorf("snapshot: latency bucket %d out of range", i)
		}
		s.hist[i] = n
	}
	s.P95 = s.Quantile(0.95)
	return nil
}

// Plus returns the counts of s and o together (two intervals, or two
// versions), with their P95; InFlight and Backends are added too.
func (s Snapshot) Plus(o Snapshot) Snapshot {
	sum := Snapshot{InFlight: s.InFlight + o.InFlight, Backends: s.Backends + o.Backends, hist: make([]uint64, histBuckets)}
	sum.add(s)
	sum.add(o)
	sum.P95 = sum.Quantile(0.95)
	return sum
}
