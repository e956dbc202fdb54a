package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

// Open returns a Store over a new, empty database of its own, and reopen,
// which returns another Store over the same database (the suite closes the
// first one before). Open is called by parallel tests. The suite closes every
// Store it gets; Open removes the database, if it must, with t.Cleanup.
type Open func(t *testing.T) (s store.Store, reopen func() store.Store)

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		run  func(*fixture)
	}{
		{"RevisionRoundTrip", testRevisionRoundTrip},
		{"RevisionSeenAtSetByStore", testRevisionSeenAtSetByStore},
		{"PutRevisionIsIdempotent", testPutRevisionIsIdempotent},
		{"PutRevisionRejects", testPutRevisionRejects},
		{"RevisionsOrderAndPagination", testRevisionsOrderAndPagination},
		{"LastGoodRevision", testLastGoodRevision},
		{"NotFound", testNotFound},
		{"ApplyDesired", testApplyDesired},
		{"DesiredOrder", testDesiredOrder},
		{"ApplyDesiredIsAtomic", testApplyDesiredIsAtomic},
		{"Plans", testPlans},
		{"EventRoundTrip", testEventRoundTrip},
		{"AppendEventRejects", testAppendEventRejects},
		{"EventFilters", testEventFilters},
		{"EventLimits", testEventLimits},
		{"ConcurrentWriters", testConcurrentWriters},
		{"SurvivesReopen", testSurvivesReopen},
		{"ReleaseRoundTrip", testReleaseRoundTrip},
		{"BeginReleaseResumesOrSupersedes", testBeginReleaseResumesOrSupersedes},
		{"BeginReleaseRejects", testBeginReleaseRejects},
		{"FinishRelease", testFinishRelease},
		{"CurrentRelease", testCurrentRelease},
		{"ReleaseFilters", testReleaseFilters},
		{"ProgressingReleases", testProgressingReleases},
		{"Approvals", testApprovals},
		{"AddApprovalRejects", testAddApprovalRejects},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AppendAuditRejects", testAppendAuditRejects},
		{"AuditRecordsPages", testAuditRecordsPages},
		{"AuditWithReleasesAndApprovals", testAuditWithReleasesAndApprovals},
		{"ConcurrentAudit", testConcurrentAudit},
		{"DORA", testDORA},
		{"ReleasesSurviveReopen", testReleasesSurviveReopen},
		{"Tokens", testTokens},
		{"LastEventID", testLastEventID},
		{"UnitStateRoundTrip", testUnitStateRoundTrip},
		{"UnitStatesOrder", testUnitStatesOrder},
		{"UnitStateRejects", testUnitStateRejects},
		{"UnitStatesConcurrent", testUnitStatesConcurrent},
		{"UnitStatesSurviveReopen", testUnitStatesSurviveReopen},
		{"Pauses", testPauses},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(newFixture(t, open))
		})
	}
}

// fixture is one test's store.
type fixture struct {
	*testing.T
	ctx    context.Context
	open   Open
	s      store.Store
	reopen func() store.Store
}

