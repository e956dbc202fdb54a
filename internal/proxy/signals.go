package proxy

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The golden signals of each app: its requests, errors by class and latency
// per app, environment and release (the route's version), summed over the
// app's ports and backends, including backends removed since while their
// release has backends left (as [Proxy.Stats] counts). They are read from the
// backends' counters when scraped, as the per-backend series are, so they
// cost requests nothing more.
var (
	appLabels   = []string{"app", "env", "release"}
	appRequests = prometheus.NewDesc("socle_app_requests_total",
		"Requests sent to an app's backends, by environment and release (a request retried on another backend counts once per attempt).", appLabels, nil)
	appErrors = prometheus.NewDesc("socle_app_errors_total",
		"Requests to an app's backends that failed, by class: 5xx (the app answered 5xx) or unanswered (the proxy got no answer: refused, reset, timed out).",
		append(appLabels[:3:3], "class"), nil)
	appLatency = prometheus.NewDesc("socle_app_request_duration_seconds",
		"Time from sending a request to an app's backend to the end of its answer.", appLabels, nil)
)

// AppOfRoute returns the app and environment a route serves, from its name
// ("<app>.<env>" or "<port>.<app>.<env>", see [RouteName]).
func AppOfRoute(route string) (app, env string, ok bool) {
	labels := strings.Split(route, ".")
	if len(labels) < 2 || len(labels) > 3 {
		return "", "", false
	}
	return labels[len(labels)-2], labels[len(labels)-1], true
}

func (m *metrics) describeApps(ch chan<- *prometheus.Desc) {
	ch <- appRequests
	ch <- appErrors
	ch <- appLatency
}

// collectApps sends the per-app series.
func (m *metrics) collectApps(ch chan<- prometheus.Metric) {
	type key struct{ app, env, release string }
	var keys []key
	sums := map[key]*Snapshot{}
	m.p.eachVersion(func(route, version string, s *Snapshot) {
		app, env, ok := AppOfRoute(route)
		if !ok {
			return
		}
		k := key{app, env, version}
		sum := sums[k]
		if sum == nil {
			sum = new(Snapshot)
			sums[k] = sum
			keys = append(keys, k)
		}
		sum.add(*s)
	})
	for _, k := range keys {
		s := sums[k]
		ch <- prometheus.MustNewConstMetric(appRequests, prometheus.CounterValue, float64(s.Requests), k.app, k.env, k.release)
		ch <- prometheus.MustNewConstMetric(appErrors, prometheus.CounterValue, float64(s.Errors-s.Unanswered), k.app, k.env, k.release, "5xx")
		ch <- prometheus.MustNewConstMetric(appErrors, prometheus.CounterValue, float64(s.Unanswered), k.app, k.env, k.release, "unanswered")
		count, buckets := m.buckets(s.hist)
		ch <- prometheus.MustNewConstHistogram(appLatency, count, s.latencySum.Seconds(), buckets, k.app, k.env, k.release)
	}
}

// buckets converts an in-process histogram into the exported one: its
// count and cumulative counts by upper bound.
func (m *metrics) buckets(hist []uint64) (uint64, map[float64]uint64) {
	perBound := make([]uint64, len(m.latencyBounds)+1)
	var count uint64
	for i, n := range hist {
		perBound[m.latencyBucketOf[i]] += n
		count += n
	}
	buckets := make(map[float64]uint64, len(m.latencyBounds))
	var cumulative uint64
	for j, bound := range m.latencyBounds {
		cumulative += perBound[j]
		buckets[bound] = cumulative
	}
	return count, buckets
}

// eachVersion calls f with what the proxy counted for each version of each
// route that has backends (routed, draining or waiting for the health
// gate): the counts of [Proxy.Stats] for it, without in-flight requests.
func (p *Proxy) eachVersion(f func(route, version string, s *Snapshot)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sums := make(map[versionKey]*Snapshot, len(p.refs))
	var order []versionKey
	at := func(k versionKey) *Snapshot {
		s := sums[k]
		if s == nil {
			s = &Snapshot{hist: make([]uint64, histBuckets)}
			sums[k] = s
			order = append(order, k)
		}
		return s
	}
	for k, r := range p.retired {
		at(k).add(*r)
	}
	for name, e := range p.table.Load().routes {
		for _, b := range e.backends {
			b.counters.addTo(at(versionKey{name, b.Version}))
		}
	}
	for name, bs := range p.draining {
		for _, b := range bs {
			b.counters.addTo(at(versionKey{name, b.Version}))
		}
	}
	for _, k := range order {
		f(k.route, k.version, sums[k])
	}
}
