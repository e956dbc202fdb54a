package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

// PutRevision implements store.Store.
func (db *DB) PutRevision(ctx context.Context, r store.Revision) error {
	if err := contract.CheckRevision(r); err != nil {
		return fmt.Errorf("putting revision: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO revisions (sha, author, email, committed_at, message, valid, problems, seen_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sha) DO UPDATE SET valid = excluded.valid, problems = excluded.problems`,
			r.SHA, r.Author, r.Email, micros(r.Time), r.Message, r.Valid, jsonArg(r.Problems),
			micros(contract.TimeOr(r.SeenAt, db.now())))
		return err
	})
	if err != nil {
		return fmt.Errorf("putting revision %s: %w", r.SHA, err)
	}
	return nil
}

const revisionColumns = `sha, author, email, committed_at, message, valid, problems, seen_at`

func scanRevision(s scanner) (store.Revision, error) {
	var r store.Revision
	var committed, seen int64
	err := s.Scan(&r.SHA, &r.Author, &r.Email, &committed, &r.Message, &r.Valid, (*[]byte)(&r.Problems), &seen)
	r.Time, r.SeenAt = fromMicros(committed), fromMicros(seen)
	return r, err
}

// Revision implements store.Store.
func (db *DB) Revision(ctx context.Context, sha string) (store.Revision, error) {
	r, err := queryOne(ctx, db.sql, scanRevision, `SELECT `+revisionColumns+` FROM revisions WHERE sha = ?`, sha)
	if err != nil {
		return r, fmt.Errorf("revision %s: %w", sha, err)
	}
	return r, nil
}

// Revisions implements store.Store.
func (db *DB) Revisions(ctx context.Context, limit int, before string) ([]store.Revision, error) {
	n, err := contract.Limit(limit)
	if err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	// Keyset pagination on (seen_at, seq): pages stay right while
	// revisions are added.
	var key struct{ seen, seq int64 }
	if before == "" {
		key.seen, key.seq = maxInt64, maxInt64
	} else {
		key, err = queryOne(ctx, db.sql, func(s scanner) (k struct{ seen, seq int64 }, err error) {
			return k, s.Scan(&k.seen, &k.seq)
		}, `SELECT seen_at, seq FROM revisions WHERE sha = ?`, before)
		if err != nil {
			return nil, fmt.Errorf("listing revisions before %s: %w", before, err)
		}
	}
	rs, err := queryAll(ctx, db.sql, scanRevision, `SELECT `+revisionColumns+` FROM revisions
		WHERE (seen_at, seq) < (?, ?) ORDER BY seen_at DESC, seq DESC LIMIT ?`, key.seen, key.seq, n)
	if err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	return rs, nil
}

const maxInt64 = 1<<63 - 1

// LastGoodRevision implements store.Store.
func (db *DB) LastGoodRevision(ctx context.Context) (store.Revision, error) {
	r, err := queryOne(ctx, db.sql, scanRevision, `SELECT `+revisionColumns+` FROM revisions
		WHERE valid = 1 ORDER BY seen_at DESC, seq DESC LIMIT 1`)
	if err != nil {
		return r, fmt.Errorf("last good revision: %w", err)
	}
	return r, nil
}

