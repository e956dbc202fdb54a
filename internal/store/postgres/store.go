package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

// PutRevision implements store.Store.
func (db *DB) PutRevision(ctx context.Context, r store.Revision) error {
	if err := contract.CheckRevision(r); err != nil {
		return fmt.Errorf("putting revision: %w", err)
	}
	err := db.exec(ctx, `
		INSERT INTO revisions (sha, author, email, committed_at, message, valid, problems, seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (sha) DO UPDATE SET valid = excluded.valid, problems = excluded.problems`,
		r.SHA, r.Author, r.Email, ts(r.Time), r.Message, r.Valid, jsonArg(r.Problems),
		contract.TimeOr(r.SeenAt, db.now()))
	if err != nil {
		return fmt.Errorf("putting revision %s: %w", r.SHA, err)
	}
	return nil
}

const revisionColumns = `sha, author, email, committed_at, message, valid, problems, seen_at`

func scanRevision(s scanner) (store.Revision, error) {
	var r store.Revision
	err := s.Scan(&r.SHA, &r.Author, &r.Email, &r.Time, &r.Message, &r.Valid, (*[]byte)(&r.Problems), &r.SeenAt)
	r.Time, r.SeenAt = r.Time.UTC(), r.SeenAt.UTC()
	return r, err
}

// Revision implements store.Store.
func (db *DB) Revision(ctx context.Context, sha string) (store.Revision, error) {
	r, err := queryOne(ctx, db.pool, scanRevision, `SELECT `+revisionColumns+` FROM revisions WHERE sha = $1`, sha)
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
	var rs []store.Revision
	if before == "" {
		rs, err = queryAll(ctx, db.pool, scanRevision, `SELECT `+revisionColumns+` FROM revisions
			ORDER BY seen_at DESC, seq DESC LIMIT $1`, n)
	} else {
		var found bool
		if err = db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revisions WHERE sha = $1)`, before).Scan(&found); err == nil && !found {
			return nil, fmt.Errorf("listing revisions before %s: %w", before, store.ErrNotFound)
		}
		if err == nil {
			rs, err = queryAll(ctx, db.pool, scanRevision, `SELECT `+revisionColumns+` FROM revisions
				WHERE (seen_at, seq) < (SELECT seen_at, seq FROM revisions WHERE sha = $1)
				ORDER BY seen_at DESC, seq DESC LIMIT $2`, before, n)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	return rs, nil
}

// LastGoodRevision implements store.Store.
func (db *DB) LastGoodRevision(ctx context.Context) (store.Revision, error) {
	r, err := queryOne(ctx, db.pool, scanRevision, `SELECT `+revisionColumns+` FROM revisions
		WHERE valid ORDER BY seen_at DESC, seq DESC LIMIT 1`)
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
	// Rows are written in key order, so that two writers of the same
	// units wait for one another instead of deadlocking.
	set = slices.SortedFunc(slices.Values(set), func(a, b store.Desired) int { return compareUnits(a.Unit(), b.Unit()) })
	remove = slices.SortedFunc(slices.Values(remove), compareUnits)
	now := db.now()
	var planID int64
	err := db.write(ctx, func(tx pgx.Tx) error {
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revisions WHERE sha = $1)`, revision).Scan(&known); err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("revision: %w", store.ErrNotFound)
		}
		for _, d := range set {
			// A nil Spec goes in as NULL, which the NOT NULL constraint rejects.
			if _, err := tx.Exec(ctx, `
				INSERT INTO desired (app, env, revision, hash, spec, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (app, env) DO UPDATE SET revision = excluded.revision, hash = excluded.hash,
					spec = excluded.spec, updated_at = excluded.updated_at`,
				d.App, d.Env, revision, d.Hash, jsonArg(d.Spec), ts(now)); err != nil {
				return fmt.Errorf("setting unit %s/%s: %w", d.App, d.Env, err)
			}
		}
		for _, u := range remove {
			if _, err := tx.Exec(ctx, `DELETE FROM desired WHERE app = $1 AND env = $2`, u.App, u.Env); err != nil {
				return fmt.Errorf("removing unit %s/%s: %w", u.App, u.Env, err)
			}
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO plans (revision, created_at, n_create, n_update, n_delete, n_unchanged, body)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			revision, contract.TimeOr(plan.CreatedAt, now),
			plan.Create, plan.Update, plan.Delete, plan.Unchanged, jsonArg(plan.Body)).Scan(&planID)
		if err != nil {
			return fmt.Errorf("recording plan: %w", err)
		}
		if len(events) == 0 {
			return nil
		}
		// Last, so that the events lock is held for as short a time as
		// can be: from here to the commit.
		if err := lockEvents(ctx, tx); err != nil {
			return err
		}
		for i, e := range events {
			if e.Revision == "" {
				e.Revision = revision
			}
			if _, err := tx.Exec(ctx, insertEvent, eventArgs(e, now)...); err != nil {
				return fmt.Errorf("appending event %d (%s): %w", i, e.Kind, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("applying desired state of revision %s: %w", revision, err)
	}
	return planID, nil
}

// compareUnits orders units bytewise by app, then environment.
func compareUnits(a, b store.Unit) int {
	return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Env, b.Env))
}

