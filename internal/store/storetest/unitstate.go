package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

func (f *fixture) putUnitState(s store.UnitState) {
	f.Helper()
	if err := f.s.PutUnitState(f.ctx, s); err != nil {
		f.Fatalf("PutUnitState(%s %s @ %s): %v", s.Kind, s.Name, s.Env, err)
	}
}

func (f *fixture) unitStates() []store.UnitState {
	f.Helper()
	ss, err := f.s.UnitStates(f.ctx)
	if err != nil {
		f.Fatalf("UnitStates: %v", err)
	}
	return ss
}

// withoutUpdatedAt drops what the store sets, for comparing records.
func withoutUpdatedAt(ss []store.UnitState) []store.UnitState {
	out := make([]store.UnitState, len(ss))
	for i, s := range ss {
		s.UpdatedAt = time.Time{}
		out[i] = s
	}
	return out
}

// canaryStep is the state of a rollout at its second step, as the
// reconciler writes it.
func canaryStep(release int64) *store.Operation {
	return &store.Operation{
		Release: release, Target: store.Target{Revision: "r2", Artifact: "sha256:r2", ConfigHash: "cfg:r2"},
		Phase: "Pausing", Step: 1, StepStartedAt: t0, StepData: json.RawMessage(`{"requests": 120, "errors": 1}`),
	}
}

// testUnitStateRoundTrip: a unit's operation, failure and status are kept
// apart: writing one leaves the others as they were, and nil clears.
func testUnitStateRoundTrip(f *fixture) {
	rel := f.begin(release("web", "dev", "r2"), nil)
	failed := f.begin(release("web", "prod", "r9"), nil)
	f.finish(failed.ID, store.RolledBack, "canary error rate")
	web := store.UnitState{Kind: "app", Name: "web", Env: "dev", Operation: canaryStep(rel.ID)}
	f.putUnitState(web)
	prod := store.UnitState{Kind: "app", Name: "web", Env: "prod",
		Failed: &store.Failure{Release: failed.ID, Target: store.Target{Revision: "r9", Artifact: "sha256:r9", ConfigHash: "cfg:r9"}}}
	f.putUnitState(prod)
	before := time.Now().Add(-time.Second)
	got, err := f.s.UnitState(f.ctx, "app", "web", "dev")
	if err != nil {
		f.Fatalf("UnitState: %v", err)
	}
	if got.UpdatedAt.Before(before) || got.UpdatedAt.Location() != time.UTC {
		f.Errorf("UpdatedAt = %v, want now in UTC", got.UpdatedAt)
	}
	web.Operation.StepStartedAt = utc(t0)
	f.same("UnitState", withoutUpdatedAt([]store.UnitState{got})[0], web)

	// The status is written on its own, and leaves the operation.
	status := json.RawMessage(`{"phase": "Progressing", "reason": "RollingOut"}`)
	if err := f.s.PutUnitStatuses(f.ctx, []store.UnitState{{Kind: "app", Name: "web", Env: "dev", Status: status},
		{Kind: "app", Name: "api", Env: "dev", Status: json.RawMessage(`{"phase": "Synced"}`)}}); err != nil {
		f.Fatalf("PutUnitStatuses: %v", err)
	}
	web.Status = status
	api := store.UnitState{Kind: "app", Name: "api", Env: "dev", Status: json.RawMessage(`{"phase": "Synced"}`)}
	f.same("UnitStates after the statuses", withoutUpdatedAt(f.unitStates()), []store.UnitState{api, web, prod})

	// The operation moves on, and leaves the status.
	next := canaryStep(rel.ID)
	next.Step, next.Phase, next.StepData = 2, "Waiting", nil
	web.Operation = next
	f.putUnitState(web)
	next.StepStartedAt = utc(t0)
	f.same("UnitStates after the next step", withoutUpdatedAt(f.unitStates()), []store.UnitState{api, web, prod})

	// The rollout ends: nil clears the operation; the failure is kept until
	// written otherwise.
	web.Operation, web.Failed = nil, &store.Failure{Release: rel.ID, Target: next.Target}
	f.putUnitState(web)
	prod.Failed = nil
	f.putUnitState(prod)
	f.same("UnitStates after the rollout ended", withoutUpdatedAt(f.unitStates()), []store.UnitState{api, web, prod})

	if err := f.s.DeleteUnitState(f.ctx, "app", "web", "dev"); err != nil {
		f.Fatalf("DeleteUnitState: %v", err)
	}
	if err := f.s.DeleteUnitState(f.ctx, "app", "web", "dev"); err != nil {
		f.Errorf("DeleteUnitState of a unit without a record: %v", err)
	}
	if _, err := f.s.UnitState(f.ctx, "app", "web", "dev"); !errors.Is(err, store.ErrNotFound) {
		f.Errorf("UnitState after DeleteUnitState: %v, want an error wrapping ErrNotFound", err)
	}
	f.same("UnitStates after the delete", withoutUpdatedAt(f.unitStates()), []store.UnitState{api, prod})
}

