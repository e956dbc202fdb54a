package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

// withChain returns a store whose audit trail holds n records, appended
// alone and with releases and approvals.
func withChain(t *testing.T, n int) *DB {
	t.Helper()
	ctx := t.Context()
	db := mustOpen(t, filepath.Join(t.TempDir(), "socle.db"))
	t.Cleanup(func() { db.Close() })
	for i := range n {
		rec := store.AuditRecord{Actor: "ada", Action: fmt.Sprint("action", i+1), Detail: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i+1))}
		var err error
		switch i % 3 {
		case 0:
			_, err = db.AppendAudit(ctx, rec)
		case 1:
			_, err = db.BeginRelease(ctx, store.Release{App: "web", Env: "prod", Revision: fmt.Sprint("r", i), Trigger: store.TriggerSync}, &rec)
		case 2:
			_, err = db.AddApproval(ctx, store.Approval{App: "web", Env: "prod", Artifact: fmt.Sprint("a", i), User: "bob"}, &rec)
		}
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
	}
	return db
}

func verify(t *testing.T, db *DB) audit.VerifyResult {
	t.Helper()
	res, err := audit.Verify(store.AuditTrail(t.Context(), db, 0))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

func record(t *testing.T, db *DB, seq int64) store.AuditRecord {
	t.Helper()
	rs, err := db.AuditRecords(t.Context(), seq-1, 1)
	if err != nil || len(rs) != 1 {
		t.Fatalf("AuditRecords(%d, 1) = %v, %v", seq-1, rs, err)
	}
	return rs[0]
}

// tamper runs SQL statements as someone with write access to the file would,
// with the append-only triggers dropped.
func tamper(t *testing.T, db *DB, stmts ...string) {
	t.Helper()
	for _, q := range append([]string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`}, stmts...) {
		if _, err := db.SQL().ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// insert writes r into the audit table as it is.
func insert(t *testing.T, db *DB, r store.AuditRecord) {
	t.Helper()
	_, err := db.SQL().ExecContext(t.Context(), `INSERT INTO audit (seq, at, actor, action, app, env, revision, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Seq, micros(r.At), r.Actor, r.Action, r.App, r.Env, r.Revision, jsonArg(r.Detail), r.PrevHash, r.Hash)
	if err != nil {
		t.Fatalf("inserting a forged record: %v", err)
	}
}

// shift renumbers the records from seq on by d, through a range of numbers
// no record has, so that no two records ever have the same number.
func shift(t *testing.T, db *DB, from, d int64) {
	t.Helper()
	tamper(t, db,
		fmt.Sprintf(`UPDATE audit SET seq = seq + 1000000 + %d WHERE seq >= %d`, d, from),
		`UPDATE audit SET seq = seq - 1000000 WHERE seq > 1000000`)
}

// forged returns a record sealed to follow the record after, as a forger
// who knows the algorithm would make it.
func forged(t *testing.T, after store.AuditRecord) store.AuditRecord {
	t.Helper()
	r, err := audit.Seal(store.AuditRecord{At: after.At, Actor: "eve", Action: "approval.added", App: "web", Env: "prod"}, after.Seq, after.Hash)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAuditTampering tampers with the audit table with SQL, as someone with
// the database file could, and verifies the chain.
func TestAuditTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *DB)
		seq    int64 // the first bad record; 0 if the chain verifies
		kind   audit.Kind
		msg    string
	}{
		{"untouched", func(*testing.T, *DB) {}, 0, "", ""},
		{"actor updated", func(t *testing.T, db *DB) {
			tamper(t, db, `UPDATE audit SET actor = 'eve' WHERE seq = 4`)
		}, 4, audit.Changed, "record 4 (action4 by eve at "},
		{"detail updated", func(t *testing.T, db *DB) {
			tamper(t, db, `UPDATE audit SET detail = '{"i": 70}' WHERE seq = 7`)
		}, 7, audit.Changed, "record 7 (action7 by ada at "},
		{"detail reformatted", func(t *testing.T, db *DB) {
			tamper(t, db, `UPDATE audit SET detail = '{ "i" : 7 }' WHERE seq = 7`)
		}, 0, "", ""},
		{"time updated", func(t *testing.T, db *DB) {
			tamper(t, db, `UPDATE audit SET at = at + 1 WHERE seq = 1`)
		}, 1, audit.Changed, "record 1 "},
		{"updated, hash recomputed", func(t *testing.T, db *DB) {
			r := record(t, db, 5)
			r.Actor = "eve"
			tamper(t, db, fmt.Sprintf(`UPDATE audit SET actor = 'eve', hash = '%s' WHERE seq = 5`, audit.Hash(r)))
		}, 5, audit.Changed, "record 5 (action5 web/prod @ r4 by eve at"},
		{"deleted", func(t *testing.T, db *DB) {
			tamper(t, db, `DELETE FROM audit WHERE seq = 4`)
		}, 4, audit.Removed, "record 4 was removed: the chain goes from record 3 to record 5"},
		{"deleted, later renumbered", func(t *testing.T, db *DB) {
			tamper(t, db, `DELETE FROM audit WHERE seq IN (4, 5)`)
			shift(t, db, 6, -2)
		}, 4, audit.Removed, "2 records were removed after record 3 and the later records renumbered: record 4 is the former record 6"},
		{"first deleted", func(t *testing.T, db *DB) {
			tamper(t, db, `DELETE FROM audit WHERE seq = 1`)
		}, 1, audit.Removed, "record 1 was removed"},
		{"forged one inserted in the middle", func(t *testing.T, db *DB) {
			f := forged(t, record(t, db, 4))
			shift(t, db, 5, 1)
			insert(t, db, f)
		}, 5, audit.Inserted, "record 5 was inserted: record 6 is the former record 5 (action5 web/prod @ r4 by ada at"},
		{"made-up one inserted in the middle", func(t *testing.T, db *DB) {
			f := forged(t, record(t, db, 4))
			f.Hash = strings.Repeat("f", 64)
			shift(t, db, 5, 1)
			insert(t, db, f)
		}, 5, audit.Inserted, "record 5 (approval.added web/prod by eve at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := withChain(t, 9)
			tc.tamper(t, db)
			res := verify(t, db)
			if tc.seq == 0 {
				if !res.OK() || res.Verified != 9 || res.LastSeq != 9 {
					t.Errorf("Verify = %+v, want 9 records verified", res)
				}
				return
			}
			if p := res.Problem; p == nil || p.Seq != tc.seq || p.Kind != tc.kind || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("Verify = %+v\nwant record %d %s, saying %q", p, tc.seq, tc.kind, tc.msg)
			}
		})
	}
}

