// Package contract holds the parts of the store.Store contract that every
// implementation enforces the same way, in Go rather than in SQL: how times
// are kept, how list limits are read, which arguments are rejected before
// anything is written, how an audit record is completed for the release or
// approval it goes with, and how DORA figures are computed from releases;
// and, for the cost stores (cost.go), which stored view an import joins or
// replaces and the SQL of each cost dimension. JSON validity is left to the
// database, which checks it where the document is written.
package contract

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

// Time returns t as every store keeps it: in UTC, truncated to the
// microsecond (the precision of PostgreSQL's timestamptz).
func Time(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// TimeOr returns Time(t), or Time(now) if t is zero.
func TimeOr(t, now time.Time) time.Time {
	if t.IsZero() {
		return Time(now)
	}
	return Time(t)
}

// Limit reads the limit of a list method: 0 means store.DefaultLimit and
// anything above store.MaxLimit means store.MaxLimit.
func Limit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("negative limit %d", n)
	case n == 0:
		return store.DefaultLimit, nil
	case n > store.MaxLimit:
		return store.MaxLimit, nil
	}
	return n, nil
}

// CheckRevision rejects a revision without a SHA, or valid with problems.
func CheckRevision(r store.Revision) error {
	if r.SHA == "" {
		return errors.New("revision without SHA")
	}
	if r.Valid && len(r.Problems) > 0 {
		return fmt.Errorf("revision %s is valid but has problems", r.SHA)
	}
	return nil
}

// CheckEvent rejects an event without a kind.
func CheckEvent(e store.Event) error {
	if e.Kind == "" {
		return errors.New("event without kind")
	}
	return nil
}

