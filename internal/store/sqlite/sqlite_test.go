package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "socle.db")
		return mustOpen(t, path), func() store.Store { return mustOpen(t, path) }
	})
}

func mustOpen(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// openWith opens path with the migrations migs and closes it at the end of
// the test.
func openWith(t *testing.T, path string, migs []migration) *DB {
	t.Helper()
	db, err := open(t.Context(), path, migs)
	if err != nil {
		t.Fatalf("open with %d migrations: %v", len(migs), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func embedded(t *testing.T) []migration {
	t.Helper()
	migs, err := embeddedMigrations()
	if err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	return migs
}

func appliedVersions(t *testing.T, db *DB) []int {
	t.Helper()
	vs, err := queryAll(t.Context(), db.SQL(), func(s scanner) (v int, err error) { return v, s.Scan(&v) },
		`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return vs
}

func versions(migs []migration) []int {
	var vs []int
	for _, m := range migs {
		vs = append(vs, m.version)
	}
	return vs
}

func TestEmbeddedMigrations(t *testing.T) {
	migs := embedded(t)
	if len(migs) == 0 || migs[0].name != "0001_init.sql" {
		t.Fatalf("embedded migrations start with %v, want 0001_init.sql", migs)
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	tests := []struct {
		name  string
		files []string
	}{
		{"no number", []string{"init.sql"}},
		{"short number", []string{"001_init.sql"}},
		{"upper case", []string{"0001_Init.sql"}},
		{"version zero", []string{"0000_init.sql"}},
		{"same version twice", []string{"0001_init.sql", "0002_a.sql", "0002_b.sql"}},
	}
	for _, tc := range tests {
		fsys := fstest.MapFS{}
		for _, f := range tc.files {
			fsys[f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if migs, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations(%v) = %v, want an error", tc.name, tc.files, versions(migs))
		}
	}
	// Gaps are allowed, and other files ignored.
	migs, err := loadMigrations(fstest.MapFS{
		"0020_audit.sql": {}, "0001_init.sql": {}, "0010_costs.sql": {}, "README.md": {},
	})
	if err != nil || !slices.Equal(versions(migs), []int{1, 10, 20}) {
		t.Errorf("loadMigrations = %v, %v; want versions [1 10 20]", versions(migs), err)
	}
}

// TestUpgrade opens a database left at every earlier schema version with
// Open, which must bring it to the latest and keep what it held.
func TestUpgrade(t *testing.T) {
	migs := embedded(t)
	for k := range len(migs) {
		from := 0
		if k > 0 {
			from = migs[k-1].version
		}
		t.Run(fmt.Sprintf("from version %d", from), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "socle.db")
			old := openWith(t, path, migs[:k])
			if got := appliedVersions(t, old); !slices.Equal(got, versions(migs[:k])) {
				t.Fatalf("old database has migrations %v, want %v", got, versions(migs[:k]))
			}
			old.Close()
			db := mustOpen(t, path)
			defer db.Close()
			if got := appliedVersions(t, db); !slices.Equal(got, versions(migs)) {
				t.Errorf("after Open, migrations %v, want %v", got, versions(migs))
			}
			if err := db.PutRevision(t.Context(), store.Revision{SHA: "a1", Valid: true}); err != nil {
				t.Errorf("PutRevision on the upgraded database: %v", err)
			}
		})
	}
}

// testMigration is a later migration, as a later socle would add: numbered
// above every embedded one, whichever features have their own.
var testMigration = migration{version: 9998, name: "9998_test.sql", sql: `
	ALTER TABLE revisions ADD COLUMN note TEXT NOT NULL DEFAULT 'from before';
	CREATE TABLE notes (id INTEGER PRIMARY KEY, revision TEXT NOT NULL REFERENCES revisions (sha));
	INSERT INTO notes (revision) SELECT sha FROM revisions;`}

func TestUpgradeKeepsDataThenNewerIsRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socle.db")
	db := mustOpen(t, path)
	if err := db.PutRevision(ctx, store.Revision{SHA: "a1", Valid: true}); err != nil {
		t.Fatalf("PutRevision: %v", err)
	}
	db.Close()

	migs := append(embedded(t), testMigration)
	db = openWith(t, path, migs)
	if got := appliedVersions(t, db); !slices.Equal(got, versions(migs)) {
		t.Errorf("migrations %v, want %v", got, versions(migs))
	}
	var note string
	var notes int
	err := db.SQL().QueryRowContext(ctx, `SELECT note, (SELECT count(*) FROM notes) FROM revisions WHERE sha = 'a1'`).Scan(&note, &notes)
	if err != nil || note != "from before" || notes != 1 {
		t.Errorf("after the upgrade: note %q, %d notes, %v; want the row kept, migrated once", note, notes, err)
	}
	if r, err := db.Revision(ctx, "a1"); err != nil || !r.Valid {
		t.Errorf("Revision(a1) after the upgrade = %+v, %v", r, err)
	}
	db.Close()

	// This binary's Open does not know 9998: the database is newer.
	_, err = Open(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "9998") {
		t.Errorf("Open of a newer database: %v, want ErrSchemaTooNew naming 9998", err)
	}
	// Nor may a newer database be changed by the refusal.
	db = openWith(t, path, migs)
	if r, err := db.Revision(ctx, "a1"); err != nil || !r.Valid {
		t.Errorf("Revision(a1) after the refusal = %+v, %v", r, err)
	}
}

func TestFutureVersionIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socle.db")
	db := mustOpen(t, path)
	if _, err := db.SQL().ExecContext(t.Context(), `INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(t.Context(), path)
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
		t.Errorf("Open: %v, want ErrSchemaTooNew naming 9999", err)
	}
}

func TestFailedMigrationChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socle.db")
	migs := embedded(t)
	bad := migration{version: 9998, name: "9998_bad.sql", sql: `CREATE TABLE half (x); INSERT INTO missing VALUES (1);`}
	if db, err := open(t.Context(), path, append(slices.Clone(migs), bad)); err == nil {
		db.Close()
		t.Fatal("open with a failing migration succeeded")
	} else if !strings.Contains(err.Error(), "9998_bad.sql") {
		t.Errorf("error %q does not name the migration", err)
	}
	db := openWith(t, path, migs)
	if got := appliedVersions(t, db); !slices.Equal(got, versions(migs)) {
		t.Errorf("migrations %v, want %v", got, versions(migs))
	}
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table of the failed migration: %d, %v; want none", n, err)
	}
}

// TestOpenWaitsForAMigratingProcess opens a file whose write lock another
// process holds for longer than a write's busy timeout (as one applying
// every migration on a slow disk does while others open the file): Open
// waits for it instead of failing with SQLITE_BUSY.
func TestOpenWaitsForAMigratingProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socle.db")
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec("PRAGMA journal_mode = WAL"); err != nil {
		t.Fatal(err)
	}
	tx, err := other.Begin() // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		db, err := Open(t.Context(), path)
		if err == nil {
			db.Close()
		}
		opened <- err
	}()
	// Held past the busy timeout: the scenario, not a synchronisation.
	select {
	case err := <-opened:
		t.Fatalf("Open returned while another held the write lock: %v", err)
	case <-time.After(busyTimeout + time.Second):
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("Open after the lock was released: %v", err)
	}
}

