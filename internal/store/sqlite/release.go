package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const releaseColumns = `id, app, env, revision, committed_at, artifact, config_hash, strategy, trigger_kind,
	author, status, reason, previous, started_at, finished_at, notes, emergency`

func scanRelease(s scanner) (store.Release, error) {
	var r store.Release
	var committed, previous, finished sql.NullInt64
	var started int64
	err := s.Scan(&r.ID, &r.App, &r.Env, &r.Revision, &committed, &r.Artifact, &r.ConfigHash, &r.Strategy, &r.Trigger,
		&r.Author, &r.Status, &r.Reason, &previous, &started, &finished, (*[]byte)(&r.Notes), &r.Emergency)
	r.CommittedAt, r.StartedAt, r.FinishedAt = fromNullMicros(committed), fromMicros(started), fromNullMicros(finished)
	r.Previous = previous.Int64
	return r, err
}

// BeginRelease implements store.Store.
func (db *DB) BeginRelease(ctx context.Context, r store.Release, rec *store.AuditRecord) (store.Release, error) {
	err := contract.CheckRelease(r)
	if err == nil {
		err = contract.CheckAuditOf(rec)
	}
	if err != nil {
		return store.Release{}, fmt.Errorf("beginning release of %s/%s: %w", r.App, r.Env, err)
	}
	now := db.now()
	var out store.Release
	err = db.write(ctx, func(tx *sql.Tx) error {
		cur, err := queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases
			WHERE app = ? AND env = ? AND status = ?`, r.App, r.Env, store.Progressing)
		switch {
		case err == nil && contract.SameTarget(cur, r):
			out = cur // resumed: nothing to record
			return nil
		case err == nil:
			// Superseded before the insert, for the unique index on
			// Progressing releases; the reason names the new release below.
			if _, err := tx.ExecContext(ctx, `UPDATE releases SET status = ?, finished_at = ? WHERE id = ?`,
				store.Superseded, micros(now), cur.ID); err != nil {
				return fmt.Errorf("superseding release %d: %w", cur.ID, err)
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := completeRelease(ctx, tx, &r); err != nil {
			return err
		}
		var id int64
		err = tx.QueryRowContext(ctx, `INSERT INTO releases (app, env, revision, committed_at, artifact, config_hash,
				strategy, trigger_kind, author, status, reason, previous, started_at, notes, emergency)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?) RETURNING id`,
			r.App, r.Env, r.Revision, nullMicros(r.CommittedAt), r.Artifact, r.ConfigHash, r.Strategy, r.Trigger,
			r.Author, store.Progressing, nullInt(r.Previous), micros(contract.TimeOr(r.StartedAt, now)), jsonArg(r.Notes), r.Emergency).Scan(&id)
		if err != nil {
			return err
		}
		if cur.ID != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE releases SET reason = ? WHERE id = ?`,
				fmt.Sprintf("superseded by release %d", id), cur.ID); err != nil {
				return err
			}
		}
		if out, err = queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = ?`, id); err != nil {
			return err
		}
		return appendAuditOf(ctx, tx, rec, out.App, out.Env, out.Revision, map[string]int64{"release": id, "superseded": cur.ID}, now)
	})
	if err != nil {
		return store.Release{}, fmt.Errorf("beginning release of %s/%s: %w", r.App, r.Env, err)
	}
	return out, nil
}

// completeRelease sets the Previous and CommittedAt of r that the caller
// left zero, and checks a Previous that it set.
func completeRelease(ctx context.Context, tx *sql.Tx, r *store.Release) error {
	if r.Previous == 0 {
		err := tx.QueryRowContext(ctx, `SELECT id FROM releases WHERE app = ? AND env = ? AND status = ?
			ORDER BY id DESC LIMIT 1`, r.App, r.Env, store.Succeeded).Scan(&r.Previous)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	} else {
		prev, err := queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = ?`, r.Previous)
		if err != nil {
			return fmt.Errorf("previous release %d: %w", r.Previous, err)
		}
		if prev.Unit() != r.Unit() {
			return fmt.Errorf("previous release %d is a release of %s/%s", prev.ID, prev.App, prev.Env)
		}
	}
	if r.CommittedAt.IsZero() {
		var committed int64
		err := tx.QueryRowContext(ctx, `SELECT committed_at FROM revisions WHERE sha = ?`, r.Revision).Scan(&committed)
		switch {
		case err == nil:
			r.CommittedAt = fromMicros(committed) // the zero time if the revision's is unknown
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
	}
	return nil
}

// FinishRelease implements store.Store.
func (db *DB) FinishRelease(ctx context.Context, id int64, status store.ReleaseStatus, reason string, rec *store.AuditRecord) error {
	err := contract.CheckFinish(status)
	if err == nil {
		err = contract.CheckAuditOf(rec)
	}
	if err != nil {
		return fmt.Errorf("finishing release %d: %w", id, err)
	}
	now := db.now()
	err = db.write(ctx, func(tx *sql.Tx) error {
		r, err := queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = ?`, id)
		switch {
		case err != nil:
			return err
		case r.Status == status:
			return nil // finished already, as asked
		case r.Status != store.Progressing:
			return fmt.Errorf("%w: it ended %s (%s)", store.ErrConflict, r.Status, r.Reason)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE releases SET status = ?, reason = ?, finished_at = ? WHERE id = ?`,
			status, reason, micros(now), id); err != nil {
			return err
		}
		return appendAuditOf(ctx, tx, rec, r.App, r.Env, r.Revision, map[string]int64{"release": id}, now)
	})
	if err != nil {
		return fmt.Errorf("finishing release %d as %s: %w", id, status, err)
	}
	return nil
}

