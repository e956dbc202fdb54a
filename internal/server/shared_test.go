package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/syncbuf"
	"github.com/socle-dev/socle/test/pgtest"
)

// sharedPlatform is the demo platform without its apps, stacks and
// policies: what two socles on one database need to start, serve and
// take the jobs over, without builds.
func sharedPlatform(t testing.TB) string {
	t.Helper()
	return platformWith(t, "Ann Example", "ann@example.com", []string{"apps", "stacks", "policies", "releases"}, nil)
}

// startShared starts a socle with its own data directory on the
// PostgreSQL database url, logging into logs.
func startShared(t testing.TB, repo, url string, ttl time.Duration, logs *syncbuf.Buffer) *running {
	t.Helper()
	return startWith(t, Config{Repo: repo, Data: t.TempDir(), Store: url, LeaseTTL: ttl, Logger: slog.New(slog.NewTextHandler(logs, nil))})
}

// openStream opens GET /api/v1/events/stream on r and returns its events
// (id, kind and data lines), read in the background until the test ends.
func openStream(t testing.TB, r *running, query string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/api/v1/events/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %s", resp.Status)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		readSSE(resp.Body, out)
	}()
	return out
}

type sseEvent struct {
	id, kind, data string
	at             time.Time // when its last line was read
}

func readSSE(body io.Reader, out chan<- sseEvent) {
	sc := bufio.NewScanner(body)
	var e sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if e.data != "" {
				e.at = time.Now()
				out <- e
			}
			e = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			e.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			e.kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			e.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// next returns the next event of kind on stream, failing after waitBudget.
func next(t testing.TB, stream <-chan sseEvent, kind string) sseEvent {
	t.Helper()
	deadline := time.After(waitBudget)
	for {
		select {
		case e, ok := <-stream:
			if !ok {
				t.Fatalf("the stream ended before an event %s", kind)
			}
			if e.kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no event %s within %s", kind, waitBudget)
		}
	}
}

// TestEventsReachEveryReplica: two socles on one PostgreSQL database; an
// event appended through one reaches the streams open on the other,
// through LISTEN/NOTIFY and the other's hub, which reads it once for all
// of its streams: the streams read the store once each (their catch-up
// when they open), never again, however many events arrive.
func TestEventsReachEveryReplica(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.URL(srv.CreateDB(t, ""))
	repo := sharedPlatform(t)
	var logsA, logsB syncbuf.Buffer
	a := startShared(t, repo, url, 0, &logsA)
	defer a.stop()
	b := startShared(t, repo, url, 0, &logsB)
	defer b.stop()

	const streams, events = 5, 20
	var open []<-chan sseEvent
	for range streams {
		open = append(open, openStream(t, b, "?kind=replica.test"))
	}
	ctx := context.Background()
	for i := range events {
		id, err := a.Store().AppendEvent(ctx, store.Event{Kind: "replica.test", Message: fmt.Sprintf("from A, %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		for n, s := range open {
			e := next(t, s, "replica.test")
			if e.id != fmt.Sprint(id) || !strings.Contains(e.data, fmt.Sprintf("from A, %d", i)) {
				t.Fatalf("stream %d on B got %+v, want event %d from A", n, e, id)
			}
		}
	}
	// Each stream read the store once, to catch up when it opened.
	if n := b.hub.catchUps.Load(); n != streams {
		t.Errorf("B's %d streams read the store %d times while %d events arrived: a stream polls", streams, n, events)
	}
	// The hub reads once per notification (fewer when they come
	// together), plus its resync every 30 s: far below a read per event
	// per stream.
	if n := b.hub.reads.Load(); n > 2*events+2 {
		t.Errorf("B's hub read the store %d times for %d events", n, events)
	}
}

// TestSQLiteStreamsWakeOnAppend: on SQLite, the hub is woken by the
// store's in-process signal: an event appended reaches the streams, and
// they do not read the store themselves.
func TestSQLiteStreamsWakeOnAppend(t *testing.T) {
	t.Parallel()
	r := startWith(t, Config{Repo: sharedPlatform(t), Data: t.TempDir()})
	defer r.stop()
	s1, s2 := openStream(t, r, "?kind=local.test"), openStream(t, r, "")
	id, err := r.Store().AppendEvent(context.Background(), store.Event{Kind: "local.test", Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []<-chan sseEvent{s1, s2} {
		if e := next(t, s, "local.test"); e.id != fmt.Sprint(id) {
			t.Errorf("got %+v, want event %d", e, id)
		}
	}
	if n := r.hub.catchUps.Load(); n != 2 {
		t.Errorf("two streams read the store %d times for one event, want once each (their catch-up)", n)
	}
}

// holderOf waits until one of rs holds the platform lease, and returns
// it with the epoch.
func holderOf(t *testing.T, rs ...*running) (*running, uint64) {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for {
		var held []*running
		for _, r := range rs {
			if r.leaseEpoch.Load() > 0 {
				held = append(held, r)
			}
		}
		if len(held) > 1 {
			t.Fatalf("%d socles hold the platform lease at once", len(held))
		}
		if len(held) == 1 {
			return held[0], held[0].leaseEpoch.Load()
		}
		if time.Now().After(deadline) {
			t.Fatal("no socle took the platform lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metrics returns r's /metrics.
func metrics(t *testing.T, r *running) string {
	t.Helper()
	resp := r.get(t, "/metrics")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTakeoverOnPostgres: two socles with their own data directories on
// one PostgreSQL database; one runs the engine and the jobs under the
// store's platform lease, the other waits; /metrics says who holds it,
// with its epoch. The holder stops: the other takes over with the next
// epoch, and a write made under the old epoch is refused and counted.
func TestTakeoverOnPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.URL(srv.CreateDB(t, ""))
	repo := sharedPlatform(t)
	var logsA, logsB syncbuf.Buffer
	a := startShared(t, repo, url, 3*time.Second, &logsA)
	b := startShared(t, repo, url, 3*time.Second, &logsB)
	stopped := map[*running]bool{}
	stop := func(r *running) {
		if !stopped[r] {
			stopped[r] = true
			r.stop()
		}
	}
	defer stop(a)
	defer stop(b)
	logs := map[*running]*syncbuf.Buffer{a: &logsA, b: &logsB}
	holder, epoch := holderOf(t, a, b)
	other := a
	if holder == a {
		other = b
	}
	if strings.Contains(logs[other].String(), "running the engine and the jobs") {
		t.Errorf("the socle without the lease ran the jobs:\n%s", logs[other])
	}
	m := metrics(t, holder)
	for _, want := range []string{
		"socle_lease_held{scope=\"platform\"} 1",
		fmt.Sprintf("socle_lease_epoch{scope=\"platform\"} %d", epoch),
		fmt.Sprintf(`holder_addr="%s",holder_host=`, holder.Addr()),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("the holder's /metrics lacks %s:\n%s", want, grepLines(m, "lease"))
		}
	}
	if m := metrics(t, other); !strings.Contains(m, "socle_lease_held{scope=\"platform\"} 0") ||
		!strings.Contains(m, fmt.Sprintf(`socle_store_lease_epoch{holder_addr="%s"`, holder.Addr())) {
		t.Errorf("the other's /metrics does not say it waits, and who holds the lease:\n%s", grepLines(m, "lease"))
	}
	stop(holder)
	next, nextEpoch := holderOf(t, other)
	if next != other || nextEpoch <= epoch {
		t.Fatalf("after the holder stopped: epoch %d, want more than %d", nextEpoch, epoch)
	}
	if !strings.Contains(logs[other].String(), fmt.Sprintf("running the engine and the jobs under the platform lease\" epoch=%d", nextEpoch)) {
		t.Errorf("the new holder does not say it runs the jobs:\n%s", logs[other])
	}
	// A write made under the old epoch (the old holder's, had it been
	// paused rather than stopped) is refused, and counted.
	stale := other.stores.Fenced(lease.Platform, epoch)
	refused := other.stores.Refused()
	err := stale.PutUnitState(context.Background(), store.UnitState{Kind: "app", Name: "late", Env: "dev"})
	if !errors.Is(err, lease.ErrFenced) || other.stores.Refused() != refused+1 {
		t.Errorf("a write under the old epoch: %v (%d refused), want it refused and counted", err, other.stores.Refused()-refused)
	}
	m = metrics(t, other)
	for _, want := range []string{
		fmt.Sprintf("socle_lease_epoch{scope=\"platform\"} %d", nextEpoch),
		fmt.Sprintf("socle_fenced_writes_refused_total %d", refused+1),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("the new holder's /metrics lacks %s:\n%s", want, grepLines(m, "lease"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestReadyzOnPostgres: /readyz tells a load balancer the truth about a
// PostgreSQL store: ready while it answers with every migration this
// socle needs; schema_behind when one is missing; store_unreachable when
// the server is gone; and never speaks of a file.
func TestReadyzOnPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	name := srv.CreateDB(t, "")
	var logs syncbuf.Buffer
	r := startShared(t, sharedPlatform(t), srv.URL(name), 0, &logs)
	defer r.stop()
	ready := func() (int, string) {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s, want 200", code, body)
	}
	conn := srv.Connect(t, name)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version = 20`); err != nil {
		t.Fatal(err)
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, `"schema_behind"`) || !strings.Contains(body, "0020_leases") {
		t.Errorf("/readyz with a migration missing: %d %s, want 503 schema_behind naming it", code, body)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (20, '0020_leases.sql')`); err != nil {
		t.Fatal(err)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Errorf("/readyz with the migration back: %d %s, want 200", code, body)
	}
	srv.Stop(t)
	code, body := ready()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"store_unreachable"`) || strings.Contains(body, "file") {
		t.Errorf("/readyz with PostgreSQL stopped: %d %s, want 503 store_unreachable, and no word of a file", code, body)
	}
	if l := logs.String(); !strings.Contains(l, "reason=store_unreachable") || strings.Contains(l, "database file") {
		t.Errorf("the log does not say the store is unreachable, or speaks of a file:\n%s", grepLines(l, "reason=store"))
	}
}

// TestTakesOverADeadHolder: the platform lease is held by a socle that
// died without releasing it (its row, left as kill -9 leaves it, expires
// in 2 s by the database's clock): a socle on the same database waits
// for the expiry, then takes the lease with the next epoch, and the row
// names it.
func TestTakesOverADeadHolder(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	name := srv.CreateDB(t, "")
	url := srv.URL(name)
	repo := sharedPlatform(t)
	// A first socle migrates the database, then stops: the dead holder's
	// row goes in its leases table, over the first's if it took the lease.
	var logs syncbuf.Buffer
	first := startShared(t, repo, url, time.Second, &logs)
	first.stop()
	conn := srv.Connect(t, name)
	ctx := context.Background()
	_, err := conn.Exec(ctx, `INSERT INTO leases (scope, holder, epoch, acquired_at, expires_at)
		VALUES ('platform', '{"pid": 4242, "host": "gone-host"}', 41, clock_timestamp(), clock_timestamp() + interval '2 seconds')
		ON CONFLICT (scope) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch, expires_at = excluded.expires_at`)
	if err != nil {
		t.Fatal(err)
	}
	r := startShared(t, repo, url, time.Second, &logs)
	defer r.stop()
	if _, epoch := holderOf(t, r); epoch != 42 {
		t.Errorf("took the lease with epoch %d, want 42 (the dead holder's 41, plus one)", epoch)
	}
	var host string
	var pid int
	if err := conn.QueryRow(ctx, `SELECT holder->>'host', (holder->>'pid')::int FROM leases WHERE scope = 'platform'`).Scan(&host, &pid); err != nil {
		t.Fatal(err)
	}
	if host == "gone-host" || pid != os.Getpid() {
		t.Errorf("the lease row names pid %d on %s, want this socle", pid, host)
	}
}

// workerPlatform is the demo platform with its worker app only (no
// traffic, one build), for the tests where the engine must run a unit.
func workerPlatform(t testing.TB) string {
	t.Helper()
	return platformWith(t, "Ann Example", "ann@example.com", []string{"apps/api", "apps/web", "stacks", "policies", "releases"}, nil)
}

// runsWorker reports whether r's engine has the worker Synced in dev with
// a ready replica, and r's runtime runs one.
func runsWorker(t *testing.T, r *running) bool {
	t.Helper()
	synced := false
	for _, u := range r.engine.Status() {
		if u.App == "worker" && u.Env == "dev" && u.Phase == reconcile.Synced && u.Ready > 0 {
			synced = true
		}
	}
	return synced && replicasOf(t, r, "worker", "dev") > 0
}

// replicasOf counts the replicas of app in env that r's local runtime
// runs.
func replicasOf(t *testing.T, r *running, app, env string) int {
	t.Helper()
	all, err := r.driver.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, st := range all {
		if st.Ref.App == app && st.Ref.Env == env {
			n++
		}
	}
	return n
}

// TestTakeoverRunsTheUnits: two socles on one PostgreSQL database, each
// with its own data directory; the holder of the platform lease builds
// and runs the worker in dev, the other runs nothing; the holder stops
// (its replicas with it): the other takes the lease and runs the worker.
func TestTakeoverRunsTheUnits(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.URL(srv.CreateDB(t, ""))
	repo := workerPlatform(t)
	var logsA, logsB syncbuf.Buffer
	// A TTL of a few seconds: under load (the race detector, builds
	// beside), a 1 s lease may lapse between renewals and change hands,
	// which is right but not what this test looks at.
	const ttl = 3 * time.Second
	a := startShared(t, repo, url, ttl, &logsA)
	b := startShared(t, repo, url, ttl, &logsB)
	stopped := map[*running]bool{}
	stop := func(r *running) {
		if !stopped[r] {
			stopped[r] = true
			r.stop()
		}
	}
	defer stop(a)
	defer stop(b)
	var holder, other *running
	waitUntil(t, "a socle runs the worker", func() bool {
		for _, r := range []*running{a, b} {
			if runsWorker(t, r) {
				holder = r
				return true
			}
		}
		return false
	})
	other = a
	if holder == a {
		other = b
	}
	epoch := holder.leaseEpoch.Load()
	if epoch == 0 {
		t.Errorf("the socle that runs the worker does not hold the lease")
	}
	if n := replicasOf(t, other, "worker", "dev"); n != 0 {
		t.Errorf("the socle without the lease runs %d replicas of the worker", n)
	}
	if e := other.leaseEpoch.Load(); e != 0 {
		t.Errorf("the other socle holds the lease too (epoch %d)", e)
	}
	stop(holder)
	waitUntil(t, "the other runs the worker", func() bool { return runsWorker(t, other) })
	if e := other.leaseEpoch.Load(); e <= epoch {
		t.Errorf("the new holder's epoch is %d, want more than %d", e, epoch)
	}
	rel, err := other.Store().CurrentRelease(context.Background(), "worker", "dev")
	if err != nil || rel.Status != store.Succeeded {
		t.Errorf("the worker's current release: %+v, %v; want one succeeded", rel, err)
	}
}

// waitUntil polls cond until it holds, failing after waitBudget.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