// CheckApply rejects the arguments of store.Store.ApplyDesired that name no
// revision, disagree on it, name a unit without app or environment, or name a
// unit twice.
func CheckApply(revision string, set []store.Desired, remove []store.Unit, plan store.Plan, events []store.Event) error {
	if revision == "" {
		return errors.New("no revision")
	}
	if plan.Revision != "" && plan.Revision != revision {
		return fmt.Errorf("plan is for revision %s", plan.Revision)
	}
	seen := make(map[store.Unit]string, len(set)+len(remove))
	check := func(where string, u store.Unit) error {
		if u.App == "" || u.Env == "" {
			return fmt.Errorf("%s: unit %q/%q: app and environment are required", where, u.App, u.Env)
		}
		if first, ok := seen[u]; ok {
			return fmt.Errorf("%s: unit %s/%s already in %s", where, u.App, u.Env, first)
		}
		seen[u] = where
		return nil
	}
	for i, d := range set {
		where := fmt.Sprintf("set[%d]", i)
		if err := check(where, d.Unit()); err != nil {
			return err
		}
		if d.Revision != "" && d.Revision != revision {
			return fmt.Errorf("%s: unit %s/%s is from revision %s", where, d.App, d.Env, d.Revision)
		}
	}
	for i, u := range remove {
		if err := check(fmt.Sprintf("remove[%d]", i), u); err != nil {
			return err
		}
	}
	for i, e := range events {
		if err := CheckEvent(e); err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	return nil
}

// CheckRelease rejects the arguments of store.Store.BeginRelease that lack
// an app, an environment, a revision or a known trigger, or that describe a
// release already recorded or ended.
func CheckRelease(r store.Release) error {
	switch {
	case r.App == "" || r.Env == "":
		return fmt.Errorf("release of unit %q/%q: app and environment are required", r.App, r.Env)
	case r.Revision == "":
		return errors.New("release without revision")
	case r.ID != 0:
		return fmt.Errorf("release already has ID %d", r.ID)
	case r.Status != "" && r.Status != store.Progressing:
		return fmt.Errorf("a release begins Progressing, not %s", r.Status)
	case !r.FinishedAt.IsZero():
		return errors.New("a release begins unfinished: FinishedAt is set")
	case r.Previous < 0:
		return fmt.Errorf("previous release %d", r.Previous)
	}
	switch r.Trigger {
	case store.TriggerSync, store.TriggerPromote, store.TriggerRollback, store.TriggerDeploy:
		return nil
	}
	return fmt.Errorf("unknown trigger %q", r.Trigger)
}

// SameTarget reports whether a and b deploy the same thing.
func SameTarget(a, b store.Release) bool {
	return a.Revision == b.Revision && a.Artifact == b.Artifact && a.ConfigHash == b.ConfigHash
}

// CheckFinish rejects a status that a release cannot end with.
func CheckFinish(status store.ReleaseStatus) error {
	if !status.Final() {
		return fmt.Errorf("a release cannot end %q", status)
	}
	return nil
}

// CheckApproval rejects an approval without app, environment, artifact or
// user, or already recorded.
func CheckApproval(a store.Approval) error {
	switch {
	case a.App == "" || a.Env == "":
		return fmt.Errorf("approval for unit %q/%q: app and environment are required", a.App, a.Env)
	case a.Artifact == "":
		return errors.New("approval without artifact")
	case a.User == "":
		return errors.New("approval without user")
	case a.ID != 0:
		return fmt.Errorf("approval already has ID %d", a.ID)
	}
	return nil
}

// CheckAudit rejects an audit record that audit.Seal would reject, before
// anything is written.
func CheckAudit(rec store.AuditRecord) error {
	_, err := audit.Seal(rec, 0, audit.Genesis)
	return err
}

// CheckAuditOf rejects an audit record, to go with a release or an
// approval, that AuditOf or CheckAudit would reject; nil is no record.
func CheckAuditOf(rec *store.AuditRecord) error {
	if rec == nil {
		return nil
	}
	r, err := AuditOf(*rec, "", "", "", nil)
	if err != nil {
		return err
	}
	return CheckAudit(r)
}

// AuditOf returns rec completed with what it is about: the app, environment
// and revision where it has none, and the given keys (with their non-zero
// values) in its Detail, which must be absent or a JSON object.
func AuditOf(rec store.AuditRecord, app, env, revision string, keys map[string]int64) (store.AuditRecord, error) {
	rec.App = cmp.Or(rec.App, app)
	rec.Env = cmp.Or(rec.Env, env)
	rec.Revision = cmp.Or(rec.Revision, revision)
	detail := map[string]json.RawMessage{}
	if len(rec.Detail) > 0 {
		if err := json.Unmarshal(rec.Detail, &detail); err != nil || detail == nil {
			return rec, fmt.Errorf("audit record %s: detail must be a JSON object: %s", rec.Action, rec.Detail)
		}
	}
	for k, v := range keys {
		if v != 0 {
			detail[k] = json.RawMessage(strconv.FormatInt(v, 10))
		}
	}
	if len(detail) == 0 {
		return rec, nil
	}
	b, err := json.Marshal(detail)
	rec.Detail = b
	return rec, err
}

// DORAPeriod returns the period of f: [Since, Until), with a zero Until
// meaning now and a zero Since 30 days before Until.
func DORAPeriod(f store.DORAFilter, now time.Time) (since, until time.Time, err error) {
	until = TimeOr(f.Until, now)
	since = TimeOr(f.Since, until.AddDate(0, 0, -30))
	if !since.Before(until) {
		return since, until, fmt.Errorf("empty period: from %v until %v", since, until)
	}
	return since, until, nil
}

// DORA computes the figures of store.DORAFigures over [since, until) from
// rs: every release of the units counted that ended at or after since, or
// has not ended, in any order.
func DORA(rs []store.Release, since, until time.Time) store.DORAFigures {
	fig := store.DORAFigures{Since: since, Until: until}
	in := func(r store.Release) bool {
		return !r.FinishedAt.IsZero() && !r.FinishedAt.Before(since) && r.FinishedAt.Before(until)
	}
	rolledBack := map[int64]bool{} // releases replaced by a rollback
	units := map[store.Unit][]store.Release{}
	for _, r := range rs {
		if r.Trigger == store.TriggerRollback && r.Previous != 0 {
			rolledBack[r.Previous] = true
		}
		units[r.Unit()] = append(units[r.Unit()], r)
	}
	var lead, restore []time.Duration
	for _, ur := range units {
		slices.SortFunc(ur, func(a, b store.Release) int { return cmp.Compare(a.ID, b.ID) })
		for i, r := range ur {
			if !in(r) {
				continue
			}
			if r.Emergency != "" && (r.Status == store.Succeeded || r.Status == store.Failed || r.Status == store.RolledBack) {
				fig.Emergencies++
			}
			if r.Trigger == store.TriggerRollback {
				continue
			}
			switch r.Status {
			case store.Succeeded, store.Failed, store.RolledBack:
				fig.Changes++
			default:
				continue
			}
			if r.Status == store.Succeeded {
				fig.Deployments++
				if !r.CommittedAt.IsZero() {
					lead = append(lead, max(r.FinishedAt.Sub(r.CommittedAt), 0))
				}
			}
			if r.Status == store.Succeeded && !rolledBack[r.ID] {
				continue
			}
			fig.Failures++
			j := slices.IndexFunc(ur[i+1:], func(s store.Release) bool { return s.Status == store.Succeeded })
			if j < 0 {
				fig.Unrestored++
				continue
			}
			restore = append(restore, max(ur[i+1+j].FinishedAt.Sub(r.FinishedAt), 0))
		}
	}
	fig.DeploymentsPerDay = float64(fig.Deployments) / until.Sub(since).Hours() * 24
	if fig.Changes > 0 {
		fig.ChangeFailureRate = float64(fig.Failures) / float64(fig.Changes)
	}
	fig.LeadTime, fig.TimeToRestore = summarize(lead), summarize(restore)
	return fig
}

func summarize(ds []time.Duration) store.Durations {
	if len(ds) == 0 {
		return store.Durations{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	n := len(ds)
	median := ds[n/2]
	if n%2 == 0 {
		median = (ds[n/2-1] + ds[n/2]) / 2
	}
	return store.Durations{N: n, Median: median, Mean: sum / time.Duration(n), Max: ds[n-1]}
}

// CheckToken rejects a new token without ID, user or hash, or with what only
// the store sets afterwards.
func CheckToken(t store.Token) error {
	switch {
	case t.ID == "":
		return errors.New("token without ID")
	case t.User == "":
		return fmt.Errorf("token %s without user", t.ID)
	case t.Hash == "":
		return fmt.Errorf("token %s without hash", t.ID)
	case !t.LastUsedAt.IsZero() || !t.RevokedAt.IsZero():
		return fmt.Errorf("token %s is new: it cannot be used or revoked yet", t.ID)
	}
	return nil
}

// CheckUnitState rejects a unit record without kind, name or environment,
// or with an operation that has no phase or a negative step.
func CheckUnitState(s store.UnitState) error {
	if s.Kind == "" || s.Name == "" || s.Env == "" {
		return fmt.Errorf("unit %q/%q/%q: kind, name and environment are required", s.Kind, s.Name, s.Env)
	}
	if op := s.Operation; op != nil {
		switch {
		case op.Phase == "":
			return fmt.Errorf("unit %s/%s/%s: an operation without phase", s.Kind, s.Name, s.Env)
		case op.Step < 0:
			return fmt.Errorf("unit %s/%s/%s: operation step %d", s.Kind, s.Name, s.Env, op.Step)
		case op.Release < 0:
			return fmt.Errorf("unit %s/%s/%s: operation release %d", s.Kind, s.Name, s.Env, op.Release)
		}
	}
	if f := s.Failed; f != nil && f.Release < 0 {
		return fmt.Errorf("unit %s/%s/%s: failed release %d", s.Kind, s.Name, s.Env, f.Release)
	}
	return nil
}

// CheckUnitStatuses rejects the arguments of store.Store.PutUnitStatuses
// that name a unit badly or twice.
func CheckUnitStatuses(states []store.UnitState) error {
	type key struct{ kind, name, env string }
	seen := make(map[key]bool, len(states))
	for i, s := range states {
		k := key{s.Kind, s.Name, s.Env}
		if k.kind == "" || k.name == "" || k.env == "" {
			return fmt.Errorf("states[%d]: unit %q/%q/%q: kind, name and environment are required", i, k.kind, k.name, k.env)
		}
		if seen[k] {
			return fmt.Errorf("states[%d]: unit %s/%s/%s twice", i, k.kind, k.name, k.env)
		}
		seen[k] = true
	}
	return nil
}

// CheckPause checks a pause before it is recorded.
func CheckPause(p store.Pause) error {
	switch {
	case p.Env == "":
		return fmt.Errorf("pause of %q without environment", p.App)
	case p.By == "":
		return fmt.Errorf("pause of %s.%s without author", p.App, p.Env)
	case p.RetryAfter < 0:
		return fmt.Errorf("pause of %s.%s: negative retry-after %s", p.App, p.Env, p.RetryAfter)
	}
	return nil
}
