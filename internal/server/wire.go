package server

import (
	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// The conversions from socle's internal types to the API's wire types, in
// one place: the handlers answer with api types only, so that a change to
// an internal struct is a change here, seen in review, and not a silent
// change of the API. Each keeps a nil slice nil, since the wire tells an
// omitted list from an empty one.

// each converts every element of a slice, nil staying nil.
func each[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// opt converts what p points to, nil staying nil.
func opt[T, U any](p *T, f func(T) U) *U {
	if p == nil {
		return nil
	}
	u := f(*p)
	return &u
}

func wireUnit(u plan.Unit) api.Unit {
	return api.Unit{App: u.App, Env: u.Env, Team: u.Team, Zone: u.Zone, Revision: u.Revision, Source: u.Source, Artifact: u.Artifact,
		Rollback: u.Rollback, Emergency: u.Emergency, Runtime: string(u.Runtime), Metadata: u.Metadata,
		Replicas: api.Replicas{Min: u.Replicas.Min, Max: u.Replicas.Max}, Rollout: wireRollout(u.Rollout),
		Containers: u.Containers, Service: u.Service, Resources: u.Resources, Secrets: u.Secrets,
		Routes: each(u.Routes, func(r spec.Route) api.UnitRoute { return api.UnitRoute(r) })}
}

func wireRollout(r spec.Rollout) api.Rollout {
	return api.Rollout{Strategy: string(r.Strategy), MaxSurge: r.MaxSurge, MaxUnavailable: r.MaxUnavailable,
		Steps: each(r.Steps, func(s spec.CanaryStep) api.CanaryStep {
			return api.CanaryStep{Weight: s.Weight, Pause: wireDuration(s.Pause)}
		}),
		Analysis: opt(r.Analysis, func(a spec.Analysis) api.Analysis {
			return api.Analysis{MaxErrorRate: a.MaxErrorRate, MaxP95: wireDuration(a.MaxP95), MinRequests: a.MinRequests}
		})}
}

// wireDuration writes a duration as spec.Duration's JSON does: "" for none.
func wireDuration(d spec.Duration) api.Duration {
	if d == 0 {
		return ""
	}
	return api.Duration(d.String())
}

func wireChange(c plan.Change) api.PlanChange {
	return api.PlanChange{Action: string(c.Action), App: c.App, Env: c.Env, Fields: each(c.Fields, wireField), Desired: opt(c.Desired, wireUnit)}
}

func wireField(f plan.Field) api.PlanField {
	return api.PlanField{Path: f.Path, Old: f.Old, New: f.New}
}

func wireResourceChange(c plan.ResourceChange) api.PlanResourceChange {
	return api.PlanResourceChange{Action: string(c.Action), Name: c.Name, Env: c.Env, Type: c.Type, Class: c.Class,
		Provisioner: c.Provisioner, Driver: c.Driver, Apps: c.Apps, Fields: each(c.Fields, wireField), Retained: c.Retained}
}

func wireSummary(s plan.Summary) api.PlanSummary {
	return api.PlanSummary{Create: s.Create, Update: s.Update, Delete: s.Delete, Unchanged: s.Unchanged}
}

func wirePlanBody(b pipeline.PlanBody) api.PlanBody {
	return api.PlanBody{Revision: b.Revision, Changes: each(b.Changes, wireChange), Summary: wireSummary(b.Summary), Resources: each(b.Resources, wireResourceChange),
		Decisions: each(b.Decisions, func(d policy.Decision) api.PlanDecision {
			out := api.PlanDecision{Action: string(d.Action), App: d.App, Env: d.Env, Verdicts: wireVerdicts(d.Verdicts)}
			if out.Verdicts == nil { // a delete has none: [], as the document says, rather than null
				out.Verdicts = api.PolicyVerdicts{}
			}
			return out
		}),
		Gates: b.Gates, Secrets: b.Secrets, Unresolved: b.Unresolved}
}

func wireBlocks(bs []gate.Block) []api.GateBlock {
	return each(bs, func(b gate.Block) api.GateBlock {
		return api.GateBlock{Gate: api.GateKind(b.Gate), Reason: b.Reason, Opens: b.Opens}
	})
}

func wireGates(r gate.Result) api.GateResult {
	return api.GateResult{Blocks: wireBlocks(r.Blocks), Skipped: wireBlocks(r.Skipped)}
}

func wireVerdicts(vs policy.Verdicts) api.PolicyVerdicts {
	return each(vs, func(v policy.Verdict) api.PolicyVerdict {
		return api.PolicyVerdict{Policy: v.Policy, Severity: string(v.Severity), Allowed: v.Allowed, Message: v.Message, Builtin: v.Builtin, File: v.File}
	})
}

func wireUnitStatus(u reconcile.UnitStatus) api.UnitStatus {
	return api.UnitStatus{Kind: u.Kind, App: u.App, Env: u.Env, Phase: api.Phase(u.Phase), Reason: api.ReasonCode(u.Reason), Message: u.Message,
		Since: u.Since, LogTail: u.LogTail, RetryAt: u.RetryAt, Release: u.Release, Revision: u.Revision, Artifact: u.Artifact,
		Ready: u.Ready, Desired: u.Desired, URL: u.URL, UpdatedAt: u.UpdatedAt,
		Replicas: each(u.Replicas, func(r reconcile.ReplicaStatus) api.ReplicaStatus {
			return api.ReplicaStatus{Name: r.Name, Release: r.Release, State: r.State, Ready: r.Ready, Address: r.Address,
				Restarts: r.Restarts, PID: r.PID, Message: r.Message}
		}),
		Operation: opt(u.Operation, func(o reconcile.OperationStatus) api.OperationStatus {
			return api.OperationStatus{Release: o.Release, Strategy: o.Strategy, Step: o.Step, Steps: o.Steps, Phase: o.Phase,
				Weight: o.Weight, StepStartedAt: o.StepStartedAt}
		})}
}

func wireSourceRevision(r source.Revision) api.SourceRevision {
	return api.SourceRevision{SHA: r.SHA, Author: r.Author, Email: r.Email, Time: r.Time, Message: r.Message}
}

func wireProblems(ps spec.Problems) api.Problems {
	return each(ps, func(p spec.Problem) api.Problem {
		return api.Problem{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Message, Warning: p.Warning}
	})
}

func wireAuditVerify(r audit.VerifyResult) api.AuditVerifyResult {
	return api.AuditVerifyResult{Verified: r.Verified, LastSeq: r.LastSeq, LastHash: r.LastHash,
		Problem: opt(r.Problem, func(p audit.Problem) api.AuditProblem {
			return api.AuditProblem{Seq: p.Seq, Kind: string(p.Kind), Message: p.Message}
		})}
}

func wireDORA(f store.DORAFigures) api.DORAFigures {
	durations := func(d store.Durations) api.DORADurations {
		return api.DORADurations{N: d.N, Median: d.Median, Mean: d.Mean, Max: d.Max}
	}
	return api.DORAFigures{Since: f.Since, Until: f.Until, Deployments: f.Deployments, DeploymentsPerDay: f.DeploymentsPerDay,
		LeadTime: durations(f.LeadTime), Changes: f.Changes, Failures: f.Failures, ChangeFailureRate: f.ChangeFailureRate,
		TimeToRestore: durations(f.TimeToRestore), Unrestored: f.Unrestored, Emergencies: f.Emergencies}
}

// figureSet is the four keys as the series' points give them: medians in
// seconds.
func figureSet(f store.DORAFigures) api.DORAFigureSet {
	return api.DORAFigureSet{Deployments: f.Deployments, LeadTimeP50: f.LeadTime.Median.Seconds(), Changes: f.Changes, Failures: f.Failures,
		ChangeFailureRate: f.ChangeFailureRate, TimeToRestoreP50: f.TimeToRestore.Median.Seconds(), Emergencies: f.Emergencies}
}

func wireBlocked(b pipeline.Blocked) api.BlockedUnit {
	return api.BlockedUnit{App: b.App, Env: b.Env, Reason: b.Message, ReasonCode: api.ReasonCode(b.Reason)}
}

func wireRelease(r store.Release) api.Release {
	return api.Release{ID: r.ID, App: r.App, Env: r.Env, Revision: r.Revision, CommittedAt: r.CommittedAt, Artifact: r.Artifact,
		ConfigHash: r.ConfigHash, Strategy: r.Strategy, Trigger: string(r.Trigger), Author: r.Author, Status: string(r.Status),
		Reason: r.Reason, Previous: r.Previous, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Notes: r.Notes, Emergency: r.Emergency}
}

func wireRevision(v store.Revision) api.Revision {
	return api.Revision{SHA: v.SHA, Author: v.Author, Time: v.Time, Message: v.Message, Valid: v.Valid, Problems: v.Problems, SeenAt: v.SeenAt}
}

func wireApproval(a store.Approval) api.Approval {
	return api.Approval{ID: a.ID, App: a.App, Env: a.Env, Revision: a.Revision, Artifact: a.Artifact, User: a.User, Comment: a.Comment, At: a.At}
}

func wireToken(t store.Token) api.Token {
	return api.Token{ID: t.ID, User: t.User, Description: t.Description, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
		ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

func wireTarget(t promotion.Target) api.Target {
	return api.Target{App: t.App, Env: t.Env, From: t.From, Revision: t.Revision, Artifact: t.Artifact, Release: t.Release, Rollback: t.Rollback, Emergency: t.Emergency}
}

func wireResult(res promotion.Result) api.ActionResult {
	out := api.ActionResult{Target: wireTarget(res.Target), Outcome: api.OutcomePinned, Passed: wireBlocks(res.Passed)}
	if res.Commit.SHA != "" {
		out.Commit = &api.Commit{SHA: res.Commit.SHA, Author: res.Commit.Author, Time: res.Commit.Time, Message: res.Commit.Message}
	}
	if o := res.Sync; o != nil {
		out.Outcome, out.Running, out.Head, out.Reason = o.Outcome, o.Running, o.Head, o.Reason
	}
	return out
}

func wirePreview(p promotion.Preview) api.Preview {
	return api.Preview{Action: p.Action, Target: wireTarget(p.Target), Change: opt(p.Change, wireChange), Gates: wireGates(p.Gates),
		Verdicts: wireVerdicts(p.Verdicts), Allowed: p.Allowed, Blocked: p.Blocked, Reason: p.Reason}
}

// The FinOps answers. Days and months are written as cost.Day and
// cost.Month write themselves; money stays money.Amount, exact.

func wireCostAmounts(a cost.Amounts) api.CostAmounts {
	return api.CostAmounts{Billed: a.Billed, Effective: a.Effective, List: a.List}
}

func wireCostTotal(t cost.Total) api.CostTotal {
	return api.CostTotal{Keys: t.Keys, Currency: t.Currency, CostAmounts: wireCostAmounts(t.Amounts)}
}

func wireCostCoverage(c cost.Coverage) api.CostCoverage {
	return api.CostCoverage{Dim: string(c.Dim), Method: string(c.Method), Currency: c.Currency, Charges: c.Charges, CostAmounts: wireCostAmounts(c.Amounts)}
}

func wireCostFile(f cost.FileInfo) api.CostFileInfo {
	return api.CostFileInfo{Name: f.Name, SHA256: f.SHA256, Format: string(f.Format), View: string(f.View), Charges: f.Charges}
}

func wireCostPrior(p cost.Prior) api.CostPrior {
	return api.CostPrior{Source: p.Source, Period: api.Month(p.Period.String()), View: string(p.View), Charges: p.Charges,
		Totals: each(p.Totals, wireCostTotal), ImportedAt: p.ImportedAt, Files: p.Files}
}

func wireCostAlert(a cost.Alert) api.CostAlert {
	return api.CostAlert{ID: a.ID, Budget: a.Budget, Month: api.Month(a.Month.String()), Threshold: a.Threshold, Kind: string(a.Kind),
		Currency: a.Currency, Amount: a.Amount, Actual: a.Actual, Forecast: a.Forecast, Notify: a.Notify, CreatedAt: a.CreatedAt, NotifiedAt: a.NotifiedAt}
}

func wireCostImport(r cost.ImportResult) api.CostImportResult {
	return api.CostImportResult{Files: each(r.Files, wireCostFile), Mode: r.Mode,
		Periods: each(r.Periods, func(p cost.PeriodSummary) api.CostPeriodSummary {
			return api.CostPeriodSummary{Source: p.Source, Period: api.Month(p.Period.String()), View: string(p.View), Charges: p.Charges, Rows: p.Rows,
				Totals: each(p.Totals, wireCostTotal), Coverage: each(p.Coverage, wireCostCoverage)}
		}),
		Replaced: each(r.Replaced, wireCostPrior), AppendedTo: each(r.AppendedTo, wireCostPrior), Alerts: each(r.Alerts, wireCostAlert)}
}

func wireCostImportRecord(r cost.ImportRecord) api.CostImportRecord {
	return api.CostImportRecord{ID: r.ID, Time: r.Time, Files: each(r.Files, wireCostFile), Periods: r.Periods, Charges: r.Charges}
}

func wireCostReport(r cost.Report) api.CostReport {
	return api.CostReport{From: api.Day(r.From.String()), To: api.Day(r.To.String()), By: each(r.By, func(d cost.Dim) string { return string(d) }),
		Rows: each(r.Rows, func(row cost.ReportRow) api.CostReportRow {
			keys := make(map[string]string, len(row.Keys))
			for d, v := range row.Keys {
				keys[string(d)] = v
			}
			return api.CostReportRow{Keys: keys, Currency: row.Currency, CostAmounts: wireCostAmounts(row.Amounts)}
		}),
		Totals: each(r.Totals, wireCostTotal), Coverage: each(r.Coverage, wireCostCoverage)}
}

func wireCostBudgets(r cost.BudgetReport) api.CostBudgetReport {
	return api.CostBudgetReport{Month: api.Month(r.Month.String()), AsOf: api.Day(r.AsOf.String()), Currencies: r.Currencies,
		Budgets: each(r.Budgets, func(b cost.BudgetStatus) api.CostBudgetStatus {
			return api.CostBudgetStatus{Name: b.Name, Scope: b.Scope, Month: api.Month(b.Month.String()), Currency: b.Currency, Amount: b.Amount,
				Thresholds: b.Thresholds, Actual: b.Actual, AsOf: api.Day(b.AsOf.String()), Forecast: b.Forecast, Status: b.Status,
				OtherCurrencies: each(b.OtherCurrencies, wireCostTotal), Daily: b.Daily, Notify: b.Notify}
		}),
		Alerts: each(r.Alerts, wireCostAlert)}
}

func wireCostAnomalies(r cost.AnomalyReport) api.CostAnomalyReport {
	return api.CostAnomalyReport{From: api.Day(r.From.String()), To: api.Day(r.To.String()),
		Anomalies: each(r.Anomalies, func(a cost.Anomaly) api.CostAnomaly {
			return api.CostAnomaly{Day: api.Day(a.Day.String()), Dim: string(a.Dim), Value: a.Value, Currency: a.Currency, Cost: a.Cost,
				Expected: a.Expected, Lower: a.Lower, Upper: a.Upper, Impact: a.Impact, Direction: a.Direction, Baseline: a.Baseline}
		})}
}
