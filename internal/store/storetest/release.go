package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

// release returns a release of app/env deploying rev, as the reconciler
// would begin it.
func release(app, env, rev string) store.Release {
	return store.Release{
		App: app, Env: env, Revision: rev, Artifact: "sha256:" + rev, ConfigHash: "cfg:" + rev,
		Strategy: "rolling", Trigger: store.TriggerSync, Author: "Ada Lovelace",
	}
}

func (f *fixture) begin(r store.Release, rec *store.AuditRecord) store.Release {
	f.Helper()
	got, err := f.s.BeginRelease(f.ctx, r, rec)
	if err != nil {
		f.Fatalf("BeginRelease(%s/%s @ %s): %v", r.App, r.Env, r.Revision, err)
	}
	return got
}

func (f *fixture) finish(id int64, status store.ReleaseStatus, reason string) {
	f.Helper()
	if err := f.s.FinishRelease(f.ctx, id, status, reason, nil); err != nil {
		f.Fatalf("FinishRelease(%d, %s): %v", id, status, err)
	}
}

func (f *fixture) release(id int64) store.Release {
	f.Helper()
	r, err := f.s.Release(f.ctx, id)
	if err != nil {
		f.Fatalf("Release(%d): %v", id, err)
	}
	return r
}

func (f *fixture) releases(filter store.ReleaseFilter) []store.Release {
	f.Helper()
	rs, err := f.s.Releases(f.ctx, filter)
	if err != nil {
		f.Fatalf("Releases(%+v): %v", filter, err)
	}
	return rs
}

func ids(rs []store.Release) []int64 {
	out := []int64{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// auditRecords returns the whole audit trail.
func (f *fixture) auditRecords() []store.AuditRecord {
	f.Helper()
	all := []store.AuditRecord{}
	for r, err := range store.AuditTrail(f.ctx, f.s, 0) {
		if err != nil {
			f.Fatalf("AuditTrail: %v", err)
		}
		all = append(all, r)
	}
	return all
}

// verifiedAudit returns the audit trail after checking that it verifies.
func (f *fixture) verifiedAudit() []store.AuditRecord {
	f.Helper()
	rs := f.auditRecords()
	res, err := audit.Verify(audit.Records(rs))
	if err != nil || !res.OK() || res.Verified != int64(len(rs)) {
		f.Fatalf("audit.Verify of %d records = %+v, %v; want them all verified", len(rs), res, err)
	}
	return rs
}

// detail decodes the Detail of an audit record.
func (f *fixture) detail(r store.AuditRecord) map[string]any {
	f.Helper()
	var d map[string]any
	if err := json.Unmarshal(r.Detail, &d); err != nil {
		f.Fatalf("Detail of audit record %d: %v", r.Seq, err)
	}
	return d
}

func testReleaseRoundTrip(f *fixture) {
	committed := t0.Add(-2 * time.Hour)
	f.putRevisions(revision("r1", true, t0)) // committed an hour before t0
	tests := []struct {
		name string
		in   store.Release
		// committed is the CommittedAt to expect.
		committed time.Time
	}{
		{"every field", store.Release{
			App: "web", Env: "prod", Revision: "r1", CommittedAt: committed, Artifact: "sha256:abc", ConfigHash: "cfg1",
			Strategy: "canary", Trigger: store.TriggerPromote, Author: "Zoë O'Brien", Status: store.Progressing, StartedAt: t0.Add(789),
			Notes: json.RawMessage(` [ {"sha": "r1", "message": "feat: ünïcode ✓", "author": "Zoë"} ] `), Emergency: "INC-4711: ünïcode checkout down",
		}, committed},
		{"commit time from the revision", store.Release{App: "api", Env: "dev", Revision: "r1", Trigger: store.TriggerSync}, t0.Add(-time.Hour)},
		{"revision not recorded", store.Release{App: "db", Env: "dev", Revision: "r9", Trigger: store.TriggerDeploy}, time.Time{}},
		{"every trigger: rollback", store.Release{App: "a", Env: "e", Revision: "r9", Trigger: store.TriggerRollback}, time.Time{}},
	}
	for _, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			before := time.Now()
			got := f.begin(tc.in, nil)
			after := time.Now()
			if got.ID <= 0 {
				f.Errorf("ID = %d, want a positive one", got.ID)
			}
			want := tc.in
			want.ID, want.Status, want.CommittedAt = got.ID, store.Progressing, utc(tc.committed)
			if tc.in.StartedAt.IsZero() {
				f.within("StartedAt", got.StartedAt, before, after)
				want.StartedAt = got.StartedAt
			}
			want.StartedAt = utc(want.StartedAt)
			f.same("BeginRelease", got, want)
			f.same("Release", f.release(got.ID), want)
			f.same("Releases of the unit", f.releases(store.ReleaseFilter{App: tc.in.App, Env: tc.in.Env}), []store.Release{want})
			f.inUTC("release", got.StartedAt, got.CommittedAt)
			if !got.FinishedAt.IsZero() || (tc.in.Notes == nil && got.Notes != nil) {
				f.Errorf("FinishedAt = %v, Notes = %q; want zero, nil", got.FinishedAt, got.Notes)
			}
		})
	}
}

