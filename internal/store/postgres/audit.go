package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

// AppendAudit implements store.Store.
func (db *DB) AppendAudit(ctx context.Context, rec store.AuditRecord) (store.AuditRecord, error) {
	if err := contract.CheckAudit(rec); err != nil {
		return rec, fmt.Errorf("appending audit record: %w", err)
	}
	var out store.AuditRecord
	err := db.write(ctx, func(tx pgx.Tx) (err error) {
		out, err = appendAudit(ctx, tx, rec, db.now())
		return err
	})
	if err != nil {
		return rec, fmt.Errorf("appending audit record %s: %w", rec.Action, err)
	}
	return out, nil
}

// appendAudit seals rec after the last record and appends it in tx. It
// takes the audit lock first, held until tx ends: the last record it then
// reads is the last committed, and no other writer, of this process or
// another, appends until tx has committed its own.
func appendAudit(ctx context.Context, tx pgx.Tx, rec store.AuditRecord, now time.Time) (store.AuditRecord, error) {
	if err := lock(ctx, tx, auditLock); err != nil {
		return rec, err
	}
	var seq int64
	hash := audit.Genesis
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return rec, err
	}
	rec.At = contract.TimeOr(rec.At, now)
	if rec, err = audit.Seal(rec, seq, hash); err != nil {
		return rec, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit (seq, at, actor, action, app, env, revision, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		rec.Seq, rec.At, rec.Actor, rec.Action, rec.App, rec.Env, rec.Revision, jsonArg(rec.Detail), rec.PrevHash, rec.Hash)
	return rec, err
}

// appendAuditOf appends rec, if not nil, completed with what it is about
// (see contract.AuditOf), in tx.
func appendAuditOf(ctx context.Context, tx pgx.Tx, rec *store.AuditRecord, app, env, revision string, keys map[string]int64, now time.Time) error {
	if rec == nil {
		return nil
	}
	r, err := contract.AuditOf(*rec, app, env, revision, keys)
	if err != nil {
		return err
	}
	if _, err := appendAudit(ctx, tx, r, now); err != nil {
		return fmt.Errorf("appending audit record %s: %w", r.Action, err)
	}
	return nil
}

// AuditRecords implements store.Store.
func (db *DB) AuditRecords(ctx context.Context, afterSeq int64, limit int) ([]store.AuditRecord, error) {
	n, err := contract.Limit(limit)
	if err != nil {
		return nil, fmt.Errorf("listing audit records: %w", err)
	}
	rs, err := queryAll(ctx, db.pool, func(s scanner) (store.AuditRecord, error) {
		var r store.AuditRecord
		var detail *string
		err := s.Scan(&r.Seq, &r.At, &r.Actor, &r.Action, &r.App, &r.Env, &r.Revision, &detail, &r.PrevHash, &r.Hash)
		r.At = r.At.UTC()
		if detail != nil {
			r.Detail = []byte(*detail)
		}
		return r, err
	}, `SELECT seq, at, actor, action, app, env, revision, detail, prev_hash, hash FROM audit
		WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, n)
	if err != nil {
		return nil, fmt.Errorf("listing audit records: %w", err)
	}
	return rs, nil
}