// TestAuditIsAppendOnly: socle's own SQL cannot change or remove a record.
func TestAuditIsAppendOnly(t *testing.T) {
	db := withChain(t, 2)
	for _, q := range []string{`UPDATE audit SET actor = 'eve' WHERE seq = 1`, `DELETE FROM audit WHERE seq = 2`, `DELETE FROM audit`} {
		if _, err := db.SQL().ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only error", q, err)
		}
	}
	if res := verify(t, db); !res.OK() || res.Verified != 2 {
		t.Errorf("Verify = %+v, want 2 records verified", res)
	}
}

// TestAuditRecordFailsWithItsRelease makes the audit insert fail inside the
// transaction of a release or an approval: neither may be recorded.
func TestAuditRecordFailsWithItsRelease(t *testing.T) {
	ctx := t.Context()
	db := mustOpen(t, filepath.Join(t.TempDir(), "socle.db"))
	defer db.Close()
	running, err := db.BeginRelease(ctx, store.Release{App: "web", Env: "prod", Revision: "r1", Trigger: store.TriggerSync}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `CREATE TRIGGER audit_full BEFORE INSERT ON audit
		BEGIN SELECT RAISE(ABORT, 'disk full'); END`); err != nil {
		t.Fatal(err)
	}
	rec := &store.AuditRecord{Actor: "ada", Action: "x"}
	calls := []struct {
		name string
		call func() error
	}{
		{"BeginRelease", func() error {
			_, err := db.BeginRelease(ctx, store.Release{App: "web", Env: "prod", Revision: "r2", Trigger: store.TriggerSync}, rec)
			return err
		}},
		{"FinishRelease", func() error { return db.FinishRelease(ctx, running.ID, store.Succeeded, "", rec) }},
		{"AddApproval", func() error {
			_, err := db.AddApproval(ctx, store.Approval{App: "web", Env: "prod", Artifact: "a", User: "ada"}, rec)
			return err
		}},
		{"AppendAudit", func() error { _, err := db.AppendAudit(ctx, *rec); return err }},
	}
	for _, c := range calls {
		if err := c.call(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: %v, want the audit insert's error", c.name, err)
		}
	}
	rs, err := db.Releases(ctx, store.ReleaseFilter{})
	if err != nil || len(rs) != 1 || rs[0].ID != running.ID || rs[0].Status != store.Progressing {
		t.Errorf("Releases = %+v, %v; want only release %d, still Progressing", rs, err, running.ID)
	}
	if as, err := db.Approvals(ctx, "web", "prod", "a"); err != nil || len(as) != 0 {
		t.Errorf("Approvals = %+v, %v; want none", as, err)
	}
}