func testBeginReleaseResumesOrSupersedes(f *fixture) {
	rec := func(action string) *store.AuditRecord {
		return &store.AuditRecord{Actor: "socle", Action: action}
	}
	other := f.begin(release("api", "prod", "r1"), nil)
	a := f.begin(release("web", "prod", "r1"), rec("release.started"))

	// The same target again, as a restarted socle would ask: the same
	// release, as first recorded, and nothing new.
	again := release("web", "prod", "r1")
	again.Author, again.Trigger, again.Notes, again.StartedAt = "Someone Else", store.TriggerDeploy, json.RawMessage(`["x"]`), t0
	f.same("BeginRelease of the same target", f.begin(again, rec("release.started")), a)
	f.same("releases after resuming", ids(f.releases(store.ReleaseFilter{})), []int64{a.ID, other.ID})
	if n := len(f.auditRecords()); n != 1 {
		f.Errorf("%d audit records after resuming, want 1", n)
	}

	// Another target: a is superseded, in the same transaction.
	tests := []struct {
		name   string
		change func(*store.Release)
	}{
		{"another artifact", func(r *store.Release) { r.Artifact = "sha256:other" }},
		{"another config", func(r *store.Release) { r.ConfigHash = "cfg:other" }},
		{"another revision", func(r *store.Release) { r.Revision = "r2" }},
		{"back to the first target", func(r *store.Release) {}},
	}
	prev := a
	for _, tc := range tests {
		next := release("web", "prod", "r1")
		tc.change(&next)
		before := time.Now()
		b := f.begin(next, rec("release.started"))
		after := time.Now()
		if b.ID <= prev.ID || b.Status != store.Progressing || b.Previous != 0 {
			f.Errorf("%s: BeginRelease = ID %d, %s, previous %d; want a new Progressing release after %d, no previous",
				tc.name, b.ID, b.Status, b.Previous, prev.ID)
		}
		old := f.release(prev.ID)
		f.within(tc.name+": FinishedAt of the superseded release", old.FinishedAt, before, after)
		want := prev
		want.Status, want.Reason, want.FinishedAt = store.Superseded, fmt.Sprintf("superseded by release %d", b.ID), old.FinishedAt
		f.same(tc.name+": the superseded release", old, want)
		recs := f.verifiedAudit()
		if last := f.detail(recs[len(recs)-1]); last["release"] != float64(b.ID) || last["superseded"] != float64(prev.ID) {
			f.Errorf("%s: audit detail %v, want release %d superseding %d", tc.name, last, b.ID, prev.ID)
		}
		prev = b
	}
	progressing, err := f.s.ProgressingReleases(f.ctx)
	if err != nil {
		f.Fatalf("ProgressingReleases: %v", err)
	}
	f.same("progressing releases", ids(progressing), []int64{other.ID, prev.ID})

	// Previous is the current release.
	f.finish(prev.ID, store.Succeeded, "")
	c := f.begin(release("web", "prod", "r3"), nil)
	if c.Previous != prev.ID {
		f.Errorf("Previous = %d, want the current release %d", c.Previous, prev.ID)
	}
	if r := f.release(other.ID); r.Status != store.Progressing {
		f.Errorf("release of another unit is %s, want it still Progressing", r.Status)
	}
	// Previous named by the caller is kept.
	f.finish(c.ID, store.Failed, "")
	named := release("web", "prod", "r4")
	named.Previous = a.ID
	if got := f.begin(named, nil); got.Previous != a.ID {
		f.Errorf("Previous = %d, want %d as named", got.Previous, a.ID)
	}
}

func testBeginReleaseRejects(f *fixture) {
	f.putRevisions(revision("r1", true, t0))
	other := f.begin(release("api", "dev", "r1"), nil)
	progressing := f.begin(release("web", "prod", "r1"), nil)
	tests := []struct {
		name     string
		in       store.Release
		rec      *store.AuditRecord
		notFound bool
	}{
		{"no app", store.Release{Env: "prod", Revision: "r2", Trigger: store.TriggerSync}, nil, false},
		{"no env", store.Release{App: "web", Revision: "r2", Trigger: store.TriggerSync}, nil, false},
		{"no revision", store.Release{App: "web", Env: "prod", Trigger: store.TriggerSync}, nil, false},
		{"no trigger", store.Release{App: "web", Env: "prod", Revision: "r2"}, nil, false},
		{"unknown trigger", store.Release{App: "web", Env: "prod", Revision: "r2", Trigger: "cron"}, nil, false},
		{"an ID", func() store.Release { r := release("web", "prod", "r2"); r.ID = 7; return r }(), nil, false},
		{"already succeeded", func() store.Release { r := release("web", "prod", "r2"); r.Status = store.Succeeded; return r }(), nil, false},
		{"already finished", func() store.Release { r := release("web", "prod", "r2"); r.FinishedAt = t0; return r }(), nil, false},
		{"notes are not JSON", func() store.Release {
			r := release("web", "prod", "r2")
			r.Notes = json.RawMessage(`[{"sha":`)
			return r
		}(), nil, false},
		{"previous of another unit", func() store.Release { r := release("web", "prod", "r2"); r.Previous = other.ID; return r }(), nil, false},
		{"previous unknown", func() store.Release { r := release("web", "prod", "r2"); r.Previous = 4242; return r }(), nil, true},
		{"negative previous", func() store.Release { r := release("web", "prod", "r2"); r.Previous = -1; return r }(), nil, false},
		{"audit record without action", release("web", "prod", "r2"), &store.AuditRecord{Actor: "ada"}, false},
		{"audit record without actor", release("web", "prod", "r2"), &store.AuditRecord{Action: "release.started"}, false},
		{"audit detail is not an object", release("web", "prod", "r2"), &store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`[1]`)}, false},
		{"audit detail is not JSON", release("web", "prod", "r2"), &store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`{`)}, false},
		{"audit record already sealed", release("web", "prod", "r2"), &store.AuditRecord{Actor: "ada", Action: "x", Seq: 1}, false},
	}
	for _, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			before := f.snapshot()
			got, err := f.s.BeginRelease(f.ctx, tc.in, tc.rec)
			if err == nil {
				f.Errorf("BeginRelease = %+v, want an error", got)
			} else if tc.notFound != errors.Is(err, store.ErrNotFound) {
				f.Errorf("BeginRelease: %v; wrapping ErrNotFound %t, want %t", err, !tc.notFound, tc.notFound)
			}
			f.same("store after the rejected begin", f.snapshot(), before)
		})
	}
	if r := f.release(progressing.ID); r.Status != store.Progressing {
		f.Errorf("the unit's release is %s after rejected begins, want Progressing", r.Status)
	}
}

