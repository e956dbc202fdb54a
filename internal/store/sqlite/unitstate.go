package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

const unitStateColumns = `kind, name, env, op_phase, op_release, op_revision, op_artifact, op_config, op_step,
	op_step_started_at, op_step_data, failed_release, failed_revision, failed_artifact, failed_config, status, updated_at`

func scanUnitState(s scanner) (store.UnitState, error) {
	var u store.UnitState
	var phase, opRev, opArt, opCfg, failRev, failArt, failCfg sql.NullString
	var opRel, step, started, failRel sql.NullInt64
	var data, status []byte
	var updated int64
	err := s.Scan(&u.Kind, &u.Name, &u.Env, &phase, &opRel, &opRev, &opArt, &opCfg, &step,
		&started, &data, &failRel, &failRev, &failArt, &failCfg, &status, &updated)
	if phase.Valid {
		u.Operation = &store.Operation{
			Release: opRel.Int64, Phase: phase.String, Step: int(step.Int64), StepStartedAt: fromNullMicros(started),
			Target:   store.Target{Revision: opRev.String, Artifact: opArt.String, ConfigHash: opCfg.String},
			StepData: data,
		}
	}
	if failRev.Valid {
		u.Failed = &store.Failure{Release: failRel.Int64, Target: store.Target{Revision: failRev.String, Artifact: failArt.String, ConfigHash: failCfg.String}}
	}
	u.Status, u.UpdatedAt = status, fromMicros(updated)
	return u, err
}

// PutUnitState implements store.Store.
func (db *DB) PutUnitState(ctx context.Context, s store.UnitState) error {
	if err := contract.CheckUnitState(s); err != nil {
		return fmt.Errorf("putting unit state: %w", err)
	}
	var op [8]any // phase, release, revision, artifact, config, step, started, data: NULL without an operation
	if o := s.Operation; o != nil {
		op = [8]any{o.Phase, nullInt(o.Release), o.Target.Revision, o.Target.Artifact, o.Target.ConfigHash, o.Step, nullMicros(o.StepStartedAt), jsonArg(o.StepData)}
	}
	var failed [4]any // release, revision, artifact, config
	if f := s.Failed; f != nil {
		failed = [4]any{nullInt(f.Release), f.Target.Revision, f.Target.Artifact, f.Target.ConfigHash}
	}
	args := append([]any{s.Kind, s.Name, s.Env}, op[:]...)
	args = append(args, failed[:]...)
	args = append(args, micros(db.now()))
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO unit_states (kind, name, env, op_phase, op_release, op_revision, op_artifact, op_config, op_step,
				op_step_started_at, op_step_data, failed_release, failed_revision, failed_artifact, failed_config, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (kind, env, name) DO UPDATE SET op_phase = excluded.op_phase, op_release = excluded.op_release,
				op_revision = excluded.op_revision, op_artifact = excluded.op_artifact, op_config = excluded.op_config,
				op_step = excluded.op_step, op_step_started_at = excluded.op_step_started_at, op_step_data = excluded.op_step_data,
				failed_release = excluded.failed_release, failed_revision = excluded.failed_revision,
				failed_artifact = excluded.failed_artifact, failed_config = excluded.failed_config, updated_at = excluded.updated_at`,
			args...)
		return err
	})
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
	now := micros(db.now())
	err := db.write(ctx, func(tx *sql.Tx) error {
		put, err := tx.PrepareContext(ctx, `
			INSERT INTO unit_states (kind, name, env, status, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (kind, env, name) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`)
		if err != nil {
			return err
		}
		defer put.Close()
		for _, s := range states {
			if _, err := put.ExecContext(ctx, s.Kind, s.Name, s.Env, jsonArg(s.Status), now); err != nil {
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
	s, err := queryOne(ctx, db.sql, scanUnitState, `SELECT `+unitStateColumns+` FROM unit_states
		WHERE kind = ? AND env = ? AND name = ?`, kind, env, name)
	if err != nil {
		return s, fmt.Errorf("state of %s %s @ %s: %w", kind, name, env, err)
	}
	return s, nil
}

// UnitStates implements store.Store.
func (db *DB) UnitStates(ctx context.Context) ([]store.UnitState, error) {
	// Ordered by bytes, as Desired is.
	ss, err := queryAll(ctx, db.sql, scanUnitState, `SELECT `+unitStateColumns+` FROM unit_states ORDER BY kind, env, name`)
	if err != nil {
		return nil, fmt.Errorf("listing unit states: %w", err)
	}
	return ss, nil
}

// DeleteUnitState implements store.Store.
func (db *DB) DeleteUnitState(ctx context.Context, kind, name, env string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM unit_states WHERE kind = ? AND env = ? AND name = ?`, kind, env, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("deleting the state of %s %s @ %s: %w", kind, name, env, err)
	}
	return nil
}
