package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/lease"
)

// Leases are rows of the leases table, one per scope, with a holder, an
// expiry and a fencing epoch, rather than advisory locks held on a pinned
// connection. A session lock lives exactly as long as one TCP connection:
// a holder paused (a long GC, a frozen VM) keeps its connection and so its
// lock, and the scope waits on it for as long as TCP keepalive takes;
// a connection dropped by a network blip or a pooler frees the lock while
// the holder, writing through the other connections of its pool, still
// believes it holds it, and nothing in those writes tells them apart from
// the new holder's. A row expires by the database's clock after TTL
// whatever the holder does, so a paused or dead holder is replaced within
// TTL; its epoch grows at each takeover and is what a fenced write checks
// in its own transaction (see DB.Fenced); it works through any pooler; and
// it says who holds what to an operator.
var _ lease.Leaser = (*Leaser)(nil)

// Leaser hands out the leases of the DB's database.
type Leaser struct {
	DB *DB
	// TTL is how long a lease lasts without renewal; default 15s. A
	// paused or dead holder's scope is taken over within TTL.
	TTL time.Duration
	// Renew is how often a holder renews, and how often Acquire tries
	// again; default TTL/3.
	Renew time.Duration
}

func (l *Leaser) ttl() time.Duration {
	if l.TTL > 0 {
		return l.TTL
	}
	return 15 * time.Second
}

func (l *Leaser) renew() time.Duration {
	if l.Renew > 0 {
		return l.Renew
	}
	return l.ttl() / 3
}

// TryAcquire takes scope if no one holds it or its lease has expired, with
// the next epoch, and returns a *lease.HeldError naming the holder
// otherwise.
func (l *Leaser) TryAcquire(ctx context.Context, scope string, me lease.Holder) (lease.Lease, error) {
	if scope == "" {
		return nil, errors.New("lease without a scope")
	}
	me.Since = time.Now().UTC()
	holder, err := json.Marshal(me)
	if err != nil {
		return nil, err
	}
	var epoch int64
	sent := time.Now() // the lease runs from no earlier than this
	err = l.DB.pool.QueryRow(ctx, `
		INSERT INTO leases AS l (scope, holder, epoch, acquired_at, expires_at)
		VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (scope) DO UPDATE SET holder = excluded.holder, epoch = l.epoch + 1,
			acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
		WHERE l.expires_at <= clock_timestamp()
		RETURNING epoch`, scope, string(holder), l.ttl().Microseconds()).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		var held lease.Holder
		var raw []byte
		if err := l.DB.pool.QueryRow(ctx, `SELECT holder FROM leases WHERE scope = $1`, scope).Scan(&raw); err != nil {
			return nil, fmt.Errorf("reading the holder of lease %s: %w", scope, err)
		}
		_ = json.Unmarshal(raw, &held) // a holder that does not parse is named as none
		return nil, &lease.HeldError{Scope: scope, Holder: held, Where: "the leases table"}
	}
	if err != nil {
		return nil, fmt.Errorf("taking lease %s: %w", scope, err)
	}
	le := &pgLease{l: l, scope: scope, epoch: epoch, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go le.keep(sent)
	return le, nil
}