// Release implements store.Store.
func (db *DB) Release(ctx context.Context, id int64) (store.Release, error) {
	r, err := queryOne(ctx, db.sql, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = ?`, id)
	if err != nil {
		return r, fmt.Errorf("release %d: %w", id, err)
	}
	return r, nil
}

// Releases implements store.Store.
func (db *DB) Releases(ctx context.Context, f store.ReleaseFilter) ([]store.Release, error) {
	n, err := contract.Limit(f.Limit)
	if err != nil {
		return nil, fmt.Errorf("listing releases: %w", err)
	}
	before := f.Before
	if before <= 0 {
		before = maxInt64
	}
	q := `SELECT ` + releaseColumns + ` FROM releases WHERE id < ?`
	args := []any{before}
	for _, c := range []struct{ column, value string }{{"app", f.App}, {"env", f.Env}, {"status", string(f.Status)}} {
		if c.value != "" {
			q += ` AND ` + c.column + ` = ?`
			args = append(args, c.value)
		}
	}
	rs, err := queryAll(ctx, db.sql, scanRelease, q+` ORDER BY id DESC LIMIT ?`, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("listing releases: %w", err)
	}
	return rs, nil
}

// CurrentRelease implements store.Store.
func (db *DB) CurrentRelease(ctx context.Context, app, env string) (store.Release, error) {
	r, err := queryOne(ctx, db.sql, scanRelease, `SELECT `+releaseColumns+` FROM releases
		WHERE app = ? AND env = ? AND status = ? ORDER BY id DESC LIMIT 1`, app, env, store.Succeeded)
	if err != nil {
		return r, fmt.Errorf("current release of %s/%s: %w", app, env, err)
	}
	return r, nil
}

// ProgressingReleases implements store.Store.
func (db *DB) ProgressingReleases(ctx context.Context) ([]store.Release, error) {
	rs, err := queryAll(ctx, db.sql, scanRelease, `SELECT `+releaseColumns+` FROM releases
		WHERE status = ? ORDER BY id`, store.Progressing)
	if err != nil {
		return nil, fmt.Errorf("listing progressing releases: %w", err)
	}
	return rs, nil
}

const approvalColumns = `id, app, env, revision, artifact, approver, comment, at`

func scanApproval(s scanner) (store.Approval, error) {
	var a store.Approval
	var at int64
	err := s.Scan(&a.ID, &a.App, &a.Env, &a.Revision, &a.Artifact, &a.User, &a.Comment, &at)
	a.At = fromMicros(at)
	return a, err
}

// AddApproval implements store.Store.
func (db *DB) AddApproval(ctx context.Context, a store.Approval, rec *store.AuditRecord) (store.Approval, error) {
	err := contract.CheckApproval(a)
	if err == nil {
		err = contract.CheckAuditOf(rec)
	}
	if err != nil {
		return store.Approval{}, fmt.Errorf("adding approval: %w", err)
	}
	now := db.now()
	var out store.Approval
	err = db.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO approvals (app, env, revision, artifact, approver, comment, at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, env, artifact, approver) DO NOTHING RETURNING id`,
			a.App, a.Env, a.Revision, a.Artifact, a.User, a.Comment, micros(contract.TimeOr(a.At, now))).Scan(&id)
		added := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		out, err = queryOne(ctx, tx, scanApproval, `SELECT `+approvalColumns+` FROM approvals
			WHERE app = ? AND env = ? AND artifact = ? AND approver = ?`, a.App, a.Env, a.Artifact, a.User)
		if err != nil || !added {
			return err
		}
		return appendAuditOf(ctx, tx, rec, a.App, a.Env, a.Revision, nil, now)
	})
	if err != nil {
		return store.Approval{}, fmt.Errorf("adding approval of %s/%s %s by %s: %w", a.App, a.Env, a.Artifact, a.User, err)
	}
	return out, nil
}

// Approvals implements store.Store.
func (db *DB) Approvals(ctx context.Context, app, env, artifact string) ([]store.Approval, error) {
	as, err := queryAll(ctx, db.sql, scanApproval, `SELECT `+approvalColumns+` FROM approvals
		WHERE app = ? AND env = ? AND artifact = ? ORDER BY id`, app, env, artifact)
	if err != nil {
		return nil, fmt.Errorf("listing approvals of %s/%s %s: %w", app, env, artifact, err)
	}
	return as, nil
}

// DORA implements store.Store.
func (db *DB) DORA(ctx context.Context, f store.DORAFilter) (store.DORAFigures, error) {
	since, until, err := contract.DORAPeriod(f, db.now())
	if err != nil {
		return store.DORAFigures{}, fmt.Errorf("DORA figures: %w", err)
	}
	// Every release that may count, or that may end a failure that counts:
	// what ended in the period or after, and what has not ended.
	q := `SELECT ` + releaseColumns + ` FROM releases WHERE (finished_at >= ? OR finished_at IS NULL)`
	args := []any{micros(since)}
	if f.Env != "" {
		q += ` AND env = ?`
		args = append(args, f.Env)
	}
	if len(f.Apps) > 0 {
		q += ` AND app IN (?` + strings.Repeat(`, ?`, len(f.Apps)-1) + `)`
		for _, app := range f.Apps {
			args = append(args, app)
		}
	}
	rs, err := queryAll(ctx, db.sql, scanRelease, q, args...)
	if err != nil {
		return store.DORAFigures{}, fmt.Errorf("DORA figures: %w", err)
	}
	return contract.DORA(rs, since, until), nil
}

// nullMicros keeps a time, and the zero time as NULL.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

func fromNullMicros(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// nullInt keeps an ID, and 0 as NULL.
func nullInt(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