// newFixture opens a store for t, which closes it at the end.
func newFixture(t *testing.T, open Open) *fixture {
	f := &fixture{T: t, ctx: t.Context(), open: open}
	f.s, f.reopen = open(t)
	t.Cleanup(func() {
		if err := f.s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// fresh returns a fixture for the subtest t with a new store of its own.
func (f *fixture) fresh(t *testing.T) *fixture { return newFixture(t, f.open) }

// sub returns a fixture for the subtest t on f's store.
func (f *fixture) sub(t *testing.T) *fixture {
	return &fixture{T: t, ctx: f.ctx, open: f.open, s: f.s, reopen: f.reopen}
}

// reopenStore closes the store and opens it again.
func (f *fixture) reopenStore() {
	f.Helper()
	if err := f.s.Close(); err != nil {
		f.Fatalf("Close: %v", err)
	}
	f.s = f.reopen()
}

// t0 is an instant with a zone other than UTC, to see that the store returns
// times in UTC.
var t0 = time.Date(2025, 3, 1, 14, 0, 0, 123456000, time.FixedZone("CET", 3600))

// utc is t as a store returns it.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func revision(sha string, valid bool, seen time.Time) store.Revision {
	r := store.Revision{
		SHA: sha, Author: "Ada Lovelace", Email: "ada@example.com",
		Time: t0.Add(-time.Hour), Message: "change " + sha, Valid: valid, SeenAt: seen,
	}
	if !valid {
		r.Problems = json.RawMessage(`[{"file":"apps/web/score.yaml","line":3,"message":"` + sha + ` is bad"}]`)
	}
	return r
}

func (f *fixture) putRevisions(rs ...store.Revision) {
	f.Helper()
	for _, r := range rs {
		if err := f.s.PutRevision(f.ctx, r); err != nil {
			f.Fatalf("PutRevision(%s): %v", r.SHA, err)
		}
	}
}

// same reports a difference between got and want, compared as JSON
// documents: embedded JSON documents are compared by meaning, not by bytes,
// and times must denote the same instant in the same zone.
func (f *fixture) same(what string, got, want any) bool {
	f.Helper()
	g, w := canon(f.T, got), canon(f.T, want)
	if g != w {
		f.Errorf("%s:\n got %s\nwant %s", what, g, w)
		return false
	}
	return true
}

func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshaling %T: %v", v, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	b, err = json.Marshal(x) // maps marshal with sorted keys
	if err != nil {
		t.Fatalf("marshaling %s: %v", b, err)
	}
	return string(b)
}

// inUTC reports times not in time.UTC: a zero offset in another zone is not
// enough, callers compare Location.
func (f *fixture) inUTC(what string, ts ...time.Time) {
	f.Helper()
	for i, t := range ts {
		if t.Location() != time.UTC {
			f.Errorf("%s: time %d is in %v, want UTC", what, i, t.Location())
		}
	}
}

// within reports a time set by the store outside [before, after].
func (f *fixture) within(what string, got, before, after time.Time) {
	f.Helper()
	if got.Before(utc(before)) || got.After(after) {
		f.Errorf("%s = %v, want between %v and %v", what, got, before, after)
	}
}

func testRevisionRoundTrip(f *fixture) {
	tests := []struct {
		name string
		in   store.Revision
	}{
		{"valid", revision("a1", true, t0)},
		{"invalid with problems", store.Revision{
			SHA: "b2", Author: "Grace", Email: "grace@example.com", Time: t0, Message: "bad", SeenAt: t0.Add(time.Minute),
			Problems: json.RawMessage(` [ {"message": "x", "line": 1, "file": "socle.yaml"}, {"a": [1, 2.5, null, true]} ] `),
		}},
		{"invalid without problems", store.Revision{SHA: "c3", SeenAt: t0}},
		{"zero commit time", store.Revision{SHA: "d4", Valid: true, SeenAt: t0}},
		{"nanoseconds are dropped", store.Revision{SHA: "e5", Valid: true, Time: t0.Add(789), SeenAt: t0.Add(999)}},
		{"text of any kind", store.Revision{
			SHA: "f6", Author: "Zoë O'Brien \"zo\"", Email: "", Valid: true, SeenAt: t0,
			Message: "feat: ünïcode ✓\n\nbody; DROP TABLE revisions; --\n\ttail",
		}},
	}
	for _, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			f.putRevisions(tc.in)
			got, err := f.s.Revision(f.ctx, tc.in.SHA)
			if err != nil {
				f.Fatalf("Revision: %v", err)
			}
			want := tc.in
			want.Time, want.SeenAt = utc(want.Time), utc(want.SeenAt)
			f.same("Revision", got, want)
			f.inUTC("Revision", got.Time, got.SeenAt)
			if len(tc.in.Problems) == 0 && got.Problems != nil {
				f.Errorf("Problems = %q, want nil", got.Problems)
			}
		})
	}
}

func testRevisionSeenAtSetByStore(f *fixture) {
	before := time.Now()
	f.putRevisions(revision("a1", true, time.Time{}))
	after := time.Now()
	got, err := f.s.Revision(f.ctx, "a1")
	if err != nil {
		f.Fatalf("Revision: %v", err)
	}
	f.within("SeenAt", got.SeenAt, before, after)
	f.inUTC("SeenAt", got.SeenAt)
}

func testPutRevisionIsIdempotent(f *fixture) {
	first := revision("a1", false, t0)
	f.putRevisions(first)
	again := revision("a1", true, t0.Add(time.Hour))
	again.Author, again.Message = "Someone Else", "rewritten"
	f.putRevisions(again)

	want := first
	want.Valid, want.Problems = true, nil
	want.Time, want.SeenAt = utc(want.Time), utc(want.SeenAt)
	got, err := f.s.Revision(f.ctx, "a1")
	if err != nil {
		f.Fatalf("Revision: %v", err)
	}
	f.same("after a second put, valid", got, want)
	if got.Problems != nil {
		f.Errorf("Problems = %q, want nil", got.Problems)
	}

	third := revision("a1", false, time.Time{})
	third.Problems = json.RawMessage(`["third"]`)
	f.putRevisions(third)
	want.Valid, want.Problems = false, third.Problems
	got, err = f.s.Revision(f.ctx, "a1")
	if err != nil {
		f.Fatalf("Revision: %v", err)
	}
	f.same("after a third put, invalid", got, want)

	all, err := f.s.Revisions(f.ctx, 0, "")
	if err != nil {
		f.Fatalf("Revisions: %v", err)
	}
	f.same("Revisions", all, []store.Revision{want})
}

func testPutRevisionRejects(f *fixture) {
	tests := []struct {
		name string
		in   store.Revision
	}{
		{"no SHA", store.Revision{Valid: true}},
		{"problems are not JSON", store.Revision{SHA: "b2", Problems: json.RawMessage(`[{"line": 3`)}},
		{"problems are not an array", store.Revision{SHA: "b2", Problems: json.RawMessage(`{"line": 3}`)}},
		{"valid with problems", store.Revision{SHA: "b2", Valid: true, Problems: json.RawMessage(`["x"]`)}},
		{"again with problems that are not JSON", store.Revision{SHA: "a1", Problems: json.RawMessage(`[oops]`)}},
	}
	f.putRevisions(revision("a1", true, t0))
	for _, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			before := f.snapshot()
			if err := f.s.PutRevision(f.ctx, tc.in); err == nil {
				f.Errorf("PutRevision(%+v) succeeded, want an error", tc.in)
			}
			f.same("store after the rejected put", f.snapshot(), before)
		})
	}
}