// TestConcurrentOpen opens a new file from several goroutines at once, as
// several processes might: each migration must be applied once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socle.db")
	var wg sync.WaitGroup
	dbs := make([]*DB, 8)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = Open(t.Context(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer dbs[i].Close()
	}
	if errs[0] == nil {
		if got, want := appliedVersions(t, dbs[0]), versions(embedded(t)); !slices.Equal(got, want) {
			t.Errorf("migrations %v, want %v", got, want)
		}
	}
}

// TestMigrationAppliedMeanwhile applies a migration that another process
// applied after this one read schema_migrations: it must be skipped.
func TestMigrationAppliedMeanwhile(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "socle.db"))
	defer db.Close()
	for _, m := range embedded(t) {
		if err := db.apply(t.Context(), m); err != nil {
			t.Errorf("applying %s again: %v", m.name, err)
		}
	}
	if got, want := appliedVersions(t, db), versions(embedded(t)); !slices.Equal(got, want) {
		t.Errorf("migrations %v, want %v", got, want)
	}
}

// TestTwoHandlesWriteConcurrently writes through two DBs on one file, which
// do not share the in-process write lock, as two processes would: SQLite's
// busy timeout must make them wait, not fail.
func TestTwoHandlesWriteConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socle.db")
	a, b := mustOpen(t, path), mustOpen(t, path)
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	const n = 15
	for i, db := range []*DB{a, b} {
		wg.Go(func() {
			for j := range n {
				sha := fmt.Sprintf("%d-%d", i, j)
				if err := db.PutRevision(t.Context(), store.Revision{SHA: sha, Valid: true}); err != nil {
					t.Errorf("PutRevision(%s): %v", sha, err)
					return
				}
				_, err := db.ApplyDesired(t.Context(), sha, []store.Desired{{App: "app", Env: fmt.Sprint(i), Spec: json.RawMessage(`{}`)}},
					nil, store.Plan{}, []store.Event{{Kind: "plan.recorded"}})
				if err != nil {
					t.Errorf("ApplyDesired(%s): %v", sha, err)
					return
				}
			}
		})
	}
	wg.Wait()
	es, err := a.Events(t.Context(), store.EventFilter{})
	if err != nil || len(es) != 2*n {
		t.Errorf("Events = %d, %v; want %d", len(es), err, 2*n)
	}
}

