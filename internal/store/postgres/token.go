package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const tokenColumns = `id, owner, hash, description, created_by, created_at, expires_at, last_used, revoked_at`

func scanToken(s scanner) (store.Token, error) {
	var t store.Token
	var expires, used, revoked *time.Time
	err := s.Scan(&t.ID, &t.User, &t.Hash, &t.Description, &t.CreatedBy, &t.CreatedAt, &expires, &used, &revoked)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt = t.CreatedAt.UTC(), fromNull(expires), fromNull(used), fromNull(revoked)
	return t, err
}

// CreateToken implements store.Store.
func (db *DB) CreateToken(ctx context.Context, t store.Token, rec *store.AuditRecord) (store.Token, error) {
	err := contract.CheckToken(t)
	if err == nil {
		err = contract.CheckAuditOf(rec)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("creating token: %w", err)
	}
	now := db.now()
	t.CreatedAt = contract.TimeOr(t.CreatedAt, now)
	var out store.Token
	err = db.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tokens (id, owner, hash, description, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			t.ID, t.User, t.Hash, t.Description, t.CreatedBy, t.CreatedAt, nullTime(t.ExpiresAt))
		if isUnique(err) {
			return fmt.Errorf("%w: a token with ID %s exists", store.ErrConflict, t.ID)
		}
		if err != nil {
			return err
		}
		if out, err = queryOne(ctx, tx, scanToken, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, t.ID); err != nil {
			return err
		}
		return appendAuditOf(ctx, tx, rec, "", "", "", nil, now)
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("creating token of %s: %w", t.User, err)
	}
	return out, nil
}

// Token implements store.Store.
func (db *DB) Token(ctx context.Context, id string) (store.Token, error) {
	t, err := queryOne(ctx, db.pool, scanToken, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id)
	if err != nil {
		return store.Token{}, fmt.Errorf("token %s: %w", id, err)
	}
	return t, nil
}

// Tokens implements store.Store.
func (db *DB) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	ts, err := queryAll(ctx, db.pool, scanToken, `SELECT `+tokenColumns+` FROM tokens
		WHERE $1 = '' OR owner = $1 ORDER BY created_at, id`, user)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken implements store.Store.
func (db *DB) RevokeToken(ctx context.Context, id string, rec *store.AuditRecord) (store.Token, error) {
	if err := contract.CheckAuditOf(rec); err != nil {
		return store.Token{}, fmt.Errorf("revoking token %s: %w", id, err)
	}
	now := db.now()
	var out store.Token
	err := db.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, ts(now), id)
		if err != nil {
			return err
		}
		if out, err = queryOne(ctx, tx, scanToken, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id); err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return appendAuditOf(ctx, tx, rec, "", "", "", nil, now)
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("revoking token %s: %w", id, err)
	}
	return out, nil
}

// TouchToken implements store.Store.
func (db *DB) TouchToken(ctx context.Context, id string, at time.Time) error {
	err := db.exec(ctx, `UPDATE tokens SET last_used = $1 WHERE id = $2 AND (last_used IS NULL OR last_used < $1)`, ts(at), id)
	if err != nil {
		return fmt.Errorf("touching token %s: %w", id, err)
	}
	return nil
}