// ApplyDesired implements store.Store.
func (db *DB) ApplyDesired(ctx context.Context, revision string, set []store.Desired, remove []store.Unit, plan store.Plan, events []store.Event) (int64, error) {
	if err := contract.CheckApply(revision, set, remove, plan, events); err != nil {
		return 0, fmt.Errorf("applying desired state of revision %s: %w", revision, err)
	}
	now := db.now()
	var planID int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		var known bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM revisions WHERE sha = ?)`, revision).Scan(&known)
		if err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("revision: %w", store.ErrNotFound)
		}
		upsert, err := tx.PrepareContext(ctx, `
			INSERT INTO desired (app, env, revision, hash, spec, updated_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (app, env) DO UPDATE SET revision = excluded.revision, hash = excluded.hash,
				spec = excluded.spec, updated_at = excluded.updated_at`)
		if err != nil {
			return err
		}
		defer upsert.Close()
		for _, d := range set {
			// A nil Spec goes in as NULL, which the NOT NULL constraint rejects.
			if _, err := upsert.ExecContext(ctx, d.App, d.Env, revision, d.Hash, jsonArg(d.Spec), micros(now)); err != nil {
				return fmt.Errorf("setting unit %s/%s: %w", d.App, d.Env, err)
			}
		}
		del, err := tx.PrepareContext(ctx, `DELETE FROM desired WHERE app = ? AND env = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		for _, u := range remove {
			if _, err := del.ExecContext(ctx, u.App, u.Env); err != nil {
				return fmt.Errorf("removing unit %s/%s: %w", u.App, u.Env, err)
			}
		}
		err = tx.QueryRowContext(ctx, `
			INSERT INTO plans (revision, created_at, n_create, n_update, n_delete, n_unchanged, body)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			revision, micros(contract.TimeOr(plan.CreatedAt, now)),
			plan.Create, plan.Update, plan.Delete, plan.Unchanged, jsonArg(plan.Body)).Scan(&planID)
		if err != nil {
			return fmt.Errorf("recording plan: %w", err)
		}
		ins, err := tx.PrepareContext(ctx, insertEvent)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, e := range events {
			if e.Revision == "" {
				e.Revision = revision
			}
			if _, err := ins.ExecContext(ctx, eventArgs(e, now)...); err != nil {
				return fmt.Errorf("appending event %d (%s): %w", i, e.Kind, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("applying desired state of revision %s: %w", revision, err)
	}
	if len(events) > 0 {
		db.appended.Fire()
	}
	return planID, nil
}

const desiredColumns = `app, env, revision, hash, spec, updated_at`

func scanDesired(s scanner) (store.Desired, error) {
	var d store.Desired
	var updated int64
	err := s.Scan(&d.App, &d.Env, &d.Revision, &d.Hash, (*[]byte)(&d.Spec), &updated)
	d.UpdatedAt = fromMicros(updated)
	return d, err
}

// Desired implements store.Store.
func (db *DB) Desired(ctx context.Context) ([]store.Desired, error) {
	ds, err := queryAll(ctx, db.sql, scanDesired, `SELECT `+desiredColumns+` FROM desired ORDER BY app, env`)
	if err != nil {
		return nil, fmt.Errorf("listing desired state: %w", err)
	}
	return ds, nil
}

// DesiredUnit implements store.Store.
func (db *DB) DesiredUnit(ctx context.Context, u store.Unit) (store.Desired, error) {
	d, err := queryOne(ctx, db.sql, scanDesired, `SELECT `+desiredColumns+` FROM desired WHERE app = ? AND env = ?`, u.App, u.Env)
	if err != nil {
		return d, fmt.Errorf("desired state of %s/%s: %w", u.App, u.Env, err)
	}
	return d, nil
}

const planColumns = `id, revision, created_at, n_create, n_update, n_delete, n_unchanged`

func scanPlan(s scanner, more ...any) (store.Plan, error) {
	var p store.Plan
	var created int64
	err := s.Scan(append([]any{&p.ID, &p.Revision, &created, &p.Create, &p.Update, &p.Delete, &p.Unchanged}, more...)...)
	p.CreatedAt = fromMicros(created)
	return p, err
}

// Plan implements store.Store.
func (db *DB) Plan(ctx context.Context, id int64) (store.Plan, error) {
	p, err := queryOne(ctx, db.sql, func(s scanner) (store.Plan, error) {
		var body []byte
		p, err := scanPlan(s, &body)
		p.Body = body
		return p, err
	}, `SELECT `+planColumns+`, body FROM plans WHERE id = ?`, id)
	if err != nil {
		return p, fmt.Errorf("plan %d: %w", id, err)
	}
	return p, nil
}

// Plans implements store.Store.
func (db *DB) Plans(ctx context.Context, revision string, limit int) ([]store.Plan, error) {
	n, err := contract.Limit(limit)
	if err != nil {
		return nil, fmt.Errorf("listing plans: %w", err)
	}
	scan := func(s scanner) (store.Plan, error) { return scanPlan(s) }
	var ps []store.Plan
	if revision == "" {
		ps, err = queryAll(ctx, db.sql, scan, `SELECT `+planColumns+` FROM plans ORDER BY id DESC LIMIT ?`, n)
	} else {
		ps, err = queryAll(ctx, db.sql, scan, `SELECT `+planColumns+` FROM plans WHERE revision = ? ORDER BY id DESC LIMIT ?`, revision, n)
	}
	if err != nil {
		return nil, fmt.Errorf("listing plans: %w", err)
	}
	return ps, nil
}

const insertEvent = `INSERT INTO events (time, kind, app, env, revision, message, data)
	VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`

func eventArgs(e store.Event, now time.Time) []any {
	return []any{micros(contract.TimeOr(e.Time, now)), e.Kind, e.App, e.Env, e.Revision, e.Message, jsonArg(e.Data)}
}

// AppendEvent implements store.Store.
func (db *DB) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	if err := contract.CheckEvent(e); err != nil {
		return 0, fmt.Errorf("appending event: %w", err)
	}
	var id int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, insertEvent, eventArgs(e, db.now())...).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("appending event %s: %w", e.Kind, err)
	}
	db.appended.Fire()
	return id, nil
}

// Events implements store.Store.
func (db *DB) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	n, err := contract.Limit(f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	q := `SELECT id, time, kind, app, env, revision, message, data FROM events WHERE id > ?`
	args := []any{f.AfterID}
	for _, c := range []struct{ column, value string }{{"kind", f.Kind}, {"app", f.App}, {"env", f.Env}} {
		if c.value != "" {
			q += ` AND ` + c.column + ` = ?`
			args = append(args, c.value)
		}
	}
	es, err := queryAll(ctx, db.sql, func(s scanner) (store.Event, error) {
		var e store.Event
		var t int64
		err := s.Scan(&e.ID, &t, &e.Kind, &e.App, &e.Env, &e.Revision, &e.Message, (*[]byte)(&e.Data))
		e.Time = fromMicros(t)
		return e, err
	}, q+` ORDER BY id LIMIT ?`, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	return es, nil
}

// LastEventID implements store.Store.
func (db *DB) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the last event: %w", err)
	}
	return id, nil
}

// micros is how a time is kept: microseconds since the Unix epoch, UTC.
func micros(t time.Time) int64 { return contract.Time(t).UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// jsonArg passes a JSON document as TEXT, and an absent one as NULL.
func jsonArg(doc json.RawMessage) any {
	if len(doc) == 0 {
		return nil
	}
	return string(doc)
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryOne returns the first row of the query, or an error wrapping
// store.ErrNotFound if there is none.
func queryOne[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	all, err := queryAll(ctx, q, scan, query, args...)
	if err != nil || len(all) == 0 {
		var zero T
		if err == nil {
			err = store.ErrNotFound
		}
		return zero, err
	}
	return all[0], nil
}

func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, rows.Err()
}