func TestConnectionSettings(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "socle.db"))
	defer db.Close()
	// Settings are per connection: hold two, so that two are checked.
	for i := range 2 {
		conn, err := db.SQL().Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, tc := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"busy_timeout", "5000"},
			{"synchronous", "2"}, // FULL
		} {
			var got string
			if err := conn.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil || got != tc.want {
				t.Errorf("connection %d: PRAGMA %s = %q, %v; want %q", i, tc.pragma, got, err, tc.want)
			}
		}
	}
}

func TestOpenPaths(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:socle.db?mode=memory"} {
		if db, err := Open(t.Context(), path); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
	// A path that means something in a URI is still a path.
	dir := filepath.Join(t.TempDir(), "odd ?dir#50%")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "so?cle.db")
	mustOpen(t, path).Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %s: %v", path, err)
	}
	// A file that is not a database is an error, not a new database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(t.Context(), junk); err == nil {
		db.Close()
		t.Errorf("Open of a file that is not a database succeeded")
	}
}

// crashEnv, when set, makes a crash test the child that writes to the
// database it names and is killed before closing it.
const crashEnv = "SOCLE_SQLITE_CRASH_DB"

const crashedMarker = "committed, now killing myself"

// crash runs the test name again in a child process, which writes to a new
// database and kills itself in the middle of a transaction, and returns the
// database's path.
func crash(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socle.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Exited() || !strings.Contains(string(out), crashedMarker) {
		t.Fatalf("child: %v, want it killed after %q; output:\n%s", err, crashedMarker, out)
	}
	// The child never closed the database: what it committed is in the WAL,
	// and reopening must recover it from there.
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("WAL after the crash: %v, %v; want a non-empty file", fi, err)
	}
	return path
}

func TestCrashSafety(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return // not reached
	}
	path := crash(t, "TestCrashSafety")
	db := mustOpen(t, path)
	defer db.Close()
	ctx := t.Context()
	if r, err := db.Revision(ctx, "r1"); err != nil || !r.Valid {
		t.Errorf("Revision(r1) = %+v, %v; want it valid", r, err)
	}
	if ds, err := db.Desired(ctx); err != nil || len(ds) != 3 {
		t.Errorf("Desired = %+v, %v; want 3 units", ds, err)
	}
	if es, err := db.Events(ctx, store.EventFilter{}); err != nil || len(es) != 2 {
		t.Errorf("Events = %+v, %v; want 2", es, err)
	}
	if _, err := db.Revision(ctx, "uncommitted"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Revision(uncommitted): %v, want ErrNotFound: the transaction was not committed", err)
	}
	var check string
	if err := db.SQL().QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}