// revisionsInOrder records 14 revisions out of order and returns their SHAs
// in the order Revisions must list them.
func (f *fixture) revisionsInOrder() []string {
	// r01…r12 are seen a minute apart but recorded shuffled; r13 and r14
	// are seen at the same instant as r12 and recorded last, so they come
	// first: the last recorded first.
	for _, i := range []int{5, 1, 9, 3, 12, 7, 2, 11, 4, 10, 6, 8} {
		f.putRevisions(revision(fmt.Sprintf("r%02d", i), i%3 != 0, t0.Add(time.Duration(i)*time.Minute)))
	}
	f.putRevisions(revision("r13", true, t0.Add(12*time.Minute)), revision("r14", false, t0.Add(12*time.Minute)))
	var order []string
	for i := 14; i >= 1; i-- {
		order = append(order, fmt.Sprintf("r%02d", i))
	}
	return order
}

func shas(rs []store.Revision) []string {
	s := []string{}
	for _, r := range rs {
		s = append(s, r.SHA)
	}
	return s
}

func testRevisionsOrderAndPagination(f *fixture) {
	order := f.revisionsInOrder()
	tests := []struct {
		limit  int
		before string
		want   []string
	}{
		{0, "", order},
		{3, "", order[:3]},
		{3, "r14", order[1:4]},
		{3, "r13", order[2:5]},
		{100, "r11", order[4:]},
		{5, "r03", []string{"r02", "r01"}},
		{5, "r01", []string{}},
	}
	for _, tc := range tests {
		got, err := f.s.Revisions(f.ctx, tc.limit, tc.before)
		if err != nil {
			f.Errorf("Revisions(%d, %q): %v", tc.limit, tc.before, err)
			continue
		}
		f.same(fmt.Sprintf("Revisions(%d, %q)", tc.limit, tc.before), shas(got), tc.want)
	}

	// Walking the pages gives every revision once, in order.
	var walked []string
	before := ""
	for range len(order) {
		page, err := f.s.Revisions(f.ctx, 4, before)
		if err != nil {
			f.Fatalf("Revisions(4, %q): %v", before, err)
		}
		if len(page) == 0 {
			break
		}
		walked = append(walked, shas(page)...)
		before = page[len(page)-1].SHA
	}
	f.same("walking pages of 4", walked, order)

	if _, err := f.s.Revisions(f.ctx, -1, ""); err == nil {
		f.Errorf("Revisions(-1, \"\") succeeded, want an error")
	}
}

func testLastGoodRevision(f *fixture) {
	type put struct {
		sha   string
		valid bool
		seen  int // minutes after t0
	}
	tests := []struct {
		name string
		puts []put
		want string // "" = not found
	}{
		{"empty store", nil, ""},
		{"only invalid", []put{{"a", false, 1}, {"b", false, 2}}, ""},
		{"newer invalid is skipped", []put{{"a", true, 1}, {"b", false, 2}}, "a"},
		{"newest valid", []put{{"a", true, 1}, {"b", true, 2}, {"c", false, 3}}, "b"},
		{"by the time seen, not recorded", []put{{"b", true, 2}, {"a", true, 1}}, "b"},
		{"same time seen: last recorded", []put{{"a", true, 1}, {"b", true, 1}}, "b"},
		{"invalid put again as valid", []put{{"a", true, 1}, {"b", false, 2}, {"b", true, 2}}, "b"},
		{"valid put again as invalid", []put{{"a", true, 1}, {"b", true, 2}, {"b", false, 2}}, "a"},
	}
	for _, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Each case its own database: a store never forgets.
			f := f.fresh(t)
			for _, p := range tc.puts {
				f.putRevisions(revision(p.sha, p.valid, t0.Add(time.Duration(p.seen)*time.Minute)))
			}
			got, err := f.s.LastGoodRevision(f.ctx)
			switch {
			case tc.want == "" && !errors.Is(err, store.ErrNotFound):
				f.Errorf("LastGoodRevision = %s, %v; want an error wrapping ErrNotFound", got.SHA, err)
			case tc.want != "" && err != nil:
				f.Errorf("LastGoodRevision: %v", err)
			case tc.want != "" && (got.SHA != tc.want || !got.Valid):
				f.Errorf("LastGoodRevision = %s (valid %t), want %s", got.SHA, got.Valid, tc.want)
			}
		})
	}
}

func testNotFound(f *fixture) {
	f.putRevisions(revision("a1", false, t0))
	unit := store.Desired{App: "web", Env: "dev", Spec: json.RawMessage(`{}`)}
	tests := []struct {
		name string
		call func() error
	}{
		{"Revision", func() error { _, err := f.s.Revision(f.ctx, "nope"); return err }},
		{"Revisions before an unknown SHA", func() error { _, err := f.s.Revisions(f.ctx, 10, "nope"); return err }},
		{"LastGoodRevision with only invalid ones", func() error { _, err := f.s.LastGoodRevision(f.ctx); return err }},
		{"DesiredUnit", func() error { _, err := f.s.DesiredUnit(f.ctx, store.Unit{App: "web", Env: "dev"}); return err }},
		{"Plan", func() error { _, err := f.s.Plan(f.ctx, 4242); return err }},
		{"ApplyDesired of an unknown revision", func() error {
			_, err := f.s.ApplyDesired(f.ctx, "nope", []store.Desired{unit}, nil, store.Plan{}, nil)
			return err
		}},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
			f.Errorf("%s: error %v, want one wrapping ErrNotFound", tc.name, err)
		}
	}
	// Finding nothing in a list is no error.
	if ps, err := f.s.Plans(f.ctx, "nope", 0); err != nil || len(ps) != 0 {
		f.Errorf("Plans of an unknown revision = %v, %v; want none, no error", ps, err)
	}
	if es, err := f.s.Events(f.ctx, store.EventFilter{Kind: "nope"}); err != nil || len(es) != 0 {
		f.Errorf("Events of an unknown kind = %v, %v; want none, no error", es, err)
	}
}