func testFinishRelease(f *fixture) {
	tests := []struct {
		name          string
		first, second store.ReleaseStatus
		conflict      bool // the second finish
	}{
		{"succeeded twice", store.Succeeded, store.Succeeded, false},
		{"failed twice", store.Failed, store.Failed, false},
		{"rolled back twice", store.RolledBack, store.RolledBack, false},
		{"interrupted twice", store.Interrupted, store.Interrupted, false},
		{"superseded twice", store.Superseded, store.Superseded, false},
		{"succeeded, then failed", store.Succeeded, store.Failed, true},
		{"failed, then succeeded", store.Failed, store.Succeeded, true},
		{"rolled back, then succeeded", store.RolledBack, store.Succeeded, true},
		{"interrupted, then succeeded", store.Interrupted, store.Succeeded, true},
	}
	for i, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			r := f.begin(release(fmt.Sprint("app", i), "prod", "r1"), nil)
			before := time.Now()
			f.finish(r.ID, tc.first, "because "+tc.name)
			after := time.Now()
			got := f.release(r.ID)
			f.within("FinishedAt", got.FinishedAt, before, after)
			f.inUTC("FinishedAt", got.FinishedAt)
			want := r
			want.Status, want.Reason, want.FinishedAt = tc.first, "because "+tc.name, got.FinishedAt
			f.same("finished release", got, want)

			err := f.s.FinishRelease(f.ctx, r.ID, tc.second, "again", &store.AuditRecord{Actor: "ada", Action: "release.finished"})
			if tc.conflict != errors.Is(err, store.ErrConflict) || (!tc.conflict && err != nil) {
				f.Errorf("second FinishRelease(%s): %v; want a conflict: %t", tc.second, err, tc.conflict)
			}
			f.same("release after the second finish", f.release(r.ID), want)
		})
	}
	if n := len(f.auditRecords()); n != 0 {
		f.Errorf("%d audit records after finishes that changed nothing, want 0", n)
	}

	r := f.begin(release("web", "prod", "r1"), nil)
	rejects := []struct {
		name     string
		id       int64
		status   store.ReleaseStatus
		rec      *store.AuditRecord
		notFound bool
	}{
		{"to Progressing", r.ID, store.Progressing, nil, false},
		{"to an unknown status", r.ID, "Done", nil, false},
		{"to no status", r.ID, "", nil, false},
		{"with a bad audit record", r.ID, store.Succeeded, &store.AuditRecord{Actor: "ada"}, false},
		{"an unknown release", 4242, store.Succeeded, nil, true},
	}
	for _, tc := range rejects {
		err := f.s.FinishRelease(f.ctx, tc.id, tc.status, "", tc.rec)
		if err == nil || tc.notFound != errors.Is(err, store.ErrNotFound) {
			f.Errorf("FinishRelease %s: %v; want an error, wrapping ErrNotFound: %t", tc.name, err, tc.notFound)
		}
	}
	if got := f.release(r.ID); got.Status != store.Progressing || !got.FinishedAt.IsZero() {
		f.Errorf("release after rejected finishes: %s at %v, want Progressing, unfinished", got.Status, got.FinishedAt)
	}
}

func testCurrentRelease(f *fixture) {
	const progressing = store.Progressing
	tests := []struct {
		name string
		// the statuses, in order, of the unit's releases (Progressing only
		// last, or followed by a release that supersedes it)
		statuses []store.ReleaseStatus
		want     int // index of the current release; -1 for none
	}{
		{"no release", nil, -1},
		{"only progressing", []store.ReleaseStatus{progressing}, -1},
		{"only failed", []store.ReleaseStatus{store.Failed, store.RolledBack, store.Interrupted}, -1},
		{"succeeded", []store.ReleaseStatus{store.Succeeded}, 0},
		{"succeeded, then progressing", []store.ReleaseStatus{store.Succeeded, progressing}, 0},
		{"newer failed", []store.ReleaseStatus{store.Succeeded, store.Failed}, 0},
		{"newer rolled back", []store.ReleaseStatus{store.Succeeded, store.RolledBack}, 0},
		{"newer superseded", []store.ReleaseStatus{store.Succeeded, progressing, store.Failed}, 0},
		{"newest succeeded", []store.ReleaseStatus{store.Succeeded, store.Failed, store.Succeeded, store.Interrupted}, 2},
	}
	for i, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			app := fmt.Sprint("app", i)
			var rs []store.Release
			for j, st := range tc.statuses {
				r := f.begin(release(app, "prod", fmt.Sprint("r", j)), nil)
				if st != progressing {
					f.finish(r.ID, st, "")
				}
				rs = append(rs, r)
			}
			got, err := f.s.CurrentRelease(f.ctx, app, "prod")
			if tc.want < 0 {
				if !errors.Is(err, store.ErrNotFound) {
					f.Errorf("CurrentRelease = %d, %v; want ErrNotFound", got.ID, err)
				}
				return
			}
			if err != nil || got.ID != rs[tc.want].ID || got.Status != store.Succeeded {
				f.Errorf("CurrentRelease = %d (%s), %v; want %d", got.ID, got.Status, err, rs[tc.want].ID)
			}
			f.same("CurrentRelease", got, f.release(rs[tc.want].ID))
		})
	}
	// Another environment's is not the unit's.
	if got, err := f.s.CurrentRelease(f.ctx, "app3", "dev"); !errors.Is(err, store.ErrNotFound) {
		f.Errorf("CurrentRelease(app3, dev) = %d, %v; want ErrNotFound", got.ID, err)
	}
}

