package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const releaseColumns = `id, app, env, revision, committed_at, artifact, config_hash, strategy, trigger_kind,
	author, status, reason, previous, started_at, finished_at, notes, emergency`

func scanRelease(s scanner) (store.Release, error) {
	var r store.Release
	var committed, finished *time.Time
	var previous *int64
	err := s.Scan(&r.ID, &r.App, &r.Env, &r.Revision, &committed, &r.Artifact, &r.ConfigHash, &r.Strategy, &r.Trigger,
		&r.Author, &r.Status, &r.Reason, &previous, &r.StartedAt, &finished, (*[]byte)(&r.Notes), &r.Emergency)
	r.CommittedAt, r.StartedAt, r.FinishedAt = fromNull(committed), r.StartedAt.UTC(), fromNull(finished)
	if previous != nil {
		r.Previous = *previous
	}
	return r, err
}

// unitLock takes, for the rest of tx, the advisory lock of the unit's
// releases (the two-integer key space, apart from the logs' locks):
// BeginRelease reads the unit's Progressing release and writes according to
// what it found, which two writers of the same unit must not do at once.
// Units whose names hash alike (or join alike: "a/b" "c" and "a" "b/c")
// share a lock, which costs only waiting.
func unitLock(ctx context.Context, tx pgx.Tx, app, env string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, releasesLockClass, app+"/"+env)
	return err
}

