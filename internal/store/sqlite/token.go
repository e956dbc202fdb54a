package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const tokenColumns = `id, user, hash, description, created_by, created_at, expires_at, last_used, revoked_at`

// micros0 is micros with the zero time as 0, for times that may be unset.
func micros0(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

func fromMicros0(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return fromMicros(us)
}

func scanToken(s scanner) (store.Token, error) {
	var t store.Token
	var created, expires, used, revoked int64
	err := s.Scan(&t.ID, &t.User, &t.Hash, &t.Description, &t.CreatedBy, &created, &expires, &used, &revoked)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMicros(created), fromMicros0(expires), fromMicros0(used), fromMicros0(revoked)
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
	err = db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)`,
			t.ID, t.User, t.Hash, t.Description, t.CreatedBy, micros(t.CreatedAt), micros0(t.ExpiresAt))
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				return fmt.Errorf("%w: a token with ID %s exists", store.ErrConflict, t.ID)
			}
			return err
		}
		if out, err = queryOne(ctx, tx, scanToken, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, t.ID); err != nil {
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
	t, err := queryOne(ctx, db.sql, scanToken, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id)
	if err != nil {
		return store.Token{}, fmt.Errorf("token %s: %w", id, err)
	}
	return t, nil
}

// Tokens implements store.Store.
func (db *DB) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	ts, err := queryAll(ctx, db.sql, scanToken, `SELECT `+tokenColumns+` FROM tokens
		WHERE ? = '' OR user = ? ORDER BY created_at, id`, user, user)
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
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, micros(now), id)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if out, err = queryOne(ctx, tx, scanToken, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id); err != nil || n == 0 {
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
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE tokens SET last_used = ? WHERE id = ? AND last_used < ?`, micros(at), id, micros(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("touching token %s: %w", id, err)
	}
	return nil
}
