package wiring

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/postgres"
	"github.com/socle-dev/socle/internal/store/sealed"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// DBFile is the database's name inside a data directory.
const DBFile = "socle.db"

// Stores are the stores kept in one database.
type Stores struct {
	// Store is socle's record. Opened by OpenData, its secret variables
	// are sealed at rest with the data directory's key.
	Store store.Store
	// Costs holds the imported billing data.
	Costs cost.Store
	// check and close are those of the database: SQLite's file check, or
	// PostgreSQL's ping.
	check func() error
	close func() error
	watch store.EventWatcher
	// pg is the PostgreSQL database, nil for SQLite; secret seals the
	// fenced views of it.
	pg     *postgres.DB
	secret []byte
}

// Shared reports whether several socle processes may share the database
// (PostgreSQL): their jobs then run under the database's leases.
func (s *Stores) Shared() bool { return s.pg != nil }

// Leaser returns the leases of a shared database, each lasting ttl
// without renewal (0: the leaser's default); nil for SQLite, whose one
// process holds its data directory (see Claim).
func (s *Stores) Leaser(ttl time.Duration) *postgres.Leaser {
	if s.pg == nil {
		return nil
	}
	return &postgres.Leaser{DB: s.pg, TTL: ttl}
}

// Fenced returns a view of Store whose every write is refused, with an
// error wrapping lease.ErrFenced, unless the lease of scope is still held
// with the fencing token given (see postgres.DB.Fenced); Store itself for
// SQLite, whose writes come from one process.
func (s *Stores) Fenced(scope string, token uint64) store.Store {
	if s.pg == nil {
		return s.Store
	}
	f := store.Store(s.pg.Fenced(scope, token))
	if s.secret != nil {
		// The secret was accepted by Wrap when the store was opened.
		f, _ = sealed.Wrap(f, s.secret)
	}
	return f
}

// Refused counts the writes the fencing check refused (0 for SQLite).
func (s *Stores) Refused() int64 {
	if s.pg == nil {
		return 0
	}
	return s.pg.Refused()
}

// Leases lists the leases of a shared database, nil for SQLite.
func (s *Stores) Leases(ctx context.Context) ([]postgres.LeaseRow, error) {
	if s.pg == nil {
		return nil, nil
	}
	return s.pg.Leases(ctx)
}

// WatchEvents calls wake whenever events were appended to the database,
// by this process or, for PostgreSQL, by any (see store.EventWatcher).
func (s *Stores) WatchEvents(ctx context.Context, wake func()) error {
	return s.watch.WatchEvents(ctx, wake)
}

// ErrStoreUnreachable is the error, wrapped, of Check when the database
// server does not answer.
var ErrStoreUnreachable = errors.New("store unreachable")

// UnreadyReason is the machine-readable reason of an error of Check:
// store_gone (the SQLite file was removed or replaced), schema_behind (the
// PostgreSQL database lacks a migration this socle needs),
// store_unreachable (the PostgreSQL server does not answer, or anything
// else).
func UnreadyReason(err error) string {
	switch {
	case errors.Is(err, sqlite.ErrFileGone):
		return "store_gone"
	case errors.Is(err, postgres.ErrSchemaBehind):
		return "schema_behind"
	}
	return "store_unreachable"
}

// Check reports why the database can no longer be written safely (nil: it
// can): a SQLite file removed or replaced since it was opened, a
// PostgreSQL server that does not answer or whose schema lacks a
// migration this socle needs (see UnreadyReason).
func (s *Stores) Check() error { return s.check() }

// Close closes the database.
func (s *Stores) Close() error { return s.close() }

// OpenDB opens the database at path, creating it if needed, stamping what
// it records with c's time (the system's when nil). Its secrets are not
// sealed: for the commands that read costs or tokens.
func OpenDB(ctx context.Context, path string, c clock.Clock) (*Stores, error) {
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	db.Clock = clock.Or(c)
	return &Stores{Store: db, Costs: sqlite.NewCostStore(db), check: db.CheckFile, close: db.Close, watch: db}, nil
}