const desiredColumns = `app, env, revision, hash, spec, updated_at`

func scanDesired(s scanner) (store.Desired, error) {
	var d store.Desired
	err := s.Scan(&d.App, &d.Env, &d.Revision, &d.Hash, (*[]byte)(&d.Spec), &d.UpdatedAt)
	d.UpdatedAt = d.UpdatedAt.UTC()
	return d, err
}

// Desired implements store.Store.
func (db *DB) Desired(ctx context.Context) ([]store.Desired, error) {
	ds, err := queryAll(ctx, db.pool, scanDesired, `SELECT `+desiredColumns+` FROM desired ORDER BY app, env`)
	if err != nil {
		return nil, fmt.Errorf("listing desired state: %w", err)
	}
	return ds, nil
}

// DesiredUnit implements store.Store.
func (db *DB) DesiredUnit(ctx context.Context, u store.Unit) (store.Desired, error) {
	d, err := queryOne(ctx, db.pool, scanDesired, `SELECT `+desiredColumns+` FROM desired WHERE app = $1 AND env = $2`, u.App, u.Env)
	if err != nil {
		return d, fmt.Errorf("desired state of %s/%s: %w", u.App, u.Env, err)
	}
	return d, nil
}

const planColumns = `id, revision, created_at, n_create, n_update, n_delete, n_unchanged`

func scanPlan(s scanner, more ...any) (store.Plan, error) {
	var p store.Plan
	err := s.Scan(append([]any{&p.ID, &p.Revision, &p.CreatedAt, &p.Create, &p.Update, &p.Delete, &p.Unchanged}, more...)...)
	p.CreatedAt = p.CreatedAt.UTC()
	return p, err
}

// Plan implements store.Store.
func (db *DB) Plan(ctx context.Context, id int64) (store.Plan, error) {
	p, err := queryOne(ctx, db.pool, func(s scanner) (store.Plan, error) {
		var body []byte
		p, err := scanPlan(s, &body)
		p.Body = body
		return p, err
	}, `SELECT `+planColumns+`, body FROM plans WHERE id = $1`, id)
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
	ps, err := queryAll(ctx, db.pool, func(s scanner) (store.Plan, error) { return scanPlan(s) },
		`SELECT `+planColumns+` FROM plans WHERE $1 = '' OR revision = $1 ORDER BY id DESC LIMIT $2`, revision, n)
	if err != nil {
		return nil, fmt.Errorf("listing plans: %w", err)
	}
	return ps, nil
}

const insertEvent = `INSERT INTO events (time, kind, app, env, revision, message, data)
	VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`

func eventArgs(e store.Event, now time.Time) []any {
	return []any{contract.TimeOr(e.Time, now), e.Kind, e.App, e.Env, e.Revision, e.Message, jsonArg(e.Data)}
}

// AppendEvent implements store.Store. The event's ID is taken under the
// events lock, held until the commit: see the package documentation.
func (db *DB) AppendEvent(ctx context.Context, e store.Event) (int64, error) {
	if err := contract.CheckEvent(e); err != nil {
		return 0, fmt.Errorf("appending event: %w", err)
	}
	var id int64
	err := db.write(ctx, func(tx pgx.Tx) error {
		if err := lockEvents(ctx, tx); err != nil {
			return err
		}
		return tx.QueryRow(ctx, insertEvent, eventArgs(e, db.now())...).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("appending event %s: %w", e.Kind, err)
	}
	return id, nil
}

// Events implements store.Store.
func (db *DB) Events(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	n, err := contract.Limit(f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	q := `SELECT id, time, kind, app, env, revision, message, data FROM events WHERE id > $1`
	args := []any{f.AfterID}
	for _, c := range []struct{ column, value string }{{"kind", f.Kind}, {"app", f.App}, {"env", f.Env}} {
		if c.value != "" {
			args = append(args, c.value)
			q += ` AND ` + c.column + ` = $` + strconv.Itoa(len(args))
		}
	}
	args = append(args, n)
	es, err := queryAll(ctx, db.pool, func(s scanner) (store.Event, error) {
		var e store.Event
		err := s.Scan(&e.ID, &e.Time, &e.Kind, &e.App, &e.Env, &e.Revision, &e.Message, (*[]byte)(&e.Data))
		e.Time = e.Time.UTC()
		return e, err
	}, q+` ORDER BY id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	return es, nil
}

// LastEventID implements store.Store.
func (db *DB) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the last event: %w", err)
	}
	return id, nil
}