func testReleaseFilters(f *fixture) {
	type in struct {
		app, env string
		status   store.ReleaseStatus
	}
	ins := []in{
		{"web", "dev", store.Succeeded},
		{"web", "prod", store.Failed},
		{"api", "dev", store.Succeeded},
		{"web", "dev", store.RolledBack},
		{"web", "prod", store.Succeeded},
		{"api", "dev", store.Progressing},
		{"web", "dev", store.Succeeded},
		{"web", "prod", store.Progressing},
	}
	id := make([]int64, len(ins))
	for i, r := range ins {
		got := f.begin(release(r.app, r.env, fmt.Sprint("r", i)), nil)
		if r.status != store.Progressing {
			f.finish(got.ID, r.status, "")
		}
		id[i] = got.ID
	}
	newest := func(is ...int) []int64 {
		out := []int64{}
		for _, i := range is {
			out = append(out, id[i])
		}
		return out
	}
	tests := []struct {
		filter store.ReleaseFilter
		want   []int64
	}{
		{store.ReleaseFilter{}, newest(7, 6, 5, 4, 3, 2, 1, 0)},
		{store.ReleaseFilter{App: "web"}, newest(7, 6, 4, 3, 1, 0)},
		{store.ReleaseFilter{Env: "dev"}, newest(6, 5, 3, 2, 0)},
		{store.ReleaseFilter{App: "web", Env: "dev"}, newest(6, 3, 0)},
		{store.ReleaseFilter{Status: store.Succeeded}, newest(6, 4, 2, 0)},
		{store.ReleaseFilter{Status: store.Progressing}, newest(7, 5)},
		{store.ReleaseFilter{App: "web", Env: "prod", Status: store.Failed}, newest(1)},
		{store.ReleaseFilter{Before: id[5]}, newest(4, 3, 2, 1, 0)},
		{store.ReleaseFilter{Before: id[5], App: "web", Limit: 2}, newest(4, 3)},
		{store.ReleaseFilter{Limit: 3}, newest(7, 6, 5)},
		{store.ReleaseFilter{Before: id[0]}, newest()},
		{store.ReleaseFilter{App: "Web"}, newest()},
		{store.ReleaseFilter{Status: store.Superseded}, newest()},
	}
	for _, tc := range tests {
		f.same(fmt.Sprintf("IDs of Releases(%+v)", tc.filter), ids(f.releases(tc.filter)), tc.want)
	}
	// Walking pages of 3 gives every release once.
	var walked []int64
	filter := store.ReleaseFilter{Limit: 3}
	for range len(ins) {
		page := f.releases(filter)
		if len(page) == 0 {
			break
		}
		walked = append(walked, ids(page)...)
		filter.Before = page[len(page)-1].ID
	}
	f.same("walking pages of 3", walked, newest(7, 6, 5, 4, 3, 2, 1, 0))
	if _, err := f.s.Releases(f.ctx, store.ReleaseFilter{Limit: -1}); err == nil {
		f.Errorf("Releases(Limit -1) succeeded, want an error")
	}
}

func testProgressingReleases(f *fixture) {
	got, err := f.s.ProgressingReleases(f.ctx)
	if err != nil || len(got) != 0 {
		f.Fatalf("ProgressingReleases of an empty store = %+v, %v; want none, no error", got, err)
	}
	a := f.begin(release("web", "dev", "r1"), nil)
	b := f.begin(release("web", "prod", "r1"), nil)
	c := f.begin(release("api", "dev", "r1"), nil)
	f.finish(b.ID, store.Succeeded, "")
	d := f.begin(release("web", "prod", "r2"), nil)
	e := f.begin(release("web", "dev", "r2"), nil) // supersedes a
	got, err = f.s.ProgressingReleases(f.ctx)
	if err != nil {
		f.Fatalf("ProgressingReleases: %v", err)
	}
	f.same("ProgressingReleases", got, []store.Release{f.release(c.ID), f.release(d.ID), f.release(e.ID)})
	if r := f.release(a.ID); r.Status != store.Superseded {
		f.Errorf("release %d is %s, want Superseded", a.ID, r.Status)
	}
}

func testApprovals(f *fixture) {
	tests := []struct {
		name   string
		in     store.Approval
		want   int // index of the approval to expect back; -1 for in itself
		audits int // audit records after the call
	}{
		{"first", store.Approval{App: "web", Env: "prod", Revision: "r1", Artifact: "sha256:a", User: "ada", Comment: "LGTM ✓", At: t0}, -1, 1},
		{"second user", store.Approval{App: "web", Env: "prod", Revision: "r1", Artifact: "sha256:a", User: "bob", At: t0.Add(time.Minute)}, -1, 2},
		{"first user again", store.Approval{App: "web", Env: "prod", Revision: "r1", Artifact: "sha256:a", User: "ada", Comment: "again", At: t0.Add(time.Hour)}, 0, 2},
		{"another artifact", store.Approval{App: "web", Env: "prod", Revision: "r2", Artifact: "sha256:b", User: "ada"}, -1, 3},
		{"another environment", store.Approval{App: "web", Env: "preprod", Artifact: "sha256:a", User: "ada"}, -1, 4},
		{"another app", store.Approval{App: "api", Env: "prod", Artifact: "sha256:a", User: "ada"}, -1, 5},
		{"user names are exact", store.Approval{App: "web", Env: "prod", Artifact: "sha256:a", User: "Ada", At: t0}, -1, 6},
	}
	var got []store.Approval
	for _, tc := range tests {
		before := time.Now()
		a, err := f.s.AddApproval(f.ctx, tc.in, &store.AuditRecord{Actor: tc.in.User, Action: "approval.added"})
		after := time.Now()
		if err != nil {
			f.Fatalf("%s: AddApproval: %v", tc.name, err)
		}
		want := tc.in
		if tc.want >= 0 {
			want = got[tc.want]
		} else {
			want.ID = a.ID
			if want.At.IsZero() {
				f.within(tc.name+": At", a.At, before, after)
				want.At = a.At
			}
			want.At = utc(want.At)
			for _, g := range got {
				if g.ID >= a.ID {
					f.Errorf("%s: ID %d after %d, want increasing", tc.name, a.ID, g.ID)
				}
			}
		}
		f.same(tc.name+": AddApproval", a, want)
		f.inUTC(tc.name, a.At)
		got = append(got, a)
		if n := len(f.auditRecords()); n != tc.audits {
			f.Errorf("%s: %d audit records, want %d", tc.name, n, tc.audits)
		}
	}
	lists := []struct {
		app, env, artifact string
		want               []store.Approval
	}{
		{"web", "prod", "sha256:a", []store.Approval{got[0], got[1], got[6]}},
		{"web", "prod", "sha256:b", []store.Approval{got[3]}},
		{"web", "preprod", "sha256:a", []store.Approval{got[4]}},
		{"web", "prod", "sha256:c", []store.Approval{}},
		{"web", "dev", "sha256:a", []store.Approval{}},
	}
	for _, tc := range lists {
		as, err := f.s.Approvals(f.ctx, tc.app, tc.env, tc.artifact)
		if err != nil {
			f.Errorf("Approvals(%s, %s, %s): %v", tc.app, tc.env, tc.artifact, err)
			continue
		}
		f.same(fmt.Sprintf("Approvals(%s, %s, %s)", tc.app, tc.env, tc.artifact), append([]store.Approval{}, as...), tc.want)
	}
	// The audit record says what was approved.
	recs := f.verifiedAudit()
	if r := recs[0]; r.Actor != "ada" || r.App != "web" || r.Env != "prod" || r.Revision != "r1" || r.Action != "approval.added" {
		f.Errorf("audit record of the first approval = %+v", r)
	}
}