// IsPostgres reports whether a --store value names a PostgreSQL database
// (a postgres:// or postgresql:// URL) rather than being empty: the SQLite
// file of the data directory.
func IsPostgres(storeURL string) bool {
	return strings.HasPrefix(storeURL, "postgres://") || strings.HasPrefix(storeURL, "postgresql://")
}

// OpenPostgres opens the PostgreSQL database at url, migrating it,
// stamping what it records with c's time. Its secrets are not sealed.
func OpenPostgres(ctx context.Context, url string, c clock.Clock) (*Stores, error) {
	db, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	db.Clock = clock.Or(c)
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			return fmt.Errorf("%w: the PostgreSQL store does not answer: %w", ErrStoreUnreachable, err)
		}
		return db.CheckSchema(ctx)
	}
	return &Stores{Store: db, Costs: postgres.NewCostStore(db), check: ping, close: db.Close, watch: db, pg: db}, nil
}

// OpenData opens the stores of a data directory as socle up does, its
// secrets sealed with the directory's secret (made on first use), which it
// returns too. The database is storeURL, a PostgreSQL URL (see IsPostgres),
// or, when it is empty, the SQLite file of the data directory; any other
// value is refused.
func OpenData(ctx context.Context, dir, storeURL string, c clock.Clock) (*Stores, []byte, error) {
	var st *Stores
	var err error
	switch {
	case storeURL == "":
		st, err = OpenDB(ctx, filepath.Join(dir, DBFile), c)
	case IsPostgres(storeURL):
		st, err = OpenPostgres(ctx, storeURL, c)
	default:
		return nil, nil, fmt.Errorf("--store %q: want a postgres:// URL, or nothing for the data directory's SQLite file", redactURL(storeURL))
	}
	if err != nil {
		return nil, nil, err
	}
	secret, err := DataSecret(dir)
	if err == nil {
		var sealedStore store.Store
		if sealedStore, err = sealed.Wrap(st.Store, secret); err == nil {
			st.Store, st.secret = sealedStore, secret
			return st, secret, nil
		}
	}
	st.Close()
	return nil, nil, err
}

// redactURL hides the password of a URL that may hold one.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "…"
}

// DataSecret returns a data directory's secret, created on first use; it
// derives credentials socle hands to apps, and never leaves the machine.
func DataSecret(dir string) ([]byte, error) {
	p := filepath.Join(dir, "secret.key")
	if b, err := os.ReadFile(p); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// claimGrace is how long Claim tries a held data directory again.
const claimGrace = 2 * time.Second

// Claim makes this process the one socle of a data directory, or says which
// process is: two would run every app twice and write the same store. With
// SQLite it is the platform lease of the directory (a file lock, which a
// crash releases), held for the process's life and handed to every job by
// the Leaser it returns; release gives it up, last. With a store shared
// by several processes (PostgreSQL), the directory stays this process's
// own (its git mirror, its proxy, its replicas) but its jobs run under
// the store's leases instead (Stores.Leaser).
//
// A lock that is held is tried again for a moment (claimGrace) before
// socle says so: a process forked by the socle that just stopped (or by
// this one, in tests) holds a copy of the lock's file until it executes
// its program, which closes it.
func Claim(ctx context.Context, dir string, me lease.Holder) (jobs lease.Leaser, release func(), err error) {
	files := &lease.File{Dir: dir}
	le, err := files.TryAcquire(ctx, lease.Platform, me)
	for deadline := time.Now().Add(claimGrace); errors.Is(err, lease.ErrHeld) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		le, err = files.TryAcquire(ctx, lease.Platform, me)
	}
	var held *lease.HeldError
	if errors.As(err, &held) {
		return nil, nil, fmt.Errorf("the data directory %s is in use by another socle (%s): stop it, or give this one a data directory of its own (--data)", dir, held.Holder)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("taking the data directory's lease: %w", err)
	}
	return lease.Holding(le), func() { le.Release() }, nil
}
