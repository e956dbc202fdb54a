package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

// replicas opens n stores on one database, each with a pool of its own,
// as n socle replicas would.
func replicas(t *testing.T, n int) []*DB {
	t.Helper()
	url := newDB(t)
	dbs := make([]*DB, n)
	for i := range dbs {
		dbs[i] = mustOpen(t, url)
		t.Cleanup(func() { dbs[i].Close() })
	}
	return dbs
}

// TestFollowerSeesEveryEventOnceInOrder has writers on several replicas
// append events, one at a time and in batches of ApplyDesired, while a
// follower reads "events after my cursor" until it has seen them all: it
// must see each exactly once, in increasing ID order, and never an ID
// below its cursor.
func TestFollowerSeesEveryEventOnceInOrder(t *testing.T) {
	const writers, rounds, batch = 6, 40, 3
	dbs := replicas(t, 3)
	ctx := t.Context()
	if err := dbs[0].PutRevision(ctx, store.Revision{SHA: "r1", Valid: true}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	appended := map[string]bool{} // by message
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		db := dbs[w%len(dbs)]
		wg.Go(func() {
			for i := range rounds {
				var msgs []string
				if i%2 == 0 {
					msg := fmt.Sprintf("w%d-%d", w, i)
					if _, err := db.AppendEvent(ctx, store.Event{Kind: "test.append", Message: msg}); err != nil {
						errs <- err
						return
					}
					msgs = append(msgs, msg)
				} else {
					var es []store.Event
					for j := range batch {
						msg := fmt.Sprintf("w%d-%d-%d", w, i, j)
						es = append(es, store.Event{Kind: "test.apply", Message: msg})
						msgs = append(msgs, msg)
					}
					set := []store.Desired{{App: fmt.Sprint("app", w), Env: "dev", Spec: json.RawMessage(`{}`)}}
					if _, err := db.ApplyDesired(ctx, "r1", set, nil, store.Plan{}, es); err != nil {
						errs <- err
						return
					}
				}
				mu.Lock()
				for _, m := range msgs {
					appended[m] = true
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	want := writers * (rounds/2 + rounds/2*batch)
	seen := map[string]int64{}
	var cursor int64
	follower := dbs[2]
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		page, err := follower.Events(ctx, store.EventFilter{AfterID: cursor, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.ID <= cursor {
				t.Fatalf("event %d listed after cursor %d", e.ID, cursor)
			}
			if first, ok := seen[e.Message]; ok {
				t.Fatalf("event %q seen twice: IDs %d and %d", e.Message, first, e.ID)
			}
			seen[e.Message] = e.ID
			cursor = e.ID
		}
		// Once every writer has returned, one more pass reads what is
		// left; an empty page then ends the follow.
		if finished && len(page) == 0 {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(appended) != want {
		t.Fatalf("writers appended %d events, want %d", len(appended), want)
	}
	for m := range appended {
		if _, ok := seen[m]; !ok {
			t.Errorf("the follower missed event %q", m)
		}
	}
	if len(seen) != want {
		t.Errorf("the follower saw %d events, want %d", len(seen), want)
	}
	t.Logf("%d events from %d writers on %d replicas, followed %d at a time", len(seen), writers, len(dbs), 7)
}

// TestLaterAppendWaitsForEarlierCommit shows the race the events lock
// closes, step by step: a transaction that took an event ID and has not
// committed holds back every later append, so a follower that reads in
// between finds neither, and then both, in ID order. The same two inserts
// without the lock (the bare sequence) let the follower skip the first.
func TestLaterAppendWaitsForEarlierCommit(t *testing.T) {
	dbs := replicas(t, 2)
	ctx := t.Context()
	a, b := dbs[0], dbs[1]

	// Without the lock: A takes an ID, B takes the next and commits, the
	// follower moves past A's, which A commits after.
	txA := begin(t, a)
	idA := insertBare(t, txA, "bare-a")
	idB := insertBare(t, b.pool, "bare-b")
	page := events(t, a, 0)
	if len(page) != 1 || page[0].ID != idB || idB <= idA {
		t.Fatalf("bare sequence: the follower read %v, want only %d (after the uncommitted %d)", ids(page), idB, idA)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if page := events(t, a, idB); len(page) != 0 {
		t.Fatalf("bare sequence: after the cursor %d the follower read %v", idB, ids(page))
	}
	// ... and event idA, committed, lies behind the cursor: missed. That
	// is what the lock prevents.

	// With the lock: A appends as AppendEvent does and stays open.
	txA = begin(t, a)
	if err := lock(ctx, txA, eventsLock); err != nil {
		t.Fatal(err)
	}
	idA = insertBare(t, txA, "locked-a")
	appended := make(chan int64, 1)
	failed := make(chan error, 1)
	go func() {
		id, err := b.AppendEvent(ctx, store.Event{Kind: "test", Message: "locked-b"})
		if err != nil {
			failed <- err
			return
		}
		appended <- id
	}()
	waitForLockWait(t, a)
	cursor := idB
	if page := events(t, a, cursor); len(page) != 0 {
		t.Fatalf("while A is open and B waits, the follower read %v", ids(page))
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var idB2 int64
	select {
	case idB2 = <-appended:
	case err := <-failed:
		t.Fatal(err)
	}
	page = events(t, a, cursor)
	if len(page) != 2 || page[0].ID != idA || page[1].ID != idB2 || idA >= idB2 {
		t.Fatalf("after A's commit the follower read %v, want [%d %d]", ids(page), idA, idB2)
	}
}

func begin(t *testing.T, db *DB) pgx.Tx {
	t.Helper()
	tx, err := db.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	return tx
}

// insertBare inserts an event through q (a transaction, or the pool for a
// transaction of its own, committed), without the events lock.
func insertBare(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, msg string) int64 {
	t.Helper()
	var id int64
	if err := q.QueryRow(t.Context(), insertEvent, eventArgs(store.Event{Kind: "test", Message: msg}, time.Now())...).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func events(t *testing.T, db *DB, after int64) []store.Event {
	t.Helper()
	es, err := db.Events(t.Context(), store.EventFilter{AfterID: after})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func ids(es []store.Event) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// waitForLockWait returns once a session of the database waits for a
// lock (advisory, or a row's), as PostgreSQL's pg_locks shows it.
func waitForLockWait(t *testing.T, db *DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		var waiting bool
		err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE NOT granted AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database()))`).Scan(&waiting)
		if err != nil {
			t.Fatalf("waiting for a session to wait for a lock: %v", err)
		}
		if waiting {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no session waits for a lock")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestAuditChainAcrossReplicas has writers on several replicas append to
// the audit trail, alone and with releases, approvals and tokens: the
// chain verifies, with every record once and no gap.
func TestAuditChainAcrossReplicas(t *testing.T) {
	const writers, rounds = 6, 12
	dbs := replicas(t, 3)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		db := dbs[w%len(dbs)]
		wg.Go(func() {
			app := fmt.Sprint("app", w)
			for i := range rounds {
				rec := store.AuditRecord{Actor: app, Action: "round", Detail: json.RawMessage(fmt.Sprintf(`{"round": %d}`, i))}
				var err error
				switch i % 4 {
				case 0:
					_, err = db.AppendAudit(ctx, rec)
				case 1:
					_, err = db.BeginRelease(ctx, store.Release{App: app, Env: "prod", Revision: fmt.Sprint("r", i), Trigger: store.TriggerSync}, &rec)
				case 2:
					_, err = db.AddApproval(ctx, store.Approval{App: app, Env: "prod", Artifact: fmt.Sprint("sha256:", i), User: "ada"}, &rec)
				case 3:
					_, err = db.CreateToken(ctx, store.Token{ID: fmt.Sprintf("%s-%d", app, i), User: app, Hash: "h"}, &rec)
				}
				if err != nil {
					errs <- fmt.Errorf("%s round %d: %w", app, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := audit.Verify(store.AuditTrail(ctx, dbs[1], 0))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("the audit chain does not verify: %v", res.Problem)
	}
	recs, err := dbs[2].AuditRecords(ctx, 0, store.MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != writers*rounds {
		t.Fatalf("%d audit records, want %d", len(recs), writers*rounds)
	}
	perWriter := map[string]int{}
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has Seq %d", i, r.Seq)
		}
		perWriter[r.Actor]++
	}
	for w := range writers {
		if n := perWriter[fmt.Sprint("app", w)]; n != rounds {
			t.Errorf("app%d has %d records, want %d", w, n, rounds)
		}
	}
}