func testAddApprovalRejects(f *fixture) {
	good := store.Approval{App: "web", Env: "prod", Revision: "r1", Artifact: "sha256:a", User: "ada"}
	tests := []struct {
		name   string
		change func(*store.Approval)
		rec    *store.AuditRecord
	}{
		{"no app", func(a *store.Approval) { a.App = "" }, nil},
		{"no env", func(a *store.Approval) { a.Env = "" }, nil},
		{"no artifact", func(a *store.Approval) { a.Artifact = "" }, nil},
		{"no user", func(a *store.Approval) { a.User = "" }, nil},
		{"an ID", func(a *store.Approval) { a.ID = 3 }, nil},
		{"audit record without actor", func(*store.Approval) {}, &store.AuditRecord{Action: "approval.added"}},
		{"audit detail is not an object", func(*store.Approval) {}, &store.AuditRecord{Actor: "ada", Action: "approval.added", Detail: json.RawMessage(`"x"`)}},
	}
	for _, tc := range tests {
		a := good
		tc.change(&a)
		if got, err := f.s.AddApproval(f.ctx, a, tc.rec); err == nil {
			f.Errorf("%s: AddApproval = %+v, want an error", tc.name, got)
		}
	}
	if as, err := f.s.Approvals(f.ctx, "web", "prod", "sha256:a"); err != nil || len(as) != 0 {
		f.Errorf("Approvals after rejected adds = %+v, %v; want none", as, err)
	}
	if n := len(f.auditRecords()); n != 0 {
		f.Errorf("%d audit records after rejected adds, want 0", n)
	}
}

func testAuditRoundTrip(f *fixture) {
	tests := []struct {
		name   string
		in     store.AuditRecord
		detail string // the canonical Detail to expect
	}{
		{"every field", store.AuditRecord{
			At: t0.Add(789), Actor: "ada", Action: "promotion.committed", App: "web", Env: "prod", Revision: "a1",
			Detail: json.RawMessage(` {"to": "prod", "from": "preprod", "gates": [ {"soak": "1h"} ], "n": 1.50} `),
		}, `{"from":"preprod","gates":[{"soak":"1h"}],"n":1.50,"to":"prod"}`},
		{"actor and action only", store.AuditRecord{Actor: "socle", Action: "socle.started"}, ""},
		{"text of any kind", store.AuditRecord{Actor: "Zoë \"z\" O'Brien", Action: "note", Detail: json.RawMessage(`"ünïcode\n<&>"`)}, `"ünïcode\n<&>"`},
		{"detail null", store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`null`)}, `null`},
	}
	prev := store.AuditRecord{Hash: audit.Genesis}
	for _, tc := range tests {
		before := time.Now()
		got, err := f.s.AppendAudit(f.ctx, tc.in)
		after := time.Now()
		if err != nil {
			f.Fatalf("%s: AppendAudit: %v", tc.name, err)
		}
		want := tc.in
		want.Seq, want.PrevHash, want.Detail = prev.Seq+1, prev.Hash, json.RawMessage(tc.detail)
		if tc.detail == "" {
			want.Detail = nil
		}
		if want.At.IsZero() {
			f.within(tc.name+": At", got.At, before, after)
			want.At = got.At
		}
		want.At = utc(want.At)
		want.Hash = audit.Hash(want)
		f.same(tc.name+": AppendAudit", got, want)
		if string(got.Detail) != tc.detail {
			f.Errorf("%s: Detail = %s, want %s byte for byte: the hash is taken of it", tc.name, got.Detail, tc.detail)
		}
		f.inUTC(tc.name, got.At)
		read, err := f.s.AuditRecords(f.ctx, prev.Seq, 1)
		if err != nil || len(read) != 1 {
			f.Fatalf("%s: AuditRecords(%d, 1) = %+v, %v", tc.name, prev.Seq, read, err)
		}
		f.same(tc.name+": AuditRecords", read[0], want)
		if got := audit.Hash(read[0]); got != read[0].Hash {
			f.Errorf("%s: the record read back hashes to %s, not its hash %s", tc.name, got, read[0].Hash)
		}
		prev = got
	}
	f.verifiedAudit()
}