// Acquire waits until this process holds scope, trying again every Renew.
func (l *Leaser) Acquire(ctx context.Context, scope string, me lease.Holder) (lease.Lease, error) {
	tick := time.NewTicker(l.renew())
	defer tick.Stop()
	for {
		le, err := l.TryAcquire(ctx, scope, me)
		if !errors.Is(err, lease.ErrHeld) {
			return le, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// pgLease is a held row of the leases table.
type pgLease struct {
	l     *Leaser
	scope string
	epoch int64
	lost  chan struct{}
	stop  chan struct{} // closed by Release
	done  chan struct{} // closed when keep returns
	once  sync.Once
}

func (le *pgLease) Scope() string         { return le.scope }
func (le *pgLease) Token() uint64         { return uint64(le.epoch) }
func (le *pgLease) Lost() <-chan struct{} { return le.lost }

// keep renews the lease every Renew until Release, or until it is lost:
// the database finds it expired or taken over, or no renewal succeeded for
// TTL since the last one was sent (the database may then have let it
// expire; the holder must assume it did).
func (le *pgLease) keep(sent time.Time) {
	defer close(le.done)
	tick := time.NewTicker(le.l.renew())
	defer tick.Stop()
	for {
		select {
		case <-le.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), le.l.ttl()-now.Sub(sent))
		tag, err := le.l.DB.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp() + $3 * interval '1 microsecond'
			WHERE scope = $1 AND epoch = $2 AND expires_at > clock_timestamp()`, le.scope, le.epoch, le.l.ttl().Microseconds())
		cancel()
		switch {
		case err == nil && tag.RowsAffected() == 1:
			sent = now
		case err == nil || time.Since(sent) >= le.l.ttl():
			close(le.lost)
			return
		}
	}
}

// Release gives the scope up at once: its row expires now, so that the
// next TryAcquire takes it without waiting for the TTL.
func (le *pgLease) Release() error {
	var err error
	le.once.Do(func() {
		close(le.stop)
		<-le.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = le.l.DB.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp()
			WHERE scope = $1 AND epoch = $2 AND expires_at > clock_timestamp()`, le.scope, le.epoch)
		if err != nil {
			err = fmt.Errorf("releasing lease %s: %w", le.scope, err)
		}
	})
	return err
}

// A fence is the lease a DB's writes are made under.
type fence struct {
	scope string
	epoch int64
}

// Fenced returns a view of db whose every write is made under the lease
// of scope with the given epoch (a lease.Lease's Token): each write's
// transaction first checks, holding the lease's row (FOR SHARE, so that a
// takeover waits for the write to commit), that the scope's epoch is
// still epoch and its lease has not expired, and is refused with an error
// wrapping lease.ErrFenced otherwise. A holder paused past its lease's
// expiry therefore never writes after its successor took over, nor after
// its lease expired. Refused writes are counted (see Refused).
func (db *DB) Fenced(scope string, epoch uint64) *DB {
	f := *db
	f.fence = &fence{scope: scope, epoch: int64(epoch)}
	return &f
}

// Refused returns how many writes the fencing check refused, on this DB
// and every view Fenced made of it.
func (db *DB) Refused() int64 { return db.refused.Load() }

// checkFence refuses tx's writes unless db's lease is current.
func (db *DB) checkFence(ctx context.Context, tx pgx.Tx) error {
	if db.fence == nil {
		return nil
	}
	var current bool
	err := tx.QueryRow(ctx, `SELECT epoch = $2 AND expires_at > clock_timestamp() FROM leases WHERE scope = $1 FOR SHARE`,
		db.fence.scope, db.fence.epoch).Scan(&current)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if !current {
		db.refused.Add(1)
		return fmt.Errorf("%w: %s, epoch %d", lease.ErrFenced, db.fence.scope, db.fence.epoch)
	}
	return nil
}

// LeaseRow is a row of the leases table, as an operator reads it.
type LeaseRow struct {
	Scope   string
	Holder  lease.Holder
	Epoch   uint64
	Expires time.Time
	// Live: the lease has not expired, by the database's clock.
	Live bool
}

// Leases lists the leases of the database by scope, expired ones too.
func (db *DB) Leases(ctx context.Context) ([]LeaseRow, error) {
	rows, err := queryAll(ctx, db.pool, func(s scanner) (LeaseRow, error) {
		var r LeaseRow
		var raw []byte
		var epoch int64
		err := s.Scan(&r.Scope, &raw, &epoch, &r.Expires, &r.Live)
		r.Epoch, r.Expires = uint64(epoch), r.Expires.UTC()
		_ = json.Unmarshal(raw, &r.Holder) // a holder that does not parse is named as none
		return r, err
	}, `SELECT scope, holder, epoch, expires_at, expires_at > clock_timestamp() FROM leases ORDER BY scope`)
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	return rows, nil
}