// TestTwoHandlesAppendAudit appends through two DBs on one file, which do
// not share the in-process write lock, as two processes would: the records
// must still form one chain.
func TestTwoHandlesAppendAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socle.db")
	a, b := mustOpen(t, path), mustOpen(t, path)
	defer a.Close()
	defer b.Close()
	const n = 10
	var wg sync.WaitGroup
	for i, db := range []*DB{a, b, a, b} {
		wg.Go(func() {
			for j := range n {
				if _, err := db.AppendAudit(t.Context(), store.AuditRecord{Actor: fmt.Sprint("writer", i), Action: fmt.Sprint(j)}); err != nil {
					t.Errorf("AppendAudit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if res := verify(t, a); !res.OK() || res.Verified != 4*n {
		t.Errorf("Verify = %+v, want %d records verified", res, 4*n)
	}
}

// crashRelease is what the child of TestCrashDuringRelease rolls out.
var crashRelease = store.Release{App: "web", Env: "prod", Revision: "r1", Artifact: "sha256:1", ConfigHash: "c1", Trigger: store.TriggerSync}

func TestCrashDuringRelease(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashReleaseChild(path)
		return // not reached
	}
	path := crash(t, "TestCrashDuringRelease")
	db := mustOpen(t, path)
	defer db.Close()
	ctx := t.Context()

	prog, err := db.ProgressingReleases(ctx)
	if err != nil || len(prog) != 1 || prog[0].Status != store.Progressing || prog[0].App != "web" {
		t.Fatalf("ProgressingReleases after the crash = %+v, %v; want the release begun, Progressing", prog, err)
	}
	// The restarted socle begins the same rollout again: it gets the same
	// release, and nothing is recorded twice.
	again, err := db.BeginRelease(ctx, crashRelease, &store.AuditRecord{Actor: "socle", Action: "release.started"})
	if err != nil || again.ID != prog[0].ID {
		t.Fatalf("BeginRelease after the crash = %d, %v; want the same release %d", again.ID, err, prog[0].ID)
	}
	rs, err := db.Releases(ctx, store.ReleaseFilter{})
	if err != nil || len(rs) != 1 {
		t.Errorf("Releases = %+v, %v; want 1", rs, err)
	}
	res := verify(t, db)
	if !res.OK() || res.Verified != 1 {
		t.Errorf("audit trail after the crash: %+v; want the 1 record of the release, verified", res)
	}
	if err := db.FinishRelease(ctx, again.ID, store.Succeeded, "", &store.AuditRecord{Actor: "socle", Action: "release.finished"}); err != nil {
		t.Fatalf("FinishRelease after the crash: %v", err)
	}
	if res := verify(t, db); !res.OK() || res.Verified != 2 {
		t.Errorf("audit trail after finishing: %+v; want 2 records verified", res)
	}
	var check string
	if err := db.SQL().QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}

// crashReleaseChild begins a release, is in the middle of finishing it, and
// kills its own process.
func crashReleaseChild(path string) {
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		crashFail(err)
	}
	r, err := db.BeginRelease(ctx, crashRelease, &store.AuditRecord{Actor: "socle", Action: "release.started"})
	if err != nil {
		crashFail(err)
	}
	dieInTransaction(db, fmt.Sprintf(`UPDATE releases SET status = 'Succeeded', finished_at = %d WHERE id = %d`, time.Now().UnixMicro(), r.ID))
}

func crashFail(err error) {
	fmt.Println("child:", err)
	os.Exit(2)
}

// dieInTransaction runs stmt in a transaction that it never commits: it
// kills its own process first.
func dieInTransaction(db *DB, stmt string) {
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		crashFail(err)
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		crashFail(err)
	}
	fmt.Println(crashedMarker)
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		crashFail(err)
	}
	p.Kill()
	time.Sleep(time.Minute)
	crashFail(errors.New("still alive after Kill"))
}
