package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Notifier's Prometheus collectors, labelled by target name.
type metrics struct {
	sent, failed, retried, dropped *prometheus.CounterVec
	pending                        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	target := []string{"target"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, target)
	}
	m := &metrics{
		sent:    counter("socle_notify_sent_total", "Notifications delivered (answered with a 2xx)."),
		failed:  counter("socle_notify_failed_total", "Notifications given up: refused by the receiver, or out of attempts or time."),
		retried: counter("socle_notify_retries_total", "Failed attempts to deliver a notification that are retried later."),
		dropped: counter("socle_notify_dropped_total", "Notifications not queued because the target's queue was full."),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "socle_notify_pending",
			Help: "Notifications queued for a target and not yet delivered or given up.",
		}, target),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.retried, m.dropped, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering notification metrics: %w", err)
		}
	}
	return m, nil
}