// releasesLockClass is the first key of the units' release locks ("sREL").
const releasesLockClass = 0x7352454c

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
	err = db.write(ctx, func(tx pgx.Tx) error {
		if err := unitLock(ctx, tx, r.App, r.Env); err != nil {
			return err
		}
		cur, err := queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases
			WHERE app = $1 AND env = $2 AND status = $3 FOR UPDATE`, r.App, r.Env, store.Progressing)
		switch {
		case err == nil && contract.SameTarget(cur, r):
			out = cur // resumed: nothing to record
			return nil
		case err == nil:
			// Superseded before the insert, for the unique index on
			// Progressing releases; the reason names the new release below.
			if _, err := tx.Exec(ctx, `UPDATE releases SET status = $1, finished_at = $2 WHERE id = $3`,
				store.Superseded, ts(now), cur.ID); err != nil {
				return fmt.Errorf("superseding release %d: %w", cur.ID, err)
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := completeRelease(ctx, tx, &r); err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO releases (app, env, revision, committed_at, artifact, config_hash,
				strategy, trigger_kind, author, status, reason, previous, started_at, notes, emergency)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12, $13, $14) RETURNING id`,
			r.App, r.Env, r.Revision, nullTime(r.CommittedAt), r.Artifact, r.ConfigHash, r.Strategy, r.Trigger,
			r.Author, store.Progressing, nullInt(r.Previous), contract.TimeOr(r.StartedAt, now), jsonArg(r.Notes), r.Emergency).Scan(&id)
		if err != nil {
			return err
		}
		if cur.ID != 0 {
			if _, err := tx.Exec(ctx, `UPDATE releases SET reason = $1 WHERE id = $2`,
				fmt.Sprintf("superseded by release %d", id), cur.ID); err != nil {
				return err
			}
		}
		if out, err = queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = $1`, id); err != nil {
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
func completeRelease(ctx context.Context, tx pgx.Tx, r *store.Release) error {
	if r.Previous == 0 {
		err := tx.QueryRow(ctx, `SELECT id FROM releases WHERE app = $1 AND env = $2 AND status = $3
			ORDER BY id DESC LIMIT 1`, r.App, r.Env, store.Succeeded).Scan(&r.Previous)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
	} else {
		prev, err := queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = $1`, r.Previous)
		if err != nil {
			return fmt.Errorf("previous release %d: %w", r.Previous, err)
		}
		if prev.Unit() != r.Unit() {
			return fmt.Errorf("previous release %d is a release of %s/%s", prev.ID, prev.App, prev.Env)
		}
	}
	if r.CommittedAt.IsZero() {
		var committed time.Time
		err := tx.QueryRow(ctx, `SELECT committed_at FROM revisions WHERE sha = $1`, r.Revision).Scan(&committed)
		switch {
		case err == nil:
			r.CommittedAt = committed.UTC() // the zero time if the revision's is unknown
		case !errors.Is(err, pgx.ErrNoRows):
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
	err = db.write(ctx, func(tx pgx.Tx) error {
		r, err := queryOne(ctx, tx, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = $1 FOR UPDATE`, id)
		switch {
		case err != nil:
			return err
		case r.Status == status:
			return nil // finished already, as asked
		case r.Status != store.Progressing:
			return fmt.Errorf("%w: it ended %s (%s)", store.ErrConflict, r.Status, r.Reason)
		}
		if _, err := tx.Exec(ctx, `UPDATE releases SET status = $1, reason = $2, finished_at = $3 WHERE id = $4`,
			status, reason, ts(now), id); err != nil {
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
	r, err := queryOne(ctx, db.pool, scanRelease, `SELECT `+releaseColumns+` FROM releases WHERE id = $1`, id)
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
	q := `SELECT ` + releaseColumns + ` FROM releases WHERE true`
	var args []any
	if f.Before > 0 {
		args = append(args, f.Before)
		q += ` AND id < $1`
	}
	for _, c := range []struct{ column, value string }{{"app", f.App}, {"env", f.Env}, {"status", string(f.Status)}} {
		if c.value != "" {
			args = append(args, c.value)
			q += ` AND ` + c.column + ` = $` + strconv.Itoa(len(args))
		}
	}
	args = append(args, n)
	rs, err := queryAll(ctx, db.pool, scanRelease, q+` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("listing releases: %w", err)
	}
	return rs, nil
}

// CurrentRelease implements store.Store.
func (db *DB) CurrentRelease(ctx context.Context, app, env string) (store.Release, error) {
	r, err := queryOne(ctx, db.pool, scanRelease, `SELECT `+releaseColumns+` FROM releases
		WHERE app = $1 AND env = $2 AND status = $3 ORDER BY id DESC LIMIT 1`, app, env, store.Succeeded)
	if err != nil {
		return r, fmt.Errorf("current release of %s/%s: %w", app, env, err)
	}
	return r, nil
}

// ProgressingReleases implements store.Store.
func (db *DB) ProgressingReleases(ctx context.Context) ([]store.Release, error) {
	rs, err := queryAll(ctx, db.pool, scanRelease, `SELECT `+releaseColumns+` FROM releases
		WHERE status = $1 ORDER BY id`, store.Progressing)
	if err != nil {
		return nil, fmt.Errorf("listing progressing releases: %w", err)
	}
	return rs, nil
}

const approvalColumns = `id, app, env, revision, artifact, approver, comment, at`

func scanApproval(s scanner) (store.Approval, error) {
	var a store.Approval
	err := s.Scan(&a.ID, &a.App, &a.Env, &a.Revision, &a.Artifact, &a.User, &a.Comment, &a.At)
	a.At = a.At.UTC()
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
	err = db.write(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO approvals (app, env, revision, artifact, approver, comment, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app, env, artifact, approver) DO NOTHING RETURNING id`,
			a.App, a.Env, a.Revision, a.Artifact, a.User, a.Comment, contract.TimeOr(a.At, now)).Scan(&id)
		added := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		out, err = queryOne(ctx, tx, scanApproval, `SELECT `+approvalColumns+` FROM approvals
			WHERE app = $1 AND env = $2 AND artifact = $3 AND approver = $4`, a.App, a.Env, a.Artifact, a.User)
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
	as, err := queryAll(ctx, db.pool, scanApproval, `SELECT `+approvalColumns+` FROM approvals
		WHERE app = $1 AND env = $2 AND artifact = $3 ORDER BY id`, app, env, artifact)
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
	rs, err := queryAll(ctx, db.pool, scanRelease, `SELECT `+releaseColumns+` FROM releases
		WHERE (finished_at >= $1 OR finished_at IS NULL)
		AND ($2 = '' OR env = $2) AND (cardinality($3::text[]) = 0 OR app = ANY ($3))`,
		ts(since), f.Env, append([]string{}, f.Apps...))
	if err != nil {
		return store.DORAFigures{}, fmt.Errorf("DORA figures: %w", err)
	}
	return contract.DORA(rs, since, until), nil
}