func desired(app, env, rev, spec string) store.Desired {
	return store.Desired{App: app, Env: env, Revision: rev, Hash: "h:" + spec, Spec: json.RawMessage(spec)}
}

func testApplyDesired(f *fixture) {
	f.putRevisions(revision("r1", true, t0), revision("r2", true, t0.Add(time.Minute)))

	before := time.Now()
	set1 := []store.Desired{
		desired("web", "dev", "", `{"image": "web:1", "replicas": 1}`),
		desired("web", "prod", "r1", `{"image": "web:1", "replicas": 3}`),
		desired("api", "dev", "", `{"image": "api:1", "env": {"A": "b"}}`),
	}
	plan1 := store.Plan{Create: 3, Body: json.RawMessage(`{"actions": [{"op": "create", "unit": "web/dev"}], "n": 3}`)}
	events1 := []store.Event{
		{Kind: "plan.recorded", Message: "3 to create", Data: json.RawMessage(`{"create": 3}`)},
		{Kind: "unit.set", App: "web", Env: "dev", Revision: "elsewhere"},
	}
	id1, err := f.s.ApplyDesired(f.ctx, "r1", set1, []store.Unit{{App: "ghost", Env: "dev"}}, plan1, events1)
	if err != nil {
		f.Fatalf("ApplyDesired(r1): %v", err)
	}
	after := time.Now()

	got, err := f.s.Desired(f.ctx)
	if err != nil {
		f.Fatalf("Desired: %v", err)
	}
	if len(got) != 3 {
		f.Fatalf("Desired after r1 = %d units, want 3: %+v", len(got), got)
	}
	want := []store.Desired{set1[2], set1[0], set1[1]} // by app, env
	for i := range want {
		want[i].Revision = "r1"
		f.within("UpdatedAt", got[i].UpdatedAt, before, after)
		f.inUTC("UpdatedAt", got[i].UpdatedAt)
		want[i].UpdatedAt = got[i].UpdatedAt
	}
	f.same("Desired after r1", got, want)
	unit, err := f.s.DesiredUnit(f.ctx, store.Unit{App: "web", Env: "prod"})
	if err != nil {
		f.Fatalf("DesiredUnit: %v", err)
	}
	f.same("DesiredUnit(web/prod)", unit, want[2])

	p, err := f.s.Plan(f.ctx, id1)
	if err != nil {
		f.Fatalf("Plan(%d): %v", id1, err)
	}
	f.within("Plan.CreatedAt", p.CreatedAt, before, after)
	f.inUTC("Plan.CreatedAt", p.CreatedAt)
	wantPlan := plan1
	wantPlan.ID, wantPlan.Revision, wantPlan.CreatedAt = id1, "r1", p.CreatedAt
	f.same("Plan", p, wantPlan)

	es, err := f.s.Events(f.ctx, store.EventFilter{})
	if err != nil {
		f.Fatalf("Events: %v", err)
	}
	if len(es) != 2 {
		f.Fatalf("Events after r1 = %+v, want 2", es)
	}
	wantEvents := slices.Clone(events1)
	wantEvents[0].Revision = "r1" // filled in; the second keeps its own
	for i := range wantEvents {
		f.within("Event.Time", es[i].Time, before, after)
		wantEvents[i].ID, wantEvents[i].Time = es[i].ID, es[i].Time
	}
	f.same("Events after r1", es, wantEvents)
	if es[0].ID >= es[1].ID {
		f.Errorf("event IDs %d, %d do not increase", es[0].ID, es[1].ID)
	}

	// r2 changes web/dev, removes api/dev and leaves web/prod as it was.
	set2 := []store.Desired{desired("web", "dev", "r2", `{"image": "web:2", "replicas": 1}`)}
	plan2 := store.Plan{Revision: "r2", CreatedAt: t0, Update: 1, Delete: 1, Unchanged: 1}
	id2, err := f.s.ApplyDesired(f.ctx, "r2", set2, []store.Unit{{App: "api", Env: "dev"}}, plan2, nil)
	if err != nil {
		f.Fatalf("ApplyDesired(r2): %v", err)
	}
	if id2 <= id1 {
		f.Errorf("plan IDs %d then %d, want increasing", id1, id2)
	}
	got, err = f.s.Desired(f.ctx)
	if err != nil {
		f.Fatalf("Desired: %v", err)
	}
	if len(got) == 2 {
		f.within("UpdatedAt of the changed unit", got[0].UpdatedAt, after, time.Now())
		set2[0].UpdatedAt = got[0].UpdatedAt
	}
	f.same("Desired after r2", got, []store.Desired{set2[0], want[2]})
	p, err = f.s.Plan(f.ctx, id2)
	if err != nil {
		f.Fatalf("Plan(%d): %v", id2, err)
	}
	plan2.ID, plan2.CreatedAt = id2, utc(t0)
	f.same("Plan with its own time, no body", p, plan2)
	if p.Body != nil {
		f.Errorf("Plan.Body = %q, want nil", p.Body)
	}
	if _, err := f.s.DesiredUnit(f.ctx, store.Unit{App: "api", Env: "dev"}); !errors.Is(err, store.ErrNotFound) {
		f.Errorf("DesiredUnit(api/dev) after its removal: %v, want ErrNotFound", err)
	}
}