// testUnitStatesOrder: by kind, environment and name, comparing bytes.
func testUnitStatesOrder(f *fixture) {
	for _, s := range []store.UnitState{
		{Kind: "stack", Name: "net", Env: "eu"}, {Kind: "app", Name: "web", Env: "prod"},
		{Kind: "app", Name: "api", Env: "prod"}, {Kind: "app", Name: "Web", Env: "prod"}, {Kind: "app", Name: "web", Env: "dev"},
	} {
		f.putUnitState(s)
	}
	var got []string
	for _, s := range f.unitStates() {
		got = append(got, s.Kind+" "+s.Env+" "+s.Name)
	}
	f.same("order", got, []string{"app dev web", "app prod Web", "app prod api", "app prod web", "stack eu net"})
}

// testUnitStateRejects: bad records are refused before anything is
// written, and a batch of statuses is written whole or not at all.
func testUnitStateRejects(f *fixture) {
	for _, tc := range []struct {
		name string
		s    store.UnitState
	}{
		{"no kind", store.UnitState{Name: "web", Env: "dev"}},
		{"no name", store.UnitState{Kind: "app", Env: "dev"}},
		{"no environment", store.UnitState{Kind: "app", Name: "web"}},
		{"an operation without phase", store.UnitState{Kind: "app", Name: "web", Env: "dev", Operation: &store.Operation{Step: 1}}},
		{"a negative step", store.UnitState{Kind: "app", Name: "web", Env: "dev", Operation: &store.Operation{Phase: "Waiting", Step: -1}}},
		{"step data that is not JSON", store.UnitState{Kind: "app", Name: "web", Env: "dev", Operation: &store.Operation{Phase: "Waiting", StepData: json.RawMessage(`{`)}}},
		{"an unknown release", store.UnitState{Kind: "app", Name: "web", Env: "dev", Operation: &store.Operation{Phase: "Waiting", Release: 4242}}},
	} {
		if err := f.s.PutUnitState(f.ctx, tc.s); err == nil {
			f.Errorf("PutUnitState with %s: no error", tc.name)
		}
	}
	f.putUnitState(store.UnitState{Kind: "app", Name: "web", Env: "dev"})
	for _, tc := range []struct {
		name   string
		states []store.UnitState
	}{
		{"a unit twice", []store.UnitState{{Kind: "app", Name: "api", Env: "dev"}, {Kind: "app", Name: "api", Env: "dev"}}},
		{"no name", []store.UnitState{{Kind: "app", Name: "api", Env: "dev"}, {Kind: "app", Env: "dev"}}},
		{"a status that is not JSON", []store.UnitState{{Kind: "app", Name: "api", Env: "dev", Status: json.RawMessage(`{}`)},
			{Kind: "app", Name: "web", Env: "dev", Status: json.RawMessage(`{"phase"`)}}},
	} {
		if err := f.s.PutUnitStatuses(f.ctx, tc.states); err == nil {
			f.Errorf("PutUnitStatuses with %s: no error", tc.name)
		}
	}
	f.same("UnitStates after the refusals", withoutUpdatedAt(f.unitStates()), []store.UnitState{{Kind: "app", Name: "web", Env: "dev"}})
	if err := f.s.PutUnitStatuses(f.ctx, nil); err != nil {
		f.Errorf("PutUnitStatuses of nothing: %v", err)
	}
}

// testUnitStatesConcurrent: the engine's workers write their units' states
// while its status writer writes statuses; nothing is lost.
func testUnitStatesConcurrent(f *fixture) {
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			for step := range 5 {
				if err := f.s.PutUnitState(f.ctx, store.UnitState{Kind: "app", Name: n, Env: "dev",
					Operation: &store.Operation{Phase: "Waiting", Step: step, Target: store.Target{Revision: "r1"}}}); err != nil {
					f.Errorf("PutUnitState(%s, %d): %v", n, step, err)
				}
			}
		})
		wg.Go(func() {
			for i := range 5 {
				if err := f.s.PutUnitStatuses(f.ctx, []store.UnitState{{Kind: "app", Name: n, Env: "dev",
					Status: json.RawMessage(`{"n": ` + string(rune('0'+i)) + `}`)}}); err != nil {
					f.Errorf("PutUnitStatuses(%s): %v", n, err)
				}
			}
		})
	}
	wg.Wait()
	ss := f.unitStates()
	if len(ss) != len(names) {
		f.Fatalf("%d records, want %d", len(ss), len(names))
	}
	for _, s := range ss {
		if s.Operation == nil || s.Operation.Step != 4 || string(s.Status) == "" {
			f.Errorf("%s: operation %+v, status %s; want the last step and a status", s.Name, s.Operation, s.Status)
		}
		var st struct{ N int }
		if err := json.Unmarshal(s.Status, &st); err != nil || st.N != 4 {
			f.Errorf("%s: status %s, want the last one written", s.Name, s.Status)
		}
	}
}

// testUnitStatesSurviveReopen: a restarted socle finds the rollout at the
// step it was on.
func testUnitStatesSurviveReopen(f *fixture) {
	rel := f.begin(release("web", "dev", "r2"), nil)
	s := store.UnitState{Kind: "app", Name: "web", Env: "dev", Operation: canaryStep(rel.ID),
		Failed: &store.Failure{Target: store.Target{Revision: "r1"}}}
	f.putUnitState(s)
	if err := f.s.PutUnitStatuses(f.ctx, []store.UnitState{{Kind: "app", Name: "web", Env: "dev", Status: json.RawMessage(`{"phase":"Progressing"}`)}}); err != nil {
		f.Fatal(err)
	}
	before := f.unitStates()
	f.reopenStore()
	f.same("unit states after reopening", f.unitStates(), before)
}
