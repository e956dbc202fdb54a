package contract

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus h hours.
func at(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }

func TestDORA(t *testing.T) {
	type rel struct {
		id        int64
		unit      string // app, env "prod"
		trigger   store.Trigger
		status    store.ReleaseStatus
		committed float64 // hours after t0; 0: unknown
		finished  float64 // hours after t0; 0: not finished
		previous  int64
	}
	since, until := at(10), at(58) // two days
	tests := []struct {
		name string
		rs   []rel
		want store.DORAFigures
	}{
		{"nothing", nil, store.DORAFigures{}},
		{"at the bounds: since counts, until does not", []rel{
			{1, "web", store.TriggerSync, store.Succeeded, 9, 10, 0},
			{2, "web", store.TriggerSync, store.Succeeded, 9, 58, 0},
		}, store.DORAFigures{Deployments: 1, DeploymentsPerDay: 0.5, Changes: 1,
			LeadTime: store.Durations{N: 1, Median: time.Hour, Mean: time.Hour, Max: time.Hour}}},
		{"lead times: median of an even count, unknown commit left out, negative as zero", []rel{
			{1, "web", store.TriggerSync, store.Succeeded, 11, 12, 0},    // 1h
			{2, "web", store.TriggerPromote, store.Succeeded, 11, 15, 0}, // 4h
			{3, "api", store.TriggerDeploy, store.Succeeded, 0, 20, 0},   // unknown
			{4, "api", store.TriggerSync, store.Succeeded, 31, 30, 0},    // committed after: 0
			{5, "db", store.TriggerSync, store.Succeeded, 20, 30, 0},     // 10h
		}, store.DORAFigures{Deployments: 5, DeploymentsPerDay: 2.5, Changes: 5,
			LeadTime: store.Durations{N: 4, Median: 150 * time.Minute, Mean: 15 * time.Hour / 4, Max: 10 * time.Hour}}},
		{"failures and restores", []rel{
			{1, "web", store.TriggerSync, store.Failed, 0, 12, 0},        // failure, restored by 3 in 8h
			{2, "web", store.TriggerSync, store.Superseded, 0, 13, 0},    // neither
			{3, "web", store.TriggerSync, store.Succeeded, 0, 20, 0},     // deployment, rolled back by 4: failure restored in 1h
			{4, "web", store.TriggerRollback, store.Succeeded, 0, 21, 3}, // restore, not a change
			{5, "api", store.TriggerSync, store.RolledBack, 0, 30, 0},    // failure, restored by 7 after until
			{6, "api", store.TriggerSync, store.Interrupted, 0, 40, 0},   // neither
			{7, "api", store.TriggerSync, store.Succeeded, 0, 70, 0},     // after until: not counted
			{8, "db", store.TriggerSync, store.Failed, 0, 50, 0},         // failure, unrestored
			{9, "db", store.TriggerSync, store.Progressing, 0, 0, 0},     // not ended
		}, store.DORAFigures{Deployments: 1, DeploymentsPerDay: 0.5, Changes: 4, Failures: 4, ChangeFailureRate: 1,
			TimeToRestore: store.Durations{N: 3, Median: 8 * time.Hour, Mean: 49 * time.Hour / 3, Max: 40 * time.Hour}, Unrestored: 1}},
		{"a failure before the period is not counted, nor its restore", []rel{
			{1, "web", store.TriggerSync, store.Failed, 0, 5, 0},
			{2, "web", store.TriggerSync, store.Succeeded, 0, 11, 0},
		}, store.DORAFigures{Deployments: 1, DeploymentsPerDay: 0.5, Changes: 1}},
		{"a rollback that has not ended still marks a failure", []rel{
			{1, "web", store.TriggerSync, store.Succeeded, 0, 12, 0},
			{2, "web", store.TriggerRollback, store.Progressing, 0, 0, 1},
		}, store.DORAFigures{Deployments: 1, DeploymentsPerDay: 0.5, Changes: 1, Failures: 1, ChangeFailureRate: 1, Unrestored: 1}},
		{"units are apart: a success elsewhere restores nothing", []rel{
			{1, "web", store.TriggerSync, store.Failed, 0, 12, 0},
			{2, "api", store.TriggerSync, store.Succeeded, 0, 13, 0},
		}, store.DORAFigures{Deployments: 1, DeploymentsPerDay: 0.5, Changes: 2, Failures: 1, ChangeFailureRate: 0.5, Unrestored: 1}},
	}
	for _, tc := range tests {
		var rs []store.Release
		// In reverse, to see that the order given does not matter.
		for i := len(tc.rs) - 1; i >= 0; i-- {
			r := tc.rs[i]
			sr := store.Release{ID: r.id, App: r.unit, Env: "prod", Trigger: r.trigger, Status: r.status, Previous: r.previous, StartedAt: at(1)}
			if r.committed != 0 {
				sr.CommittedAt = at(r.committed)
			}
			if r.finished != 0 {
				sr.FinishedAt = at(r.finished)
			}
			rs = append(rs, sr)
		}
		got := DORA(rs, since, until)
		want := tc.want
		want.Since, want.Until = since, until
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}
}

