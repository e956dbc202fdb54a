package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const unitStateColumns = `kind, name, env, op_phase, op_release, op_revision, op_artifact, op_config, op_step,
	op_step_started_at, op_step_data, failed_release, failed_revision, failed_artifact, failed_config, status, updated_at`

func scanUnitState(s scanner) (store.UnitState, error) {
	var u store.UnitState
	var phase, opRev, opArt, opCfg, failRev, failArt, failCfg *string
	var opRel, failRel *int64
	var step *int
	var started *time.Time
	var data, status []byte
	err := s.Scan(&u.Kind, &u.Name, &u.Env, &phase, &opRel, &opRev, &opArt, &opCfg, &step,
		&started, &data, &failRel, &failRev, &failArt, &failCfg, &status, &u.UpdatedAt)
	if err != nil {
		return u, err
	}
	if phase != nil {
		u.Operation = &store.Operation{
			Release: deref(opRel), Phase: *phase, Step: deref(step), StepStartedAt: fromNull(started),
			Target:   store.Target{Revision: deref(opRev), Artifact: deref(opArt), ConfigHash: deref(opCfg)},
			StepData: data,
		}
	}
	if failRev != nil {
		u.Failed = &store.Failure{Release: deref(failRel), Target: store.Target{Revision: *failRev, Artifact: deref(failArt), ConfigHash: deref(failCfg)}}
	}
	u.Status, u.UpdatedAt = status, u.UpdatedAt.UTC()
	return u, nil
}

// deref returns what p points to, the zero value for nil (a NULL column).
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// PutUnitState implements store.Store.
func (db *DB) PutUnitState(ctx context.Context, s store.UnitState) error {
	if err := contract.CheckUnitState(s); err != nil {
		return fmt.Errorf("putting unit state: %w", err)
	}
	var op [8]any // phase, release, revision, artifact, config, step, started, data: NULL without an operation
	if o := s.Operation; o != nil {
		op = [8]any{o.Phase, nullInt(o.Release), o.Target.Revision, o.Target.Artifact, o.Target.ConfigHash, o.Step, nullTime(o.StepStartedAt), jsonArg(o.StepData)}
	}
	var failed [4]any // release, revision, artifact, config
	if f := s.Failed; f != nil {
		failed = [4]any{nullInt(f.Release), f.Target.Revision, f.Target.Artifact, f.Target.ConfigHash}
	}
	args := append([]any{s.Kind, s.Name, s.Env}, op[:]...)
	args = append(args, failed[:]...)
	args = append(args, ts(db.now()))
	err := db.exec(ctx, `
		INSERT INTO unit_states (kind, name, env, op_phase, op_release, op_revision, op_artifact, op_config, op_step,
			op_step_started_at, op_step_data, failed_release, failed_revision, failed_artifact, failed_config, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		ON CONFLICT (kind, env, name) DO UPDATE SET op_phase = excluded.op_phase, op_release = excluded.op_release,
			op_revision = excluded.op_revision, op_artifact = excluded.op_artifact, op_config = excluded.op_config,
			op_step = excluded.op_step, op_step_started_at = excluded.op_step_started_at, op_step_data = excluded.op_step_data,
			failed_release = excluded.failed_release, failed_revision = excluded.failed_revision,
			failed_artifact = excluded.failed_artifact, failed_config = excluded.failed_config, updated_at = excluded.updated_at`,
		args...)
	if err != nil {
		return fmt.Errorf("putting the state of %s %s @ %s: %w", s.Kind, s.Name, s.Env, err)
	}
	return nil
}

// PutUnitStatuses implements store.Store.
func (db *DB) PutUnitStatuses(ctx context.Context, states []store.UnitState) error {
	if err := contract.CheckUnitStatuses(states); err != nil {
		return fmt.Errorf("putting unit statuses: %w", err)
	}
	if len(states) == 0 {
		return nil
	}
	// In key order, so that two writers of the same units wait for one
	// another instead of deadlocking.
	states = slices.SortedFunc(slices.Values(states), func(a, b store.UnitState) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Env, b.Env), cmp.Compare(a.Name, b.Name))
	})
	now := ts(db.now())
	err := db.write(ctx, func(tx pgx.Tx) error {
		for _, s := range states {
			if _, err := tx.Exec(ctx, `
				INSERT INTO unit_states (kind, name, env, status, updated_at) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (kind, env, name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
				s.Kind, s.Name, s.Env, jsonArg(s.Status), now); err != nil {
				return fmt.Errorf("the status of %s %s @ %s: %w", s.Kind, s.Name, s.Env, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("putting unit statuses: %w", err)
	}
	return nil
}

// UnitState implements store.Store.
func (db *DB) UnitState(ctx context.Context, kind, name, env string) (store.UnitState, error) {
	s, err := queryOne(ctx, db.pool, scanUnitState, `SELECT `+unitStateColumns+` FROM unit_states
		WHERE kind = $1 AND env = $2 AND name = $3`, kind, env, name)
	if err != nil {
		return s, fmt.Errorf("state of %s %s @ %s: %w", kind, name, env, err)
	}
	return s, nil
}

// UnitStates implements store.Store.
func (db *DB) UnitStates(ctx context.Context) ([]store.UnitState, error) {
	ss, err := queryAll(ctx, db.pool, scanUnitState, `SELECT `+unitStateColumns+` FROM unit_states ORDER BY kind, env, name`)
	if err != nil {
		return nil, fmt.Errorf("listing unit states: %w", err)
	}
	return ss, nil
}

// DeleteUnitState implements store.Store.
func (db *DB) DeleteUnitState(ctx context.Context, kind, name, env string) error {
	if err := db.exec(ctx, `DELETE FROM unit_states WHERE kind = $1 AND env = $2 AND name = $3`, kind, env, name); err != nil {
		return fmt.Errorf("deleting the state of %s %s @ %s: %w", kind, name, env, err)
	}
	return nil
}