func testAppendAuditRejects(f *fixture) {
	tests := []struct {
		name string
		in   store.AuditRecord
	}{
		{"no actor", store.AuditRecord{Action: "x"}},
		{"no action", store.AuditRecord{Actor: "ada"}},
		{"detail is not JSON", store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`{"a":`)}},
		{"detail is two documents", store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`{} {}`)}},
		{"a seq", store.AuditRecord{Actor: "ada", Action: "x", Seq: 1}},
		{"a previous hash", store.AuditRecord{Actor: "ada", Action: "x", PrevHash: audit.Genesis}},
		{"a hash", store.AuditRecord{Actor: "ada", Action: "x", Hash: "abc"}},
	}
	for _, tc := range tests {
		if got, err := f.s.AppendAudit(f.ctx, tc.in); err == nil {
			f.Errorf("%s: AppendAudit = %+v, want an error", tc.name, got)
		}
	}
	if n := len(f.auditRecords()); n != 0 {
		f.Errorf("%d audit records after rejected appends, want 0", n)
	}
	// Nothing was consumed: the first record is the first of the chain.
	r, err := f.s.AppendAudit(f.ctx, store.AuditRecord{Actor: "ada", Action: "x"})
	if err != nil || r.Seq != 1 || r.PrevHash != audit.Genesis {
		f.Errorf("AppendAudit after rejected appends = %+v, %v; want seq 1 after the genesis", r, err)
	}
}

func testAuditRecordsPages(f *fixture) {
	const n = 12
	for i := range n {
		if _, err := f.s.AppendAudit(f.ctx, store.AuditRecord{Actor: "ada", Action: fmt.Sprint("a", i+1)}); err != nil {
			f.Fatalf("AppendAudit: %v", err)
		}
	}
	seqs := func(from, to int64) []int64 {
		out := []int64{}
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		after int64
		limit int
		want  []int64
	}{
		{0, 0, seqs(1, n)},
		{0, 5, seqs(1, 5)},
		{5, 5, seqs(6, 10)},
		{10, 5, seqs(11, 12)},
		{12, 5, seqs(1, 0)},
		{-3, 2, seqs(1, 2)},
	}
	for _, tc := range tests {
		rs, err := f.s.AuditRecords(f.ctx, tc.after, tc.limit)
		if err != nil {
			f.Errorf("AuditRecords(%d, %d): %v", tc.after, tc.limit, err)
			continue
		}
		got := []int64{}
		for _, r := range rs {
			got = append(got, r.Seq)
			if r.Action != fmt.Sprint("a", r.Seq) {
				f.Errorf("record %d is %s, want a%d", r.Seq, r.Action, r.Seq)
			}
		}
		f.same(fmt.Sprintf("seqs of AuditRecords(%d, %d)", tc.after, tc.limit), got, tc.want)
	}
	if _, err := f.s.AuditRecords(f.ctx, 0, -1); err == nil {
		f.Errorf("AuditRecords(0, -1) succeeded, want an error")
	}
	f.verifiedAudit()
}

func testAuditWithReleasesAndApprovals(f *fixture) {
	type step struct {
		name string
		do   func(rec *store.AuditRecord) error
		// the audit record to expect appended: its App, Env, Revision and
		// Detail; nil if none
		want *store.AuditRecord
	}
	var a, b store.Release
	steps := []step{
		{"begin", func(rec *store.AuditRecord) (err error) {
			a, err = f.s.BeginRelease(f.ctx, release("web", "prod", "r1"), rec)
			return err
		}, &store.AuditRecord{App: "web", Env: "prod", Revision: "r1", Detail: json.RawMessage(`{"release": 1, "note": "n"}`)}},
		{"begin again: resumed", func(rec *store.AuditRecord) error {
			_, err := f.s.BeginRelease(f.ctx, release("web", "prod", "r1"), rec)
			return err
		}, nil},
		{"begin another target: supersedes", func(rec *store.AuditRecord) (err error) {
			rec.App, rec.Revision = "own-app", "own-rev" // kept
			b, err = f.s.BeginRelease(f.ctx, release("web", "prod", "r2"), rec)
			return err
		}, &store.AuditRecord{App: "own-app", Env: "prod", Revision: "own-rev", Detail: json.RawMessage(`{"release": 2, "superseded": 1, "note": "n"}`)}},
		{"finish", func(rec *store.AuditRecord) error {
			return f.s.FinishRelease(f.ctx, b.ID, store.Succeeded, "healthy", rec)
		}, &store.AuditRecord{App: "web", Env: "prod", Revision: "r2", Detail: json.RawMessage(`{"release": 2, "note": "n"}`)}},
		{"finish again: nothing to do", func(rec *store.AuditRecord) error {
			return f.s.FinishRelease(f.ctx, b.ID, store.Succeeded, "healthy", rec)
		}, nil},
		{"finish otherwise: a conflict", func(rec *store.AuditRecord) error {
			if err := f.s.FinishRelease(f.ctx, a.ID, store.Failed, "", rec); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("FinishRelease of a superseded release: %v, want a conflict", err)
			}
			return nil
		}, nil},
		{"approve", func(rec *store.AuditRecord) error {
			_, err := f.s.AddApproval(f.ctx, store.Approval{App: "web", Env: "prod", Revision: "r2", Artifact: "sha256:r2", User: "ada"}, rec)
			return err
		}, &store.AuditRecord{App: "web", Env: "prod", Revision: "r2", Detail: json.RawMessage(`{"note": "n"}`)}},
		{"approve again", func(rec *store.AuditRecord) error {
			_, err := f.s.AddApproval(f.ctx, store.Approval{App: "web", Env: "prod", Revision: "r2", Artifact: "sha256:r2", User: "ada"}, rec)
			return err
		}, nil},
		{"begin without a record", func(*store.AuditRecord) error {
			_, err := f.s.BeginRelease(f.ctx, release("web", "prod", "r3"), nil)
			return err
		}, nil},
	}
	var want []store.AuditRecord
	for _, s := range steps {
		rec := &store.AuditRecord{Actor: "ada", Action: s.name, Detail: json.RawMessage(`{"note": "n"}`)}
		if err := s.do(rec); err != nil {
			f.Fatalf("%s: %v", s.name, err)
		}
		if s.want != nil {
			w := *s.want
			w.Actor, w.Action = "ada", s.name
			want = append(want, w)
		}
		got := f.verifiedAudit()
		if len(got) != len(want) {
			f.Fatalf("%s: %d audit records, want %d", s.name, len(got), len(want))
		}
		if len(want) == 0 {
			continue
		}
		last, w := got[len(got)-1], want[len(want)-1]
		last.Seq, last.At, last.PrevHash, last.Hash = 0, time.Time{}, "", "" // checked by verifiedAudit
		w.Detail = json.RawMessage(strings.NewReplacer(`"release": 1`, fmt.Sprintf(`"release": %d`, a.ID),
			`"release": 2`, fmt.Sprintf(`"release": %d`, b.ID), `"superseded": 1`, fmt.Sprintf(`"superseded": %d`, a.ID)).Replace(string(w.Detail)))
		f.same(s.name+": audit record", last, w)
	}
}

