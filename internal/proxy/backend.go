package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// backend is the live side of a [Backend]: its health, its requests in
// flight, its counters. One object lives from the deploy that adds it until
// it is drained after the change that removes it; a change that keeps its ID,
// address and version keeps the object.
type backend struct {
	Backend
	route string

	healthy  atomic.Bool
	ready    chan struct{} // closed at the first successful check: opens the health gate
	once     sync.Once
	lastErr  atomic.Pointer[string] // why the last check failed, for the gate's error
	inFlight atomic.Int64
	draining atomic.Bool
	quiet    chan struct{} // closed once draining with nothing in flight
	quietly  sync.Once

	// stopChecks ends the active health check; changed by writers only,
	// under the route's lock.
	stopChecks context.CancelFunc

	pool     connPool
	counters counters
}

// key identifies what makes a backend the same across changes.
func (b Backend) key() string { return b.ID + "\x00" + b.Addr + "\x00" + b.Version }

// acquire counts a request in flight on b, or reports that b is draining and
// must not be used. Checking draining after the increment closes the race
// with drain, which sets draining before reading the count: one of the two
// always sees the other.
func (b *backend) acquire() bool {
	b.inFlight.Add(1)
	if b.draining.Load() {
		b.release()
		return false
	}
	return true
}

func (b *backend) release() {
	if b.inFlight.Add(-1) == 0 && b.draining.Load() {
		b.quietly.Do(func() { close(b.quiet) })
	}
}

// finish records the outcome of a request that acquire let through: status is
// the backend's answer, or 0 when the proxy could not get one.
func (b *backend) finish(start time.Time, status int) {
	b.counters.record(start, status)
	b.release()
}

// drain takes b out of service for good: requests already in flight go on,
// acquire refuses new ones, and quiet is closed when the last one ends.
func (b *backend) drain() {
	b.draining.Store(true)
	b.pool.close()
	if b.inFlight.Load() == 0 {
		b.quietly.Do(func() { close(b.quiet) })
	}
}

// checker probes backends on behalf of a Proxy.
type checker struct {
	client *http.Client
	dialer *net.Dialer
	log    func(b *backend, healthy bool, reason string)
}

// run checks b until ctx ends: at once, then every hc.Interval while b is
// healthy and more often while it is not.
func (c *checker) run(ctx context.Context, b *backend, hc HealthCheck) {
	failures := 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.probe(ctx, b, hc)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			b.setHealthy(true, "", c.log)
		} else {
			failures++
			reason := err.Error()
			b.lastErr.Store(&reason)
			if failures >= hc.Failures {
				b.setHealthy(false, reason, c.log)
			}
		}
		if b.healthy.Load() {
			t.Reset(hc.Interval)
		} else {
			t.Reset(min(hc.Interval, unhealthyInterval))
		}
	}
}

func (c *checker) probe(ctx context.Context, b *backend, hc HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	if hc.Path == "" {
		conn, err := c.dialer.DialContext(ctx, "tcp", b.Addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.Addr+hc.Path, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", hc.Path, resp.Status)
	}
	return nil
}

// setHealthy records a change of health, from a check or from live traffic.
func (b *backend) setHealthy(ok bool, reason string, log func(*backend, bool, string)) {
	if ok {
		b.once.Do(func() { close(b.ready) })
	}
	if b.healthy.Swap(ok) != ok {
		log(b, ok, reason)
	}
}