func testDesiredOrder(f *fixture) {
	f.putRevisions(revision("r1", true, t0))
	// Bytewise: upper case before '_' before lower case.
	var set []store.Desired
	for _, u := range []string{"alpha/prod", "Zeta/dev", "alpha/dev", "_infra/dev", "alpha/Prod", "alph/dev"} {
		app, env, _ := strings.Cut(u, "/")
		set = append(set, desired(app, env, "", `{}`))
	}
	if _, err := f.s.ApplyDesired(f.ctx, "r1", set, nil, store.Plan{}, nil); err != nil {
		f.Fatalf("ApplyDesired: %v", err)
	}
	got, err := f.s.Desired(f.ctx)
	if err != nil {
		f.Fatalf("Desired: %v", err)
	}
	var units []string
	for _, d := range got {
		units = append(units, d.App+"/"+d.Env)
	}
	f.same("Desired order", units, []string{"Zeta/dev", "_infra/dev", "alph/dev", "alpha/Prod", "alpha/dev", "alpha/prod"})
}

// applyArgs are the arguments of one ApplyDesired call.
type applyArgs struct {
	ctx      context.Context
	revision string
	set      []store.Desired
	remove   []store.Unit
	plan     store.Plan
	events   []store.Event
}

func (f *fixture) apply(a applyArgs) (int64, error) {
	return f.s.ApplyDesired(a.ctx, a.revision, a.set, a.remove, a.plan, a.events)
}

// snapshot is everything the store holds, as a comparable string.
func (f *fixture) snapshot() string {
	f.Helper()
	revs, err := f.s.Revisions(f.ctx, store.MaxLimit, "")
	if err != nil {
		f.Fatalf("Revisions: %v", err)
	}
	ds, err := f.s.Desired(f.ctx)
	if err != nil {
		f.Fatalf("Desired: %v", err)
	}
	ps, err := f.s.Plans(f.ctx, "", store.MaxLimit)
	if err != nil {
		f.Fatalf("Plans: %v", err)
	}
	for i, p := range ps {
		if ps[i], err = f.s.Plan(f.ctx, p.ID); err != nil {
			f.Fatalf("Plan(%d): %v", p.ID, err)
		}
	}
	es, err := f.s.Events(f.ctx, store.EventFilter{Limit: store.MaxLimit})
	if err != nil {
		f.Fatalf("Events: %v", err)
	}
	rels, err := f.s.Releases(f.ctx, store.ReleaseFilter{Limit: store.MaxLimit})
	if err != nil {
		f.Fatalf("Releases: %v", err)
	}
	return canon(f.T, map[string]any{"revisions": revs, "desired": ds, "plans": ps, "events": es,
		"releases": rels, "audit": f.auditRecords()})
}

func testApplyDesiredIsAtomic(f *fixture) {
	cancelled, cancel := context.WithCancel(f.ctx)
	cancel()
	tests := []struct {
		name   string
		mutate func(a *applyArgs)
	}{
		{"invalid JSON in the last event", func(a *applyArgs) { a.events[2].Data = json.RawMessage(`{"n": `) }},
		{"event without kind", func(a *applyArgs) { a.events[1].Kind = "" }},
		{"invalid JSON in the plan", func(a *applyArgs) { a.plan.Body = json.RawMessage(`[1, 2`) }},
		{"invalid JSON in the last unit", func(a *applyArgs) { a.set[2].Spec = json.RawMessage(`{"image": web}`) }},
		{"unit without spec", func(a *applyArgs) { a.set[1].Spec = nil }},
		{"unit without env", func(a *applyArgs) { a.set[1].Env = "" }},
		{"unit twice in set", func(a *applyArgs) { a.set = append(a.set, a.set[0]) }},
		{"unit both set and removed", func(a *applyArgs) { a.remove = append(a.remove, a.set[2].Unit()) }},
		{"unit from another revision", func(a *applyArgs) { a.set[2].Revision = "r1" }},
		{"plan of another revision", func(a *applyArgs) { a.plan.Revision = "r1" }},
		{"unknown revision", func(a *applyArgs) { a.revision = "r9" }},
		{"no revision", func(a *applyArgs) { a.revision = "" }},
		{"cancelled context", func(a *applyArgs) { a.ctx = cancelled }},
	}
	for _, tc := range tests {
		f.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := f.fresh(t)
			f.putRevisions(revision("r1", true, t0), revision("r2", true, t0.Add(time.Minute)))
			if _, err := f.s.ApplyDesired(f.ctx, "r1", []store.Desired{
				desired("web", "dev", "", `{"v": 1}`), desired("api", "dev", "", `{"v": 1}`),
			}, nil, store.Plan{Create: 2, Body: json.RawMessage(`{}`)}, []store.Event{{Kind: "plan.recorded"}}); err != nil {
				f.Fatalf("ApplyDesired(r1): %v", err)
			}
			good := func() applyArgs {
				return applyArgs{
					ctx:      f.ctx,
					revision: "r2",
					set: []store.Desired{
						desired("web", "dev", "", `{"v": 2}`), desired("new", "dev", "r2", `{"v": 2}`),
						desired("new", "prod", "", `{"v": 2}`),
					},
					remove: []store.Unit{{App: "api", Env: "dev"}},
					plan:   store.Plan{Create: 2, Update: 1, Delete: 1, Body: json.RawMessage(`{"r": 2}`)},
					events: []store.Event{{Kind: "unit.set"}, {Kind: "unit.removed"}, {Kind: "plan.recorded", Data: json.RawMessage(`{"n": 4}`)}},
				}
			}
			before := f.snapshot()
			bad := good()
			tc.mutate(&bad)
			if _, err := f.apply(bad); err == nil {
				f.Fatalf("ApplyDesired succeeded, want an error")
			}
			f.same("store after the failed apply", f.snapshot(), before)

			// The failure left nothing behind that stops the next apply.
			if _, err := f.apply(good()); err != nil {
				f.Fatalf("ApplyDesired after the failure: %v", err)
			}
			if ds, err := f.s.Desired(f.ctx); err != nil || len(ds) != 3 {
				f.Errorf("Desired after the good apply = %+v, %v; want 3 units", ds, err)
			}
		})
	}
}