// crashChild writes, leaves a transaction open, and kills its own process.
func crashChild(path string) {
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		crashFail(err)
	}
	if err := db.PutRevision(ctx, store.Revision{SHA: "r1", Valid: true}); err != nil {
		crashFail(err)
	}
	set := []store.Desired{
		{App: "web", Env: "dev", Spec: json.RawMessage(`{}`)},
		{App: "web", Env: "prod", Spec: json.RawMessage(`{}`)},
		{App: "api", Env: "dev", Spec: json.RawMessage(`{}`)},
	}
	if _, err := db.ApplyDesired(ctx, "r1", set, nil, store.Plan{Create: 3}, []store.Event{{Kind: "plan.recorded"}}); err != nil {
		crashFail(err)
	}
	if _, err := db.AppendEvent(ctx, store.Event{Kind: "unit.synced"}); err != nil {
		crashFail(err)
	}
	dieInTransaction(db, `INSERT INTO revisions (sha, author, email, committed_at, message, valid, seen_at)
		VALUES ('uncommitted', '', '', 0, '', 1, 0)`)
}

// BenchmarkApplyDesired records the desired state of 30,000 units, with a
// plan that lists them all, in one ApplyDesired.
func BenchmarkApplyDesired(b *testing.B) {
	const units = 30_000
	ctx := b.Context()
	db := mustOpen(b, filepath.Join(b.TempDir(), "socle.db"))
	defer db.Close()
	set := make([]store.Desired, units)
	type action struct{ Op, App, Env string }
	actions := make([]action, units)
	for i := range set {
		app, env := fmt.Sprintf("app-%05d", i/3), []string{"dev", "preprod", "prod"}[i%3]
		spec := fmt.Sprintf(`{"containers":{"main":{"image":"registry.example.com/%s@sha256:%064d","variables":{"LOG_LEVEL":"info","PORT":"8080"}}},"replicas":%d,"service":{"ports":{"http":{"port":80,"targetPort":8080}}}}`, app, i, 1+i%3)
		set[i] = store.Desired{App: app, Env: env, Hash: fmt.Sprintf("%064x", i), Spec: json.RawMessage(spec)}
		actions[i] = action{"create", app, env}
	}
	body, err := json.Marshal(map[string]any{"actions": actions})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.PutRevision(ctx, store.Revision{SHA: "r1", Valid: true}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.ApplyDesired(ctx, "r1", set, nil, store.Plan{Create: units, Body: body},
			[]store.Event{{Kind: "plan.recorded"}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*units), "µs/unit")
}

// openBefore opens path with the embedded migrations before version v:
// a database as an older socle left it.
func openBefore(t *testing.T, path string, v int) *DB {
	t.Helper()
	var before []migration
	for _, m := range embedded(t) {
		if m.version < v {
			before = append(before, m)
		}
	}
	return openWith(t, path, before)
}

// TestCostViewsMigrationKeepsCosts stores costs with the schema before
// migration 0011, which rebuilds the cost tables: the costs, their
// monthly sums and coverage are still there after it, the coverage on the
// first day of its period, and a period can then have two views.
func TestCostViewsMigrationKeepsCosts(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socle.db")
	old := openBefore(t, path, 11)
	for _, q := range []string{
		`INSERT INTO cost_imports (id, at, charges, files, periods) VALUES (1, 1, 3, '[{"name":"a.csv"}]', '["AWS:1 2024-09"]')`,
		`INSERT INTO cost_import_files (import_id, sha256) VALUES (1, 'aaa')`,
		`INSERT INTO cost_periods (id, source, period, charges, import_id) VALUES (7, 'AWS:1', '2024-09', 3, 1)`,
		`INSERT INTO cost_daily VALUES (7, '2024-09-02', 'AWS', '1', 'EC2', 'eu', 'Usage', 'USD', 'a', 'web', 'prod', 'z', 1.5, 1.0, 2.0)`,
		`INSERT INTO cost_monthly VALUES (7, '2024-09', 'AWS', '1', 'EC2', 'eu', 'Usage', 'USD', 'a', 'web', 'prod', 'z', 1.5, 1.0, 2.0)`,
		`INSERT INTO cost_coverage VALUES (7, 'team', 'tag', 'USD', 3, 1.5, 1.0, 2.0)`,
	} {
		if _, err := old.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()
	db := mustOpen(t, path)
	defer db.Close()
	s := NewCostStore(db)
	sept, _ := cost.ParseMonth("2024-09")
	second := sept.First() + 1
	for name, q := range map[string]cost.Query{"days": {From: second, To: second + 1}, "months": {}} {
		var got []cost.Total
		if err := s.Totals(ctx, q, func(tt cost.Total) error { got = append(got, tt); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Billed != money.MustParse("1.5") || got[0].Effective != money.FromUnits(1) || got[0].List != money.FromUnits(2) {
			t.Errorf("totals over %s after the migration: %+v", name, got)
		}
	}
	cov, err := s.Coverage(ctx, sept.First(), sept.First()+1)
	if err != nil || len(cov) != 1 || cov[0].Charges != 3 || cov[0].Billed != money.MustParse("1.5") {
		t.Errorf("coverage after the migration: %+v, %v", cov, err)
	}
	if ok, _ := s.Imported(ctx, "aaa"); !ok {
		t.Error("the import record is gone")
	}
	var fk int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
		t.Errorf("foreign key check: %d problems, %v", fk, err)
	}
	// an Azure view replaces the full view, and deleting the old period
	// still takes its rows along
	r := cost.Row{Key: cost.Key{Day: sept.First(), Currency: "USD"}, Amounts: cost.Amounts{Effective: money.FromUnits(4)}}
	b := &cost.Batch{Files: []cost.FileInfo{{Name: "b.csv", SHA256: "bbb"}},
		Periods: []cost.Period{{Source: "AWS:1", Month: sept, View: cost.ViewAmortized, Charges: 1, Rows: []cost.Row{r}}}}
	if priors, err := s.ImportBatch(ctx, b, cost.Replace); err != nil || len(priors) != 1 || priors[0].Charges != 3 {
		t.Fatalf("replacing the migrated period: %+v, %v", priors, err)
	}
	var rows int
	db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM cost_daily WHERE period_id = 7`).Scan(&rows)
	if rows != 0 {
		t.Errorf("%d rows of the replaced period remain", rows)
	}
}

// TestExactMoneyMigration stores costs and alerts as REAL, with the
// schema before migration 0012, then opens the database: every amount is
// in its integer columns, the shortest decimal of its double rounded half
// to even to 12 decimals, and sums are exact from then on.
func TestExactMoneyMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "socle.db")
	old := openBefore(t, path, 12)
	for _, q := range []string{
		`INSERT INTO cost_imports (id, at, charges, files, periods) VALUES (1, 1, 3, '[{"name":"a.csv","sha256":"aaa"}]', '["AWS:1 2024-09"]')`,
		`INSERT INTO cost_periods (id, source, period, view, charges, import_id) VALUES (7, 'AWS:1', '2024-09', '', 3, 1)`,
		// 0.1 + 0.2 as float addition leaves it; 4.137e-7 as the FOCUS sample has it; a credit; 10¹² units
		`INSERT INTO cost_daily (period_id, day, provider, account, service, region, category, currency, team, app, env, zone, billed, effective, list)
			VALUES (7, '2024-09-02', 'AWS', '1', 'EC2', 'eu', 'Usage', 'USD', 'a', 'web', 'prod', 'z', 0.1 + 0.2, 0.0000004137, -12.25),
			       (7, '2024-09-03', 'AWS', '1', 'EC2', 'eu', 'Usage', 'USD', 'a', 'web', 'prod', 'z', 1000000000000.5, 0.0000000000004, 0)`,
		`INSERT INTO cost_monthly (period_id, month, provider, account, service, region, category, currency, team, app, env, zone, billed, effective, list)
			VALUES (7, '2024-09', 'AWS', '1', 'EC2', 'eu', 'Usage', 'USD', 'a', 'web', 'prod', 'z', 0.1 + 0.2 + 1000000000000.5, 0.0000004137, -12.25)`,
		`INSERT INTO cost_coverage (period_id, day, dim, method, currency, charges, billed, effective, list)
			VALUES (7, '2024-09-02', 'team', 'tag', 'USD', 3, 0.1 + 0.2, 0.0000004137, -12.25)`,
		`INSERT INTO cost_alerts (budget, month, threshold, kind, currency, amount, actual, forecast, notify, created_at)
			VALUES ('b', '2024-09', 80, 'actual', 'USD', 1000.1, 800.3, 1234.5678901234, '[]', 1)`,
	} {
		if _, err := old.SQL().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()
	db := mustOpen(t, path)
	defer db.Close()
	var units, pico int64
	if err := db.SQL().QueryRowContext(ctx, `SELECT billed_units, billed_pico FROM cost_daily WHERE day = '2024-09-03'`).Scan(&units, &pico); err != nil ||
		units != 1_000_000_000_000 || pico != 500_000_000_000 {
		t.Errorf("columns of 1000000000000.5: %d and %d, %v", units, pico, err)
	}
	var reals int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('cost_daily') WHERE type = 'REAL'`).Scan(&reals); err != nil || reals != 0 {
		t.Errorf("cost_daily has %d REAL columns left, %v", reals, err)
	}
	s := NewCostStore(db)
	sept, _ := cost.ParseMonth("2024-09")
	want := cost.Amounts{Billed: money.MustParse("1000000000000.8"), Effective: money.MustParse("0.0000004137"), List: money.MustParse("-12.25")}
	for name, q := range map[string]cost.Query{"days": {From: sept.First(), To: sept.End() - 1}, "months": {}} {
		var got []cost.Total
		if err := s.Totals(ctx, q, func(tt cost.Total) error { got = append(got, tt); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Amounts != want {
			t.Errorf("totals over %s after the migration: %+v, want %+v", name, got, want)
		}
	}
	cov, err := s.Coverage(ctx, 0, 0)
	if err != nil || len(cov) != 1 || cov[0].Billed != money.MustParse("0.3") || cov[0].List != money.MustParse("-12.25") {
		t.Errorf("coverage after the migration: %+v, %v", cov, err)
	}
	alerts, err := s.Alerts(ctx, sept, false)
	if err != nil || len(alerts) != 1 || alerts[0].Amount != money.MustParse("1000.1") || alerts[0].Actual != money.MustParse("800.3") ||
		alerts[0].Forecast != money.MustParse("1234.5678901234") {
		t.Errorf("alerts after the migration: %+v, %v", alerts, err)
	}
}

// TestDeletedFileRefusesWrites removes the database file and its -wal and
// -shm while the store is open, as an operator cleaning a directory might,
// and replaces it by another file: every write is refused with ErrFileGone
// (SQLite would take it into the unlinked file, lost at the next start),
// for the store and the cost store alike, while the file opened stays
// readable.
func TestDeletedFileRefusesWrites(t *testing.T) {
	ctx := t.Context()
	for _, how := range []string{"removed", "replaced"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "socle.db")
			db := mustOpen(t, path)
			defer db.Close()
			costs := NewCostStore(db)
			put := func(sha string) error {
				return db.PutRevision(ctx, store.Revision{SHA: sha, Author: "ann", Message: "m", Valid: true})
			}
			if err := put("aaaa"); err != nil || db.CheckFile() != nil {
				t.Fatalf("before: %v, %v", err, db.CheckFile())
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil {
					t.Fatal(err)
				}
			}
			if how == "replaced" {
				other := mustOpen(t, filepath.Join(dir, "other.db"))
				other.Close()
				if err := os.Rename(filepath.Join(dir, "other.db"), path); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.CheckFile(); !errors.Is(err, ErrFileGone) {
				t.Errorf("CheckFile: %v, want ErrFileGone", err)
			}
			if err := put("bbbb"); !errors.Is(err, ErrFileGone) {
				t.Errorf("a write: %v, want ErrFileGone", err)
			}
			if _, err := costs.Imports(ctx, 1); err != nil {
				t.Errorf("a read of the cost store: %v", err)
			}
			if err := costs.write(ctx, func(*sql.Tx) error { return nil }); !errors.Is(err, ErrFileGone) {
				t.Errorf("a write of the cost store: %v, want ErrFileGone", err)
			}
			if _, err := db.Revision(ctx, "aaaa"); err != nil {
				t.Errorf("reading what the open file holds: %v", err)
			}
			if _, err := db.Revision(ctx, "bbbb"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the refused write is there: %v", err)
			}
			// A read that needs a new connection (the pool keeps none idle
			// here; under load it opens more) is refused too, rather than
			// creating an empty database at the path and failing there
			// with "no such table" (TestDeletedDatabaseMakesUnready failed
			// so under load).
			db.SQL().SetMaxIdleConns(0)
			if _, err := db.Revision(ctx, "aaaa"); !errors.Is(err, ErrFileGone) {
				t.Errorf("a read on a new connection: %v, want ErrFileGone", err)
			}
			if how == "removed" {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a new connection created %s: %v", path, err)
				}
			}
		})
	}
}

// BenchmarkCheckFile is what checking the database file's identity costs,
// twice per write: a stat.
func BenchmarkCheckFile(b *testing.B) {
	db := mustOpen(b, filepath.Join(b.TempDir(), "socle.db"))
	defer db.Close()
	for b.Loop() {
		if err := db.CheckFile(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStampsWithItsClock: what the store stamps (a release's start and
// end, its audit records, events) is socle's clock's time, not the
// machine's: a soak measured from a release's end agrees with the clock
// that checks it, when a test moves that clock.
func TestStampsWithItsClock(t *testing.T) {
	ctx := t.Context()
	db := mustOpen(t, filepath.Join(t.TempDir(), "socle.db"))
	defer db.Close()
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	c := clock.NewFake(at)
	db.Clock = c
	r, err := db.BeginRelease(ctx, store.Release{App: "web", Env: "dev", Revision: "r1", Artifact: "sha256:a", Trigger: store.TriggerSync}, &store.AuditRecord{Actor: "socle", Action: "release.started"})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if err := db.FinishRelease(ctx, r.ID, store.Succeeded, "", &store.AuditRecord{Actor: "socle", Action: "release.succeeded"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendEvent(ctx, store.Event{Kind: "deploy", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Release(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(at) || !got.FinishedAt.Equal(at.Add(time.Hour)) {
		t.Errorf("release from %s to %s, want from %s to %s", got.StartedAt, got.FinishedAt, at, at.Add(time.Hour))
	}
	recs, err := db.AuditRecords(ctx, 0, 10)
	if err != nil || len(recs) != 2 || !recs[0].At.Equal(at) || !recs[1].At.Equal(at.Add(time.Hour)) {
		t.Errorf("audit records %+v (%v), want stamped at %s and an hour later", recs, err, at)
	}
	evs, err := db.Events(ctx, store.EventFilter{Limit: 10})
	if err != nil || len(evs) != 1 || !evs[0].Time.Equal(at.Add(time.Hour)) {
		t.Errorf("events %+v (%v), want one at %s", evs, err, at.Add(time.Hour))
	}
	// A unit's state, as its operation and as its status.
	if err := db.PutUnitState(ctx, store.UnitState{Kind: "app", Name: "web", Env: "dev"}); err != nil {
		t.Fatal(err)
	}
	if us, err := db.UnitState(ctx, "app", "web", "dev"); err != nil || !us.UpdatedAt.Equal(at.Add(time.Hour)) {
		t.Errorf("unit state %+v (%v), want updated at %s", us, err, at.Add(time.Hour))
	}
	c.Advance(time.Hour)
	if err := db.PutUnitStatuses(ctx, []store.UnitState{{Kind: "app", Name: "web", Env: "dev", Status: json.RawMessage(`{"phase":"Synced"}`)}}); err != nil {
		t.Fatal(err)
	}
	if us, err := db.UnitState(ctx, "app", "web", "dev"); err != nil || !us.UpdatedAt.Equal(at.Add(2*time.Hour)) {
		t.Errorf("unit status %+v (%v), want updated at %s", us, err, at.Add(2*time.Hour))
	}
}
