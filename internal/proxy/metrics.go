package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics exports the proxy's counters to Prometheus. The per-backend series
// (labels route, backend — its ID — and version) are read from the backends'
// own atomic counters when scraped, so that requests touch no Prometheus
// structure; they exist while the backend is routed or draining.
type metrics struct {
	p                                            *Proxy
	requests, errors, latency, inFlight, healthy *prometheus.Desc
	retries, paused                              *prometheus.CounterVec
	unknown                                      prometheus.Counter
	// latencyBounds are the exported histogram's bucket bounds, in
	// seconds; latencyBucketOf maps a bucket of the in-process histogram
	// to the index of the first bound above it (len(latencyBounds): +Inf).
	latencyBounds   []float64
	latencyBucketOf []int
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics(reg prometheus.Registerer, p *Proxy) (*metrics, error) {
	labels := []string{"route", "backend", "version"}
	m := &metrics{
		p: p,
		requests: prometheus.NewDesc("socle_proxy_requests_total",
			"Requests sent to a backend, including attempts that could not reach it.", labels, nil),
		errors: prometheus.NewDesc("socle_proxy_errors_total",
			"Requests to a backend answered with a 5xx status or not answered at all.", labels, nil),
		latency: prometheus.NewDesc("socle_proxy_request_duration_seconds",
			"Time from sending a request to a backend to the end of its answer.", labels, nil),
		inFlight: prometheus.NewDesc("socle_proxy_in_flight_requests",
			"Requests in flight on a backend.", labels, nil),
		healthy: prometheus.NewDesc("socle_proxy_backend_healthy",
			"1 when the backend passes its health check, 0 otherwise.", labels, nil),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "socle_proxy_retries_total",
			Help: "Requests sent to another backend after the first could not be reached.",
		}, []string{"route"}),
		paused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "socle_proxy_paused_requests_total",
			Help: "Requests answered with the maintenance page of a paused route.",
		}, []string{"route"}),
		unknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "socle_proxy_unknown_host_requests_total",
			Help: "Requests for a host that no route serves.",
		}),
	}
	// Buckets at powers of two microseconds, from 128µs to 16.8s: each is a
	// boundary of the in-process histogram too, so the export is exact.
	for e := 7; e <= 24; e++ {
		m.latencyBounds = append(m.latencyBounds, float64(uint64(1)<<e)/1e6)
	}
	m.latencyBucketOf = make([]int, histBuckets)
	for i := range histBuckets {
		upper := bucketUpper(i).Seconds()
		j := 0
		for j < len(m.latencyBounds) && m.latencyBounds[j] < upper {
			j++
		}
		m.latencyBucketOf[i] = j
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("registering proxy metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m, m.retries, m.paused, m.unknown}
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.requests, m.errors, m.latency, m.inFlight, m.healthy} {
		ch <- d
	}
	m.describeApps(ch)
}

// Collect implements prometheus.Collector: one series per (route, backend,
// version) routed or draining, summing backends that share labels (a
// replica moved to a new address while the old one drains).
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	type series struct {
		labels   [3]string
		counts   Snapshot
		inFlight int64
		healthy  bool
	}
	var all []*series
	byLabels := map[[3]string]*series{}
	m.p.eachBackend(func(b *backend) {
		l := [3]string{b.route, b.ID, b.Version}
		s := byLabels[l]
		if s == nil {
			s = &series{labels: l}
			byLabels[l] = s
			all = append(all, s)
		}
		b.counters.addTo(&s.counts)
		s.inFlight += b.inFlight.Load()
		s.healthy = s.healthy || b.healthy.Load()
	})
	for _, s := range all {
		l := s.labels[:]
		ch <- prometheus.MustNewConstMetric(m.requests, prometheus.CounterValue, float64(s.counts.Requests), l...)
		ch <- prometheus.MustNewConstMetric(m.errors, prometheus.CounterValue, float64(s.counts.Errors), l...)
		ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(s.inFlight), l...)
		healthy := 0.0
		if s.healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, healthy, l...)
		count, buckets := m.buckets(s.counts.hist)
		ch <- prometheus.MustNewConstHistogram(m.latency, count, s.counts.latencySum.Seconds(), buckets, l...)
	}
	m.collectApps(ch)
}