func testPlans(f *fixture) {
	f.putRevisions(revision("r1", true, t0), revision("r2", true, t0.Add(time.Minute)))
	var want []store.Plan // in the order recorded
	for i, rev := range []string{"r1", "r2", "r1", "r1", "r2"} {
		p := store.Plan{Revision: rev, CreatedAt: t0.Add(time.Duration(i) * time.Second), Create: i, Update: 2 * i, Delete: 3 * i, Unchanged: 4 * i}
		p.Body = json.RawMessage(fmt.Sprintf(`{"plan": %d}`, i))
		id, err := f.s.ApplyDesired(f.ctx, rev, nil, nil, p, nil)
		if err != nil {
			f.Fatalf("ApplyDesired(%s): %v", rev, err)
		}
		p.ID, p.CreatedAt, p.Body = id, utc(p.CreatedAt), nil // Plans leaves bodies out
		want = append(want, p)
	}
	newest := func(ps ...store.Plan) []store.Plan { return append([]store.Plan{}, ps...) }
	tests := []struct {
		revision string
		limit    int
		want     []store.Plan
	}{
		{"", 0, newest(want[4], want[3], want[2], want[1], want[0])},
		{"", 2, newest(want[4], want[3])},
		{"r1", 0, newest(want[3], want[2], want[0])},
		{"r2", 1, newest(want[4])},
		{"r3", 0, newest()},
	}
	for _, tc := range tests {
		got, err := f.s.Plans(f.ctx, tc.revision, tc.limit)
		if err != nil {
			f.Errorf("Plans(%q, %d): %v", tc.revision, tc.limit, err)
			continue
		}
		f.same(fmt.Sprintf("Plans(%q, %d)", tc.revision, tc.limit), append([]store.Plan{}, got...), tc.want)
		for _, p := range got {
			if p.Body != nil {
				f.Errorf("Plans(%q, %d): plan %d has a body", tc.revision, tc.limit, p.ID)
			}
			f.inUTC("Plan.CreatedAt", p.CreatedAt)
		}
	}
	if _, err := f.s.Plans(f.ctx, "", -1); err == nil {
		f.Errorf("Plans(\"\", -1) succeeded, want an error")
	}
}

func testEventRoundTrip(f *fixture) {
	tests := []struct {
		name string
		in   store.Event
	}{
		{"full", store.Event{
			Time: t0, Kind: "revision.invalid", App: "web", Env: "prod", Revision: "a1", Message: "2 problems",
			Data: json.RawMessage(`{"problems": [{"line": 3}], "count": 2, "big": 12345678901234567890}`),
		}},
		{"kind only", store.Event{Kind: "socle.started"}},
		{"array data", store.Event{Kind: "x", Data: json.RawMessage(` [1, "two", {"3": null}] `)}},
		{"text of any kind", store.Event{Kind: "note", Message: "ünïcode ✓\n'quoted' \"twice\"", Data: json.RawMessage(`"\u00e9"`)}},
	}
	var last int64
	for _, tc := range tests {
		before := time.Now()
		id, err := f.s.AppendEvent(f.ctx, tc.in)
		if err != nil {
			f.Fatalf("%s: AppendEvent: %v", tc.name, err)
		}
		after := time.Now()
		if id <= last {
			f.Errorf("%s: ID %d after %d, want increasing", tc.name, id, last)
		}
		last = id
		got, err := f.s.Events(f.ctx, store.EventFilter{AfterID: id - 1, Limit: 1})
		if err != nil || len(got) != 1 {
			f.Fatalf("%s: Events after %d = %+v, %v; want 1 event", tc.name, id-1, got, err)
		}
		want := tc.in
		want.ID = id
		if want.Time.IsZero() {
			f.within(tc.name+": Time", got[0].Time, before, after)
			want.Time = got[0].Time
		}
		want.Time = utc(want.Time)
		f.same(tc.name, got[0], want)
		f.inUTC(tc.name, got[0].Time)
		if tc.in.Data == nil && got[0].Data != nil {
			f.Errorf("%s: Data = %q, want nil", tc.name, got[0].Data)
		}
	}
}

