package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const pauseColumns = `app, env, message, retry_after, paused_by, paused_at`

func scanPause(s scanner) (store.Pause, error) {
	var p store.Pause
	var retry int64
	err := s.Scan(&p.App, &p.Env, &p.Message, &retry, &p.By, &p.At)
	p.RetryAfter, p.At = time.Duration(retry)*time.Second, p.At.UTC()
	return p, err
}

// SetPause implements store.Store.
func (db *DB) SetPause(ctx context.Context, p store.Pause, rec *store.AuditRecord) (store.Pause, error) {
	err := contract.CheckPause(p)
	if err == nil {
		err = contract.CheckAuditOf(rec)
	}
	if err != nil {
		return store.Pause{}, fmt.Errorf("pausing: %w", err)
	}
	now := db.now()
	p.At = contract.TimeOr(p.At, now)
	var out store.Pause
	err = db.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO pauses (`+pauseColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (env, app) DO UPDATE SET message = excluded.message, retry_after = excluded.retry_after,
				paused_by = excluded.paused_by, paused_at = excluded.paused_at`,
			p.App, p.Env, p.Message, int64(p.RetryAfter/time.Second), p.By, p.At)
		if err != nil {
			return err
		}
		if out, err = queryOne(ctx, tx, scanPause, `SELECT `+pauseColumns+` FROM pauses WHERE env = $1 AND app = $2`, p.Env, p.App); err != nil {
			return err
		}
		return appendAuditOf(ctx, tx, rec, p.App, p.Env, "", nil, now)
	})
	if err != nil {
		return store.Pause{}, fmt.Errorf("pausing %s.%s: %w", p.App, p.Env, err)
	}
	return out, nil
}

// DeletePause implements store.Store.
func (db *DB) DeletePause(ctx context.Context, app, env string, rec *store.AuditRecord) error {
	if err := contract.CheckAuditOf(rec); err != nil {
		return fmt.Errorf("resuming: %w", err)
	}
	now := db.now()
	err := db.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM pauses WHERE env = $1 AND app = $2`, env, app)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("no pause: %w", store.ErrNotFound)
		}
		return appendAuditOf(ctx, tx, rec, app, env, "", nil, now)
	})
	if err != nil {
		return fmt.Errorf("resuming %s.%s: %w", app, env, err)
	}
	return nil
}

// Pauses implements store.Store.
func (db *DB) Pauses(ctx context.Context) ([]store.Pause, error) {
	ps, err := queryAll(ctx, db.pool, scanPause, `SELECT `+pauseColumns+` FROM pauses ORDER BY env, app`)
	if err != nil {
		return nil, fmt.Errorf("listing pauses: %w", err)
	}
	return ps, nil
}
