package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/wiring"
)

// TestUnitStoreWritesOnlyUnderTheLease: the engine's writes are refused
// while no lease is held, go through the view of the lease while it is,
// and are refused again once it is dropped; each write that went through
// tells the streams. Reads never wait for a lease.
func TestUnitStoreWritesOnlyUnderTheLease(t *testing.T) {
	ctx := context.Background()
	st, err := wiring.OpenDB(ctx, filepath.Join(t.TempDir(), "socle.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	changed := 0
	u := &unitStore{Store: st.Store, scope: lease.Platform, changed: func() { changed++ }}
	s := store.UnitState{Kind: "app", Name: "api", Env: "dev"}
	if err := u.PutUnitState(ctx, s); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("a write before the lease: %v, want ErrFenced", err)
	}
	u.hold(st.Fenced(lease.Platform, 1))
	if err := u.PutUnitState(ctx, s); err != nil {
		t.Errorf("a write under the lease: %v", err)
	}
	u.drop()
	if _, err := u.BeginRelease(ctx, store.Release{App: "api", Env: "dev"}, nil); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("a release begun after the lease was dropped: %v, want ErrFenced", err)
	}
	if got, err := u.UnitState(ctx, "app", "api", "dev"); err != nil || got.Name != "api" {
		t.Errorf("reading without the lease: %+v, %v", got, err)
	}
	if changed != 1 {
		t.Errorf("the streams were told %d times, want once (one write went through)", changed)
	}
}