func testAppendEventRejects(f *fixture) {
	tests := []struct {
		name string
		in   store.Event
	}{
		{"no kind", store.Event{Message: "what happened?"}},
		{"data is not JSON", store.Event{Kind: "x", Data: json.RawMessage(`{"a":`)}},
		{"data is two documents", store.Event{Kind: "x", Data: json.RawMessage(`{} {}`)}},
	}
	for _, tc := range tests {
		if id, err := f.s.AppendEvent(f.ctx, tc.in); err == nil {
			f.Errorf("%s: AppendEvent = %d, want an error", tc.name, id)
		}
	}
	if es, err := f.s.Events(f.ctx, store.EventFilter{}); err != nil || len(es) != 0 {
		f.Errorf("Events after rejected appends = %+v, %v; want none", es, err)
	}
}

func testEventFilters(f *fixture) {
	in := []store.Event{
		{Kind: "revision.valid", Revision: "a1"},
		{Kind: "unit.synced", App: "web", Env: "dev"},
		{Kind: "unit.synced", App: "web", Env: "prod"},
		{Kind: "unit.failed", App: "api", Env: "dev"},
		{Kind: "unit.synced", App: "api", Env: "dev"},
		{Kind: "revision.invalid", Revision: "b2"},
		{Kind: "unit.synced", App: "web", Env: "dev"},
		{Kind: "unit.failed", App: "web", Env: "prod"},
	}
	ids := make([]int64, len(in))
	for i, e := range in {
		e.Message = fmt.Sprint(i)
		var err error
		if ids[i], err = f.s.AppendEvent(f.ctx, e); err != nil {
			f.Fatalf("AppendEvent: %v", err)
		}
	}
	tests := []struct {
		name   string
		filter store.EventFilter
		want   []int // indices into in
	}{
		{"all", store.EventFilter{}, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"after", store.EventFilter{AfterID: ids[4]}, []int{5, 6, 7}},
		{"after the last", store.EventFilter{AfterID: ids[7]}, []int{}},
		{"kind", store.EventFilter{Kind: "unit.synced"}, []int{1, 2, 4, 6}},
		{"kind is matched exactly", store.EventFilter{Kind: "unit"}, []int{}},
		{"app", store.EventFilter{App: "web"}, []int{1, 2, 6, 7}},
		{"env", store.EventFilter{Env: "dev"}, []int{1, 3, 4, 6}},
		{"app and env", store.EventFilter{App: "web", Env: "prod"}, []int{2, 7}},
		{"kind, app and env", store.EventFilter{Kind: "unit.synced", App: "web", Env: "dev"}, []int{1, 6}},
		{"limit", store.EventFilter{Limit: 3}, []int{0, 1, 2}},
		{"after, kind and limit", store.EventFilter{AfterID: ids[1], Kind: "unit.synced", Limit: 2}, []int{2, 4}},
		{"nothing matches", store.EventFilter{App: "web", Kind: "revision.valid"}, []int{}},
	}
	for _, tc := range tests {
		got, err := f.s.Events(f.ctx, tc.filter)
		if err != nil {
			f.Errorf("%s: Events(%+v): %v", tc.name, tc.filter, err)
			continue
		}
		gotIDs, wantIDs := []int64{}, []int64{}
		for _, e := range got {
			gotIDs = append(gotIDs, e.ID)
		}
		for _, i := range tc.want {
			wantIDs = append(wantIDs, ids[i])
		}
		f.same(fmt.Sprintf("%s: IDs of Events(%+v)", tc.name, tc.filter), gotIDs, wantIDs)
	}
}

func testEventLimits(f *fixture) {
	f.putRevisions(revision("r1", true, t0))
	events := make([]store.Event, store.MaxLimit+5)
	for i := range events {
		events[i] = store.Event{Kind: "tick", Message: fmt.Sprint(i)}
	}
	if _, err := f.s.ApplyDesired(f.ctx, "r1", nil, nil, store.Plan{}, events); err != nil {
		f.Fatalf("ApplyDesired with %d events: %v", len(events), err)
	}
	tests := []struct{ limit, want int }{
		{0, store.DefaultLimit},
		{7, 7},
		{store.MaxLimit, store.MaxLimit},
		{store.MaxLimit + 1, store.MaxLimit},
		{1 << 30, store.MaxLimit},
	}
	for _, tc := range tests {
		got, err := f.s.Events(f.ctx, store.EventFilter{Limit: tc.limit})
		if err != nil {
			f.Errorf("Events(Limit %d): %v", tc.limit, err)
			continue
		}
		if len(got) != tc.want {
			f.Errorf("Events(Limit %d) = %d events, want %d", tc.limit, len(got), tc.want)
			continue
		}
		// The first ones, in the order appended.
		for i, e := range got {
			if e.Message != fmt.Sprint(i) || (i > 0 && e.ID <= got[i-1].ID) {
				f.Errorf("Events(Limit %d)[%d] = ID %d, message %q; want message %q after ID %d",
					tc.limit, i, e.ID, e.Message, fmt.Sprint(i), got[max(i-1, 0)].ID)
				break
			}
		}
	}
	if _, err := f.s.Events(f.ctx, store.EventFilter{Limit: -1}); err == nil {
		f.Errorf("Events(Limit -1) succeeded, want an error")
	}
}