func TestDORAPeriod(t *testing.T) {
	now := t0.Add(789 * time.Nanosecond)
	tests := []struct {
		name               string
		f                  store.DORAFilter
		wantSince, wantEnd time.Time
		err                bool
	}{
		{"defaults", store.DORAFilter{}, t0.AddDate(0, 0, -30), t0, false},
		{"since only", store.DORAFilter{Since: at(-5)}, at(-5), t0, false},
		{"until only", store.DORAFilter{Until: at(-5)}, at(-5).AddDate(0, 0, -30), at(-5), false},
		{"both, in another zone", store.DORAFilter{Since: at(1).In(time.FixedZone("X", 3600)), Until: at(2)}, at(1), at(2), false},
		{"empty", store.DORAFilter{Since: at(1), Until: at(1)}, time.Time{}, time.Time{}, true},
		{"backwards", store.DORAFilter{Since: at(2), Until: at(1)}, time.Time{}, time.Time{}, true},
	}
	for _, tc := range tests {
		since, until, err := DORAPeriod(tc.f, now)
		if tc.err {
			if err == nil {
				t.Errorf("%s: DORAPeriod = %v, %v; want an error", tc.name, since, until)
			}
			continue
		}
		if err != nil || !since.Equal(tc.wantSince) || !until.Equal(tc.wantEnd) || since.Location() != time.UTC {
			t.Errorf("%s: DORAPeriod = %v, %v, %v; want %v, %v in UTC", tc.name, since, until, err, tc.wantSince, tc.wantEnd)
		}
	}
}

func TestAuditOf(t *testing.T) {
	tests := []struct {
		name string
		in   store.AuditRecord
		keys map[string]int64
		want store.AuditRecord
		err  bool
	}{
		{"filled in", store.AuditRecord{Actor: "ada", Action: "x"}, map[string]int64{"release": 7, "superseded": 0},
			store.AuditRecord{Actor: "ada", Action: "x", App: "web", Env: "prod", Revision: "r1", Detail: json.RawMessage(`{"release":7}`)}, false},
		{"own fields kept, detail merged", store.AuditRecord{Actor: "ada", Action: "x", App: "api", Revision: "r0", Detail: json.RawMessage(`{"why": "fix", "release": 1}`)},
			map[string]int64{"release": 7, "superseded": 3},
			store.AuditRecord{Actor: "ada", Action: "x", App: "api", Env: "prod", Revision: "r0", Detail: json.RawMessage(`{"release":7,"superseded":3,"why":"fix"}`)}, false},
		{"nothing to add", store.AuditRecord{Actor: "ada", Action: "x"}, nil,
			store.AuditRecord{Actor: "ada", Action: "x", App: "web", Env: "prod", Revision: "r1"}, false},
		{"detail is an array", store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`[1]`)}, nil, store.AuditRecord{}, true},
		{"detail is null", store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`null`)}, nil, store.AuditRecord{}, true},
		{"detail is not JSON", store.AuditRecord{Actor: "ada", Action: "x", Detail: json.RawMessage(`{`)}, nil, store.AuditRecord{}, true},
	}
	for _, tc := range tests {
		got, err := AuditOf(tc.in, "web", "prod", "r1", tc.keys)
		if tc.err {
			if err == nil {
				t.Errorf("%s: AuditOf = %+v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: AuditOf = %+v (detail %s), %v\nwant %+v (detail %s)", tc.name, got, got.Detail, err, tc.want, tc.want.Detail)
		}
	}
}
