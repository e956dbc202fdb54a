package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/store"
)

// expire makes scope's lease expire now, by the database's clock: what
// the passing of TTL does to a holder that stopped renewing (paused).
func expire(t *testing.T, db *DB, scope string) {
	t.Helper()
	if _, err := db.pool.Exec(t.Context(), `UPDATE leases SET expires_at = clock_timestamp() - interval '1 millisecond' WHERE scope = $1`, scope); err != nil {
		t.Fatal(err)
	}
}

// TestFencingRefusesThePausedHolder: replica A holds the lease of
// environment prod and pauses (renews nothing) past its expiry; replica B
// takes the scope over with the next epoch; every write A then makes
// under its lease is refused, and counted, while B's go through.
func TestFencingRefusesThePausedHolder(t *testing.T) {
	dbs := replicas(t, 2)
	ctx := t.Context()
	// Renewals never come within the test: A is paused.
	paused := func(db *DB) *Leaser { return &Leaser{DB: db, TTL: time.Hour, Renew: time.Hour} }
	a, b := paused(dbs[0]), paused(dbs[1])
	const scope = "env.prod"
	la, err := a.TryAcquire(ctx, scope, lease.Holder{PID: 1, Host: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()
	if _, err := b.TryAcquire(ctx, scope, lease.Holder{PID: 2, Host: "b"}); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("B took a lease A holds: %v", err)
	} else if held := (*lease.HeldError)(nil); !errors.As(err, &held) || held.Holder.Host != "a" {
		t.Errorf("the held error names %+v, want A", err)
	}
	underA := dbs[0].Fenced(scope, la.Token())
	if err := underA.PutRevision(ctx, store.Revision{SHA: "r1", Valid: true}); err != nil {
		t.Fatalf("A's write while it holds the lease: %v", err)
	}

	expire(t, dbs[0], scope)
	lb, err := b.TryAcquire(ctx, scope, lease.Holder{PID: 2, Host: "b"})
	if err != nil {
		t.Fatalf("B could not take over the expired lease: %v", err)
	}
	defer lb.Release()
	if lb.Token() != la.Token()+1 {
		t.Errorf("B's epoch is %d, A's %d: want one more", lb.Token(), la.Token())
	}
	underB := dbs[1].Fenced(scope, lb.Token())

	// A wakes up and goes on writing, through every kind of write.
	writes := []func(*DB) error{
		func(db *DB) error {
			_, err := db.AppendEvent(ctx, store.Event{Kind: "unit.applied", App: "web", Env: "prod"})
			return err
		},
		func(db *DB) error {
			_, err := db.BeginRelease(ctx, store.Release{App: "web", Env: "prod", Revision: "r1", Trigger: store.TriggerSync}, nil)
			return err
		},
		func(db *DB) error {
			return db.PutUnitState(ctx, store.UnitState{Kind: "app", Name: "web", Env: "prod", Operation: &store.Operation{Phase: "Waiting", Target: store.Target{Revision: "r1"}}})
		},
		func(db *DB) error {
			_, err := db.AppendAudit(ctx, store.AuditRecord{Actor: "socle", Action: "apply"})
			return err
		},
		func(db *DB) error {
			_, err := db.ApplyDesired(ctx, "r1", nil, nil, store.Plan{}, []store.Event{{Kind: "plan.recorded"}})
			return err
		},
	}
	before := dbs[0].Refused()
	for i, w := range writes {
		if err := w(underA); !errors.Is(err, lease.ErrFenced) {
			t.Errorf("A's write %d after the takeover: %v, want ErrFenced", i, err)
		}
		if err := w(underB); err != nil {
			t.Errorf("B's write %d: %v", i, err)
		}
	}
	if n := dbs[0].Refused() - before; n != int64(len(writes)) {
		t.Errorf("%d refused writes counted, want %d", n, len(writes))
	}
	// Nothing of A's got in: one event of each kind, B's.
	es, err := dbs[1].Events(ctx, store.EventFilter{})
	if err != nil || len(es) != 2 {
		t.Errorf("events after the takeover: %d, %v; want B's 2", len(es), err)
	}

	// A's renewal, when it comes, finds the lease gone: A hears it lost.
	resumed := &Leaser{DB: dbs[0], TTL: time.Hour, Renew: 10 * time.Millisecond}
	la2, err := resumed.TryAcquire(ctx, "env.dev", lease.Holder{PID: 1, Host: "a"})
	if err != nil {
		t.Fatal(err)
	}
	expire(t, dbs[0], "env.dev")
	if _, err := b.TryAcquire(ctx, "env.dev", lease.Holder{PID: 2, Host: "b"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-la2.Lost():
	case <-time.After(time.Minute):
		t.Fatal("A's lease of env.dev was taken over and A did not hear it lost")
	}
}

// TestLeaseExpiredWithoutSuccessorRefusesWrites: a lease that expired is
// no longer a licence to write, even before anyone takes it over.
func TestLeaseExpiredWithoutSuccessorRefusesWrites(t *testing.T) {
	db := mustOpen(t, newDB(t))
	defer db.Close()
	l := &Leaser{DB: db, TTL: time.Hour, Renew: time.Hour}
	le, err := l.TryAcquire(t.Context(), "platform", lease.Holder{PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	expire(t, db, "platform")
	if _, err := db.Fenced("platform", le.Token()).AppendEvent(t.Context(), store.Event{Kind: "x"}); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a write under an expired lease: %v", err)
	}
	if _, err := db.Fenced("nowhere", 1).AppendEvent(t.Context(), store.Event{Kind: "x"}); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a write under a lease never taken: %v", err)
	}
}

// TestLeaseReleaseRenewAndRun: a held lease is renewed past its TTL; a
// released one is taken at once with the next epoch; lease.Run runs one
// job per scope across replicas, each under its own epoch.
func TestLeaseReleaseRenewAndRun(t *testing.T) {
	dbs := replicas(t, 2)
	ctx := t.Context()
	a := &Leaser{DB: dbs[0], TTL: 2 * time.Second, Renew: 50 * time.Millisecond}
	b := &Leaser{DB: dbs[1], TTL: 2 * time.Second, Renew: 50 * time.Millisecond}
	la, err := a.TryAcquire(ctx, "env.prod", lease.Holder{PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Renewals keep the row's expiry ahead: wait until it has been
	// pushed past its first TTL, then see it still held.
	var first, now time.Time
	if err := dbs[0].pool.QueryRow(ctx, `SELECT acquired_at + interval '2 seconds' FROM leases WHERE scope = 'env.prod'`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for {
		var expires time.Time
		if err := dbs[0].pool.QueryRow(ctx, `SELECT expires_at, clock_timestamp() FROM leases WHERE scope = 'env.prod'`).Scan(&expires, &now); err != nil {
			t.Fatal(err)
		}
		if now.After(first) {
			break
		}
		select {
		case <-la.Lost():
			t.Fatal("the lease was lost while renewed")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := b.TryAcquire(ctx, "env.prod", lease.Holder{PID: 2}); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("B took a renewed lease past its first TTL: %v", err)
	}
	if err := la.Release(); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryAcquire(ctx, "env.prod", lease.Holder{PID: 2})
	if err != nil || lb.Token() != la.Token()+1 {
		t.Fatalf("after Release: %v, %v", lb, err)
	}
	lb.Release()

	// lease.Run on both replicas for two scopes: each job runs once.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ran struct {
		scope   string
		replica int
		token   uint64
	}
	started := make(chan ran, 4)
	for i, l := range []*Leaser{a, b} {
		for _, scope := range []string{"env.dev", "env.preprod"} {
			go lease.Run(runCtx, l, scope, lease.Holder{PID: i}, func(jctx context.Context, token uint64) error {
				started <- ran{scope, i, token}
				<-jctx.Done()
				return nil
			})
		}
	}
	got := map[string]ran{}
	for len(got) < 2 {
		r := <-started
		if prev, ok := got[r.scope]; ok {
			t.Fatalf("%s runs twice: on replica %d and %d", r.scope, prev.replica, r.replica)
		}
		got[r.scope] = r
	}
	select {
	case r := <-started:
		t.Fatalf("%s started again, on replica %d, while its lease is held", r.scope, r.replica)
	default:
	}
	t.Logf("jobs: %v", got)
}

// TestTakeoverWaitsForTheWriteInFlight: a write whose fencing check
// passed holds the lease's row until it commits, so a successor whose
// takeover comes meanwhile (the lease expired during the write) waits for
// it: the write lands before the new epoch, never after.
func TestTakeoverWaitsForTheWriteInFlight(t *testing.T) {
	dbs := replicas(t, 2)
	ctx := t.Context()
	a := &Leaser{DB: dbs[0], TTL: time.Second, Renew: time.Hour}
	la, err := a.TryAcquire(ctx, "env.prod", lease.Holder{PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	underA := dbs[0].Fenced("env.prod", la.Token())
	tx := begin(t, dbs[0])
	if err := underA.checkFence(ctx, tx); err != nil {
		t.Fatal(err)
	}
	// The lease expires while the write is in flight.
	for {
		var expired bool
		if err := dbs[1].pool.QueryRow(ctx, `SELECT expires_at <= clock_timestamp() FROM leases WHERE scope = 'env.prod'`).Scan(&expired); err != nil {
			t.Fatal(err)
		}
		if expired {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the database's clock, not standing in for an event
	}
	took := make(chan lease.Lease, 1)
	failed := make(chan error, 1)
	go func() {
		b := &Leaser{DB: dbs[1], TTL: time.Hour, Renew: time.Hour}
		lb, err := b.TryAcquire(ctx, "env.prod", lease.Holder{PID: 2})
		if err != nil {
			failed <- err
			return
		}
		took <- lb
	}()
	waitForLockWait(t, dbs[1])
	id := insertBare(t, tx, "A's write, checked before the takeover")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case lb := <-took:
		defer lb.Release()
		if lb.Token() != la.Token()+1 {
			t.Errorf("B's epoch %d after A's %d", lb.Token(), la.Token())
		}
	case err := <-failed:
		t.Fatal(err)
	}
	if es := events(t, dbs[1], id-1); len(es) != 1 {
		t.Errorf("A's write in flight: %v", ids(es))
	}
	if _, err := underA.AppendEvent(ctx, store.Event{Kind: "late"}); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("A's next write: %v, want ErrFenced", err)
	}
}
