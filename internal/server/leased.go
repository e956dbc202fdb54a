package server

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/store"
)

// unitStore is the store the engine and the unit kinds write through: the
// units' states and statuses, their releases. Each of those writes goes
// through the fenced view of the lease the engine runs under (see
// wiring.Stores.Fenced), so that a socle that lost its lease (paused past
// its expiry, cut off from the database) never records a step of a unit
// after another socle took it over: PostgreSQL refuses the write in its
// own transaction. Between leases, the writes are refused here. Reads go
// to the store as they are.
//
// It also tells the event streams when statuses were written: what their
// cells show may have changed.
type unitStore struct {
	store.Store
	// fenced is the view writes go through, nil while no lease is held.
	fenced atomic.Pointer[store.Store]
	scope  string
	// changed is called after statuses were written.
	changed func()
}

var _ store.Store = (*unitStore)(nil)

// hold makes the writes go through view, the store fenced by the lease
// just taken; drop refuses them again.
func (u *unitStore) hold(view store.Store) { u.fenced.Store(&view) }
func (u *unitStore) drop()                 { u.fenced.Store(nil) }

// w returns the view writes go through now.
func (u *unitStore) w() (store.Store, error) {
	if v := u.fenced.Load(); v != nil {
		return *v, nil
	}
	return nil, fmt.Errorf("%w: %s (not held by this socle)", lease.ErrFenced, u.scope)
}

func (u *unitStore) PutUnitState(ctx context.Context, s store.UnitState) error {
	w, err := u.w()
	if err != nil {
		return err
	}
	defer u.changed()
	return w.PutUnitState(ctx, s)
}

func (u *unitStore) PutUnitStatuses(ctx context.Context, states []store.UnitState) error {
	w, err := u.w()
	if err != nil {
		return err
	}
	defer u.changed()
	return w.PutUnitStatuses(ctx, states)
}

func (u *unitStore) DeleteUnitState(ctx context.Context, kind, name, env string) error {
	w, err := u.w()
	if err != nil {
		return err
	}
	defer u.changed()
	return w.DeleteUnitState(ctx, kind, name, env)
}

func (u *unitStore) BeginRelease(ctx context.Context, r store.Release, rec *store.AuditRecord) (store.Release, error) {
	w, err := u.w()
	if err != nil {
		return store.Release{}, err
	}
	return w.BeginRelease(ctx, r, rec)
}

func (u *unitStore) FinishRelease(ctx context.Context, id int64, status store.ReleaseStatus, reason string, rec *store.AuditRecord) error {
	w, err := u.w()
	if err != nil {
		return err
	}
	return w.FinishRelease(ctx, id, status, reason, rec)
}
