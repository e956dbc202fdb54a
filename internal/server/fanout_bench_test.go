package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/syncbuf"
	"github.com/socle-dev/socle/test/pgtest"
)

// fanOutStreams is how many event streams the fan-out bench keeps open.
const fanOutStreams = 200

// BenchmarkEventFanOut measures how long an event takes to reach 200
// open event streams (server-sent events over loopback HTTP, each read by
// its own client): on SQLite, appended by the socle that streams it; on
// PostgreSQL, appended through one socle and streamed by another, through
// LISTEN/NOTIFY. Per event: last-ms, from before the append to the moment
// the last stream read it (p50 and p99 over the run), first-ms, to the
// first stream, and append-ms, the append itself (its commit: SQLite's
// is synchronous=FULL, an fsync).
func BenchmarkEventFanOut(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		r := startWith(b, Config{Repo: sharedPlatform(b), Data: b.TempDir()})
		defer r.stop()
		fanOut(b, r, r)
	})
	b.Run("postgres", func(b *testing.B) {
		srv := pgtest.Start(b)
		url := srv.URL(srv.CreateDB(b, ""))
		repo := sharedPlatform(b)
		var logsA, logsB syncbuf.Buffer
		from := startShared(b, repo, url, 0, &logsA)
		defer from.stop()
		to := startShared(b, repo, url, 0, &logsB)
		defer to.stop()
		fanOut(b, from, to)
	})
}

// fanOut appends b.N events through from and waits for each on every one
// of fanOutStreams streams open on to.
func fanOut(b *testing.B, from, to *running) {
	streams := make([]<-chan sseEvent, fanOutStreams)
	for i := range streams {
		streams[i] = openStream(b, to, "?kind=bench.fanout")
	}
	ctx := context.Background()
	var last, first, appended []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		id, err := from.Store().AppendEvent(ctx, store.Event{Kind: "bench.fanout", Message: fmt.Sprint(i)})
		if err != nil {
			b.Fatal(err)
		}
		appended = append(appended, time.Since(start))
		var lo, hi time.Duration
		for n, s := range streams {
			e := next(b, s, "bench.fanout")
			if e.id != fmt.Sprint(id) {
				b.Fatalf("stream %d read event %s, want %d", n, e.id, id)
			}
			d := e.at.Sub(start)
			if n == 0 || d < lo {
				lo = d
			}
			hi = max(hi, d)
		}
		first, last = append(first, lo), append(last, hi)
	}
	b.StopTimer()
	slices.Sort(last)
	slices.Sort(first)
	slices.Sort(appended)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(last[len(last)/2]), "last-ms-p50")
	b.ReportMetric(ms(last[len(last)*99/100]), "last-ms-p99")
	b.ReportMetric(ms(first[len(first)/2]), "first-ms-p50")
	b.ReportMetric(ms(appended[len(appended)/2]), "append-ms-p50")
	if n := to.hub.catchUps.Load(); n != fanOutStreams {
		b.Errorf("%d streams read the store %d times: one each (their catch-up) expected", fanOutStreams, n)
	}
}