// testConcurrentWriters runs writers of every kind at once, with readers and a
// follower of the event log beside them. No call may fail, and the follower
// must see every event: IDs become visible in increasing order.
func testConcurrentWriters(f *fixture) {
	const writers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range writers {
		wg.Go(func() {
			app := fmt.Sprintf("app%d", w)
			for i := range rounds {
				sha := fmt.Sprintf("%s-%d", app, i)
				if err := f.s.PutRevision(f.ctx, revision(sha, true, time.Time{})); err != nil {
					errs <- err
					return
				}
				set := []store.Desired{desired(app, fmt.Sprint("env", i%3), "", fmt.Sprintf(`{"round": %d}`, i))}
				if _, err := f.s.ApplyDesired(f.ctx, sha, set, nil, store.Plan{Update: 1}, []store.Event{{Kind: "plan.recorded", App: app}}); err != nil {
					errs <- err
					return
				}
				if _, err := f.s.AppendEvent(f.ctx, store.Event{Kind: "unit.synced", App: app}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := f.s.Desired(f.ctx); err != nil {
				errs <- err
				return
			}
			if _, err := f.s.Revisions(f.ctx, 10, ""); err != nil {
				errs <- err
				return
			}
		}
	})
	var followed []int64
	follow := func(cursor int64) (int64, error) {
		es, err := f.s.Events(f.ctx, store.EventFilter{AfterID: cursor, Limit: store.MaxLimit})
		for _, e := range es {
			followed = append(followed, e.ID)
			cursor = e.ID
		}
		return cursor, err
	}
	readers.Go(func() {
		var cursor int64
		var err error
		for {
			select {
			case <-done:
				return
			default:
			}
			if cursor, err = follow(cursor); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		f.Errorf("concurrent call: %v", err)
	}

	all, err := f.s.Events(f.ctx, store.EventFilter{Limit: store.MaxLimit})
	if err != nil {
		f.Fatalf("Events: %v", err)
	}
	if len(all) != 2*writers*rounds {
		f.Errorf("%d events, want %d", len(all), 2*writers*rounds)
	}
	var ids []int64
	for _, e := range all {
		ids = append(ids, e.ID)
	}
	var last int64
	if len(followed) > 0 {
		last = followed[len(followed)-1]
	}
	if _, err := follow(last); err != nil {
		f.Fatalf("Events: %v", err)
	}
	f.same("IDs the follower saw", followed, ids)

	revs, err := f.s.Revisions(f.ctx, store.MaxLimit, "")
	if err != nil || len(revs) != writers*rounds {
		f.Errorf("Revisions = %d, %v; want %d", len(revs), err, writers*rounds)
	}
	plans, err := f.s.Plans(f.ctx, "", store.MaxLimit)
	if err != nil || len(plans) != writers*rounds {
		f.Errorf("Plans = %d, %v; want %d", len(plans), err, writers*rounds)
	}
	ds, err := f.s.Desired(f.ctx)
	if err != nil {
		f.Fatalf("Desired: %v", err)
	}
	var got, want []string
	for _, d := range ds {
		got = append(got, d.App+"/"+d.Env+"@"+d.Revision)
	}
	for w := range writers {
		for env := range 3 {
			last := rounds - 1 - (rounds-1-env)%3 // the last round that wrote env
			want = append(want, fmt.Sprintf("app%d/env%d@app%d-%d", w, env, w, last))
		}
	}
	f.same("Desired after concurrent applies", got, want)
}

func testSurvivesReopen(f *fixture) {
	f.putRevisions(revision("r1", true, t0), revision("r2", false, time.Time{}))
	id, err := f.s.ApplyDesired(f.ctx, "r1", []store.Desired{desired("web", "dev", "", `{"a": [1, 2]}`)}, nil,
		store.Plan{Create: 1, Body: json.RawMessage(`{"b": true}`)}, []store.Event{{Kind: "plan.recorded", Data: json.RawMessage(`{}`)}})
	if err != nil {
		f.Fatalf("ApplyDesired: %v", err)
	}
	last, err := f.s.AppendEvent(f.ctx, store.Event{Kind: "revision.invalid", Revision: "r2"})
	if err != nil {
		f.Fatalf("AppendEvent: %v", err)
	}
	before := f.snapshot()

	f.reopenStore()
	f.same("store after reopening", f.snapshot(), before)
	if p, err := f.s.Plan(f.ctx, id); err != nil || p.Create != 1 {
		f.Errorf("Plan(%d) after reopening = %+v, %v", id, p, err)
	}
	// And it goes on from where it was.
	next, err := f.s.AppendEvent(f.ctx, store.Event{Kind: "socle.started"})
	if err != nil {
		f.Fatalf("AppendEvent after reopening: %v", err)
	}
	if next <= last {
		f.Errorf("event ID %d after reopening, want more than %d", next, last)
	}
}
