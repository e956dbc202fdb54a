package server

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/socle-dev/socle/internal/lease"
)

// leaseCollector shows who runs the jobs: this process's hold of the
// platform lease, and, with a shared store, every lease of the store with
// its holder and epoch (read from the database at each scrape), and the
// writes the fencing check refused.
type leaseCollector struct{ s *Server }

var (
	leaseHeldDesc = prometheus.NewDesc("socle_lease_held",
		"1 while this socle holds the lease of the scope (and runs its jobs), else 0.", []string{"scope"}, nil)
	leaseEpochDesc = prometheus.NewDesc("socle_lease_epoch",
		"The fencing epoch of the lease this socle holds, 0 when it holds none.", []string{"scope"}, nil)
	storeLeaseDesc = prometheus.NewDesc("socle_store_lease_epoch",
		"Shared store: the epoch of each lease in the database, with its holder; live is false once it expired.",
		[]string{"scope", "holder_host", "holder_pid", "holder_addr", "live"}, nil)
	refusedDesc = prometheus.NewDesc("socle_fenced_writes_refused_total",
		"Shared store: the writes of this socle refused because the lease they were made under was no longer held.", nil, nil)
)

func (c leaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- leaseHeldDesc
	ch <- leaseEpochDesc
	ch <- storeLeaseDesc
	ch <- refusedDesc
}

func (c leaseCollector) Collect(ch chan<- prometheus.Metric) {
	epoch := c.s.leaseEpoch.Load()
	held := 0.0
	if epoch > 0 {
		held = 1
	}
	ch <- prometheus.MustNewConstMetric(leaseHeldDesc, prometheus.GaugeValue, held, lease.Platform)
	ch <- prometheus.MustNewConstMetric(leaseEpochDesc, prometheus.GaugeValue, float64(epoch), lease.Platform)
	if !c.s.stores.Shared() {
		return
	}
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(c.s.stores.Refused()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := c.s.stores.Leases(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(storeLeaseDesc, err)
		return
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(storeLeaseDesc, prometheus.GaugeValue, float64(r.Epoch),
			r.Scope, r.Holder.Host, strconv.Itoa(r.Holder.PID), r.Holder.Addr, strconv.FormatBool(r.Live))
	}
}