// testConcurrentAudit appends audit records, alone and with releases and
// approvals, from many goroutines at once: the chain must verify, without
// gap, and hold every record once.
func testConcurrentAudit(f *fixture) {
	const writers, rounds = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			app := fmt.Sprint("app", w)
			for i := range rounds {
				rec := store.AuditRecord{Actor: app, Action: "round", App: app, Detail: json.RawMessage(fmt.Sprintf(`{"round": %d}`, i))}
				var err error
				switch i % 4 {
				case 0:
					_, err = f.s.AppendAudit(f.ctx, rec)
				case 1:
					_, err = f.s.BeginRelease(f.ctx, release(app, "prod", fmt.Sprint("r", i)), &rec)
				case 2:
					var rs []store.Release
					if rs, err = f.s.Releases(f.ctx, store.ReleaseFilter{App: app, Limit: 1}); err == nil {
						err = f.s.FinishRelease(f.ctx, rs[0].ID, store.Succeeded, "", &rec)
					}
				case 3:
					_, err = f.s.AddApproval(f.ctx, store.Approval{App: app, Env: "prod", Artifact: "sha256:x", User: "ada"}, &rec)
				}
				if err != nil {
					errs <- fmt.Errorf("%s round %d: %w", app, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.Errorf("concurrent call: %v", err)
	}
	recs := f.verifiedAudit()
	if len(recs) != writers*rounds {
		f.Fatalf("%d audit records, want %d", len(recs), writers*rounds)
	}
	var got, want []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s %d", r.Actor, int(f.detail(r)["round"].(float64))))
	}
	for w := range writers {
		for i := range rounds {
			want = append(want, fmt.Sprintf("app%d %d", w, i))
		}
	}
	slices.Sort(got)
	f.same("audit records by writer and round", got, want)
}

func testDORA(f *fixture) {
	start := time.Now()
	committed := start.Add(-3 * time.Hour)
	f.putRevisions(store.Revision{SHA: "c1", Time: committed, Valid: true})
	type step struct {
		app, env  string
		trigger   store.Trigger
		status    store.ReleaseStatus // "" leaves it Progressing
		emergency bool
	}
	steps := []step{
		{"web", "prod", store.TriggerSync, store.Succeeded, false},       // 0: deployment
		{"web", "prod", store.TriggerSync, store.Failed, false},          // 1: failure, restored by 2
		{"web", "prod", store.TriggerPromote, store.Succeeded, true},     // 2: deployment, an emergency
		{"web", "prod", store.TriggerSync, store.Succeeded, false},       // 3: deployment, then rolled back: failure restored by 4
		{"web", "prod", store.TriggerRollback, store.Succeeded, true},    // 4: a rollback: not a deployment; an emergency
		{"api", "prod", store.TriggerSync, store.RolledBack, true},       // 5: failure, not restored; an emergency
		{"api", "prod", store.TriggerSync, store.Interrupted, false},     // 6: neither
		{"api", "prod", store.TriggerDeploy, store.Superseded, true},     // 7: neither, nor an emergency that counts
		{"api", "prod", store.TriggerDeploy, "", true},                   // 8: not ended
		{"web", "dev", store.TriggerSync, store.Succeeded, false},        // 9: another environment
		{"web", "dev", store.TriggerSync, store.Failed, false},           // 10: another environment, not restored
		{"db", "prod", store.TriggerSync, store.Succeeded, false},        // 11: no commit time
		{"web", "prod", store.TriggerSync, store.Progressing, false},     // 12: not ended
		{"db", "prod", store.TriggerRollback, store.Progressing, false},  // 13: rolls back 11, not ended: 11 is a failure
		{"web", "preprod", store.TriggerSync, store.Interrupted, false},  // 14: neither
		{"web", "preprod", store.TriggerSync, store.Superseded, false},   // 15: neither
		{"web", "preprod", store.TriggerDeploy, store.Succeeded, true},   // 16: deployment, an emergency
		{"web", "preprod", store.TriggerDeploy, store.RolledBack, false}, // 17: failure, not restored
	}
	rs := make([]store.Release, len(steps))
	for i, s := range steps {
		r := release(s.app, s.env, fmt.Sprint("r", i))
		r.Trigger = s.trigger
		if s.emergency {
			r.Emergency = "INC-" + fmt.Sprint(i)
		}
		switch {
		case s.app == "db":
			r.Revision = "unknown"
		case i%2 == 0:
			r.CommittedAt = start.Add(-time.Duration(i+1) * time.Hour)
		default:
			r.Revision = "c1"
		}
		id := f.begin(r, nil).ID
		if s.status != "" && s.status != store.Progressing {
			f.finish(id, s.status, "")
		}
		rs[i] = f.release(id)
	}
	end := time.Now()
	if rs[4].Previous != rs[3].ID || rs[13].Previous != rs[11].ID {
		f.Fatalf("rollbacks replace releases %d and %d, want %d and %d", rs[4].Previous, rs[13].Previous, rs[3].ID, rs[11].ID)
	}
	lead := func(is ...int) store.Durations {
		var ds []time.Duration
		for _, i := range is {
			ds = append(ds, rs[i].FinishedAt.Sub(rs[i].CommittedAt))
		}
		return durations(ds)
	}
	restore := func(pairs ...[2]int) store.Durations {
		var ds []time.Duration
		for _, p := range pairs {
			ds = append(ds, rs[p[1]].FinishedAt.Sub(rs[p[0]].FinishedAt))
		}
		return durations(ds)
	}
	since := start.Add(-time.Hour)
	day := 24 * time.Hour
	tests := []struct {
		name   string
		filter store.DORAFilter
		want   store.DORAFigures
	}{
		{"production", store.DORAFilter{Env: "prod", Since: since, Until: since.Add(day)}, store.DORAFigures{
			Deployments: 4, DeploymentsPerDay: 4, LeadTime: lead(0, 2, 3),
			Changes: 6, Failures: 4, ChangeFailureRate: 4.0 / 6, TimeToRestore: restore([2]int{1, 2}, [2]int{3, 4}), Unrestored: 2, Emergencies: 3,
		}},
		{"a team's apps", store.DORAFilter{Apps: []string{"api", "db"}, Env: "prod", Since: since, Until: since.Add(2 * day)}, store.DORAFigures{
			Deployments: 1, DeploymentsPerDay: 0.5, Changes: 2, Failures: 2, ChangeFailureRate: 1, Unrestored: 2, Emergencies: 1,
		}},
		{"every environment", store.DORAFilter{Apps: []string{"web"}, Since: since, Until: since.Add(day)}, store.DORAFigures{
			Deployments: 5, DeploymentsPerDay: 5, LeadTime: lead(0, 2, 3, 9, 16),
			Changes: 8, Failures: 4, ChangeFailureRate: 4.0 / 8, TimeToRestore: restore([2]int{1, 2}, [2]int{3, 4}), Unrestored: 2, Emergencies: 3,
		}},
		{"before anything", store.DORAFilter{Env: "prod", Since: since.Add(-day), Until: since}, store.DORAFigures{}},
		{"an app without releases", store.DORAFilter{Apps: []string{"nope"}, Since: since, Until: since.Add(day)}, store.DORAFigures{}},
	}
	for _, tc := range tests {
		got, err := f.s.DORA(f.ctx, tc.filter)
		if err != nil {
			f.Errorf("%s: DORA: %v", tc.name, err)
			continue
		}
		want := tc.want
		want.Since, want.Until = utc(tc.filter.Since), utc(tc.filter.Until)
		f.same(tc.name, got, want)
	}
	// The default period: the 30 days up to now.
	got, err := f.s.DORA(f.ctx, store.DORAFilter{Env: "prod"})
	if err != nil {
		f.Fatalf("DORA with the default period: %v", err)
	}
	f.within("default Until", got.Until, end, time.Now())
	if !got.Since.Equal(got.Until.AddDate(0, 0, -30)) || got.Deployments != 4 || got.Changes != 6 {
		f.Errorf("DORA with the default period = %+v; want 30 days, 4 deployments, 6 changes", got)
	}
	if _, err := f.s.DORA(f.ctx, store.DORAFilter{Since: since, Until: since}); err == nil {
		f.Errorf("DORA of an empty period succeeded, want an error")
	}
}

// durations summarizes ds as store.Durations does.
func durations(ds []time.Duration) store.Durations {
	if len(ds) == 0 {
		return store.Durations{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	median := ds[len(ds)/2]
	if len(ds)%2 == 0 {
		median = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	return store.Durations{N: len(ds), Median: median, Mean: sum / time.Duration(len(ds)), Max: ds[len(ds)-1]}
}

func testReleasesSurviveReopen(f *fixture) {
	a := f.begin(release("web", "prod", "r1"), &store.AuditRecord{Actor: "socle", Action: "release.started"})
	f.finish(a.ID, store.Succeeded, "healthy")
	b := f.begin(release("web", "prod", "r2"), &store.AuditRecord{Actor: "socle", Action: "release.started"})
	if _, err := f.s.AddApproval(f.ctx, store.Approval{App: "web", Env: "prod", Artifact: "sha256:r2", User: "ada", At: t0}, nil); err != nil {
		f.Fatalf("AddApproval: %v", err)
	}
	before := f.snapshot()
	approvals, err := f.s.Approvals(f.ctx, "web", "prod", "sha256:r2")
	if err != nil {
		f.Fatalf("Approvals: %v", err)
	}

	f.reopenStore()
	f.same("store after reopening", f.snapshot(), before)
	if got, err := f.s.Approvals(f.ctx, "web", "prod", "sha256:r2"); err != nil {
		f.Errorf("Approvals after reopening: %v", err)
	} else {
		f.same("approvals after reopening", got, approvals)
	}
	// A restarted socle resumes the release in progress, and the chain goes
	// on from where it was.
	if got := f.begin(release("web", "prod", "r2"), &store.AuditRecord{Actor: "socle", Action: "release.started"}); got.ID != b.ID {
		f.Errorf("BeginRelease after reopening = %d, want the release in progress %d", got.ID, b.ID)
	}
	if err := f.s.FinishRelease(f.ctx, b.ID, store.Succeeded, "", &store.AuditRecord{Actor: "socle", Action: "release.finished"}); err != nil {
		f.Fatalf("FinishRelease after reopening: %v", err)
	}
	if recs := f.verifiedAudit(); len(recs) != 3 {
		f.Errorf("%d audit records, want 3", len(recs))
	}
	if cur, err := f.s.CurrentRelease(f.ctx, "web", "prod"); err != nil || cur.ID != b.ID || cur.Previous != a.ID {
		f.Errorf("CurrentRelease after reopening = %+v, %v; want %d after %d", cur, err, b.ID, a.ID)
	}
}
