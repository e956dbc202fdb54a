package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
)

// fakeAPI stands in for /api/v1 in the portal's unit tests: canned answers
// in the API's wire types, a token per user, and a record of the actions
// posted. The browser tests run against the real API.
type fakeAPI struct {
	mu     sync.Mutex
	posted []string // "POST path body"
	// blockPromote answers promotions with 409 blocked.
	blockPromote bool
	// noCosts answers the cost routes as before any import.
	noCosts bool
	// stacksRefused answers the stack routes 409.
	stacksRefused bool
	// clearSecrets answers resources with secret outputs in clear, as an
	// API that forgot to redact them would.
	clearSecrets bool
}

var t0 = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)

// testNow is the portal's clock in the tests: the fake's events happened
// 3 h 12 min before it, and prod's soak ends 58 min after it.
var testNow = t0.Add(3*time.Hour + 12*time.Minute)

var fakeUsers = map[string]api.Me{
	"tok-marco": {User: "marco", Teams: []api.Membership{{Team: "bookings", Role: "developer"}}},
	"tok-sofia": {User: "sofia", Teams: []api.Membership{{Team: "bookings", Role: "approver"}}},
	"tok-ada":   {User: "ada", Teams: []api.Membership{{Team: "platform", Role: "admin"}}, Admin: true},
}

// fakeAuth accepts the fake users' tokens.
type fakeAuth struct{}

func (fakeAuth) Login(r *http.Request, token string) (string, error) {
	if me, ok := fakeUsers[token]; ok {
		return me.User, nil
	}
	if token == "flood" {
		return "", auth.ErrTooMany
	}
	return "", fmt.Errorf("%w: unknown token", auth.ErrBadToken)
}

func fakePlatform() api.Platform {
	return api.Platform{Name: "alpenrose", Revision: strings.Repeat("a1", 20),
		Environments: []api.Environment{
			{Name: "dev", Zone: "apps-nonprod", Runtime: "local", Sync: "auto", DeployRoles: []string{"developer", "approver", "admin"}},
			{Name: "preprod", Zone: "apps-nonprod", Runtime: "local", Sync: "manual", Promotion: &api.Promotion{From: "dev", Soak: "10m"}},
			{Name: "prod", Zone: "apps-prod", Runtime: "local", Sync: "manual", Production: true, DeployRoles: []string{"approver", "admin"},
				Promotion: &api.Promotion{From: "preprod", Soak: "1h", Approvals: 1, Windows: []string{"Tue,Thu 10:00-16:00 Europe/Paris"}}},
		},
		Zones: []api.Zone{{Name: "connectivity", Kind: "platform"}, {Name: "apps-nonprod", Kind: "application"}, {Name: "apps-prod", Kind: "application"}},
		Teams: []api.Team{{Name: "bookings", Apps: []string{"api", "worker"}}, {Name: "guest-experience", Apps: []string{"web"}}},
	}
}

// fakeCells are an app's cells as user sees them: approvers may approve
// and promote into prod, developers may not.
func fakeCells(app, user string) []api.AppEnv {
	rev, rev2 := "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c", "9a8b7c6d5e4f30219a8b7c6d5e4f30219a8b7c6d"
	art, art2 := "sha256:"+strings.Repeat("ab12", 16), "sha256:"+strings.Repeat("cd34", 16)
	prod := []string{"logs"}
	if user == "sofia" {
		prod = []string{"promote", "approve", "rollback", "logs"}
	}
	return []api.AppEnv{
		{Env: "dev", Phase: "Synced", Revision: rev2, Artifact: art2, Release: 7, Ready: 2, Desired: 2, URL: "http://" + app + ".dev.localhost:7080", Updated: t0, Actions: []string{"deploy", "rollback", "logs"}},
		{Env: "preprod", Phase: "Progressing", Reason: "rolling update: 1 of 2 replicas on the new version", Revision: rev2, Artifact: art2, Ready: 1, Desired: 2, Updated: t0, Actions: []string{"promote", "rollback", "logs"}},
		{Env: "prod", Phase: "Blocked", Reason: "approvals: 0 of 1 approvals", Revision: rev, Artifact: art, Release: 3, Ready: 2, Desired: 2, Updated: t0,
			Incoming: &api.Incoming{From: "preprod", Revision: rev2, Artifact: art2, Approvals: []string{}, Needed: 1, Blocked: true, Reason: "approvals: 0 of 1 approvals (by an approver other than the author ann)"}, Actions: prod},
	}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	me, ok := fakeUsers[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		writeFake(w, http.StatusUnauthorized, api.Error{Error: api.ErrorBody{Code: "unauthorized", Message: "a valid token is required"}})
		return
	}
	p := r.URL.Path
	if r.Method == http.MethodPost {
		var body json.RawMessage
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.posted = append(f.posted, "POST "+p+" "+string(body))
		block := f.blockPromote
		f.mu.Unlock()
		if approveStack(w, p, body) {
			return
		}
		if block && strings.HasSuffix(p, "/promote") {
			writeFake(w, http.StatusConflict, api.Error{Error: api.ErrorBody{Code: "blocked", Message: "api to prod is blocked: approvals: 0 of 1 approvals",
				Details: map[string]any{"gates": api.GateResult{Blocks: []api.GateBlock{{Gate: "approvals", Reason: "0 of 1 approvals"}}}}}})
			return
		}
		writeFake(w, http.StatusCreated, map[string]any{"app": "api"})
		return
	}
	if f.serveStacks(w, p) {
		return
	}
	switch {
	case p == "/api/v1/apps/api/signals":
		writeFake(w, 200, fakeSignals())
	case p == "/api/v1/me":
		writeFake(w, 200, me)
	case p == "/api/v1/platform":
		writeFake(w, 200, fakePlatform())
	case p == "/api/v1/apps":
		var apps []api.App
		for _, a := range []struct{ name, owner string }{{"api", "bookings"}, {"web", "guest-experience"}, {"worker", "bookings"}} {
			apps = append(apps, api.App{Name: a.name, Owner: a.owner, Strategy: "rolling", Envs: fakeCells(a.name, me.User)})
		}
		// worker waits in preprod for its database, which failed: the
		// engine's words, through the resource kind's Describer.
		apps[2].Envs[1] = api.AppEnv{Env: "preprod", Phase: "Pending", ReasonCode: "DependencyFailed", Reason: "Waiting: resource worker-db (postgres) failed: " + fakeProvisionFailed,
			Ready: 0, Desired: 1, Updated: t0, Actions: []string{"promote", "logs"}}
		writeFake(w, 200, api.Page[api.App]{Items: apps})
	case p == "/api/v1/apps/api":
		unit := api.Unit{App: "api", Env: "dev", Runtime: "local", Replicas: api.Replicas{Min: 1, Max: 2}, Rollout: api.Rollout{Strategy: "rolling"}}
		d := api.AppDetail{App: api.App{Name: "api", Owner: "bookings", Description: "Bookings API", Strategy: "rolling", Envs: fakeCells("api", me.User)},
			Config: map[string]api.Unit{"dev": unit}, Secrets: []string{"DB_PASSWORD"},
			Pauses: []api.Pause{{App: "api", Env: "dev", Message: "Moving the <db> & back at 14:00", RetryAfterSeconds: 600, By: "marco", At: t0}}}
		writeFake(w, 200, d)
	case p == "/api/v1/resources":
		writeFake(w, 200, fakeResources(f.clearSecrets))
	case strings.HasSuffix(p, "/releases"):
		writeFake(w, 200, api.Page[api.Release]{Items: []api.Release{{ID: 7, App: "api", Env: "dev", Revision: "9a8b7c6d5e4f30219a8b7c6d", Artifact: "sha256:" + strings.Repeat("cd34", 16),
			Trigger: "sync", Status: "Succeeded", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
			Notes: json.RawMessage(`{"commits":[{"sha":"9a8b7c6d5e4f","author":"Marco","subject":"api: faster search"}]}`), Emergency: "INC-4711: bookings fail with <500>"}}})
	case strings.HasSuffix(p, "/preview"):
		writeFake(w, 200, api.Preview{Action: r.URL.Query().Get("action"),
			Target: api.Target{App: "api", Env: "prod", From: "preprod", Revision: "9a8b7c6d5e4f30219a8b7c6d", Artifact: "sha256:" + strings.Repeat("cd34", 16)},
			Change: &api.PlanChange{Action: "update", App: "api", Env: "prod", Fields: []api.PlanField{{Path: "artifact", Old: "sha256:ab12", New: "sha256:cd34"}}},
			Gates: api.GateResult{Blocks: []api.GateBlock{{Gate: "approvals", Reason: "0 of 1 approvals"},
				{Gate: "soak", Reason: "preprod has run it healthy for 2m of 1h", Opens: testNow.Add(58*time.Minute + 42*time.Second)}}},
			Verdicts: api.PolicyVerdicts{{Policy: "prod-replicas", Severity: "deny", Allowed: true}},
			// The reason as the API words it, which the pages do not repeat.
			Allowed: me.User == "sofia", Blocked: true, Reason: "api to prod is blocked: approvals: 0 of 1 approvals; soak: preprod has run it healthy for 2m of 1h (opens 2026-11-24T13:40:42Z)"})
	case strings.HasSuffix(p, "/approvals"):
		writeFake(w, 200, map[string]any{"artifact": "sha256:cd34", "items": []api.Approval{}})
	case p == "/api/v1/revisions":
		writeFake(w, 200, api.Page[api.Revision]{Items: []api.Revision{{SHA: "9a8b7c6d5e4f30219a8b7c6d", Author: "Marco", Time: t0, Message: "api: faster search", Valid: true, SeenAt: t0}}})
	case p == "/api/v1/revisions/9a8b7c6d5e4f30219a8b7c6d":
		writeFake(w, 200, api.RevisionDetail{Revision: api.Revision{SHA: "9a8b7c6d5e4f30219a8b7c6d", Author: "Marco", Time: t0, Message: "api: faster search", Valid: true, SeenAt: t0},
			Plans: []api.PlanRef{{ID: 12, Revision: "9a8b7c6d5e4f30219a8b7c6d", Summary: api.PlanSummary{Update: 2, Unchanged: 7}, Created: t0}}})
	case p == "/api/v1/plans/12":
		writeFake(w, 200, api.PlanBody{Revision: "9a8b7c6d5e4f30219a8b7c6d", Summary: api.PlanSummary{Update: 2, Unchanged: 7}, Changes: []api.PlanChange{
			{Action: "update", App: "api", Env: "prod", Fields: []api.PlanField{{Path: "containers.api.variables.LOG_LEVEL", Old: "info", New: "debug"}}},
			{Action: "update", App: "api", Env: "dev", Fields: []api.PlanField{{Path: "source", Old: "sha256:1", New: "sha256:2"}}},
		}, Decisions: []api.PlanDecision{{Action: "update", App: "api", Env: "prod", Verdicts: api.PolicyVerdicts{{Policy: "no-debug-in-prod", Severity: "deny", Message: "LOG_LEVEL debug is not allowed in production"}}}},
			Gates: map[string]string{"api@prod": "soak: preprod has run it healthy for 2m of 1h"}})
	case p == "/api/v1/audit":
		writeFake(w, 200, api.Page[api.AuditRecord]{Items: []api.AuditRecord{
			{Seq: 42, At: t0, Actor: "lena", Action: "promote.emergency", App: "api", Env: "prod", Revision: "9a8b7c6d5e4f30219a8b7c6d", Detail: json.RawMessage(`{"reason":"INC-4711: bookings fail with <500>"}`)},
			{Seq: 41, At: t0, Actor: "sofia", Action: "approve", App: "api", Env: "prod", Revision: "9a8b7c6d5e4f30219a8b7c6d", Detail: json.RawMessage(`{"comment":"ok"}`)},
			{Seq: 40, At: t0, Actor: "socle", Action: "stack.applied", App: "stack:hub", Env: "connectivity", Revision: "9a8b7c6d5e4f30219a8b7c6d", Detail: json.RawMessage(`{"stack":"hub","instance":"connectivity"}`)}}, Next: "41"})
	case p == "/api/v1/audit/verify":
		writeFake(w, 200, map[string]any{"Verified": 41, "LastSeq": 41})
	case p == "/api/v1/dora":
		writeFake(w, 200, map[string]any{"Since": t0.Add(-720 * time.Hour), "Until": t0, "Deployments": 42, "DeploymentsPerDay": 1.4,
			"LeadTime": map[string]any{"N": 42, "Median": int64(90 * time.Minute), "Max": int64(26 * time.Hour)}, "Changes": 40, "Failures": 3, "ChangeFailureRate": 0.075,
			"TimeToRestore": map[string]any{"N": 3, "Median": int64(20 * time.Minute)}, "Emergencies": 2})
	case p == "/api/v1/dora/series":
		series := api.DORASeries{Bucket: "week"}
		for i := range 4 {
			series.Points = append(series.Points, api.DORAPoint{Start: t0.Add(time.Duration(i-4) * 7 * 24 * time.Hour), DORAFigureSet: api.DORAFigureSet{
				Deployments: 5 + 3*i, Changes: 5 + 3*i, Failures: i % 2, ChangeFailureRate: float64(i%2) / float64(5+3*i),
				LeadTimeP50: float64(i+1) * 3600, TimeToRestoreP50: float64(i%2) * 1200}})
		}
		writeFake(w, 200, series)
	case f.noCosts && p == "/api/v1/costs/anomalies":
		// As the cost service answers before any import: no range at all.
		writeFake(w, 200, cost.AnomalyReport{Anomalies: []cost.Anomaly{}})
	case f.noCosts && strings.HasPrefix(p, "/api/v1/costs/"):
		writeFake(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: "no cost data imported yet"}})
	case p == "/api/v1/costs/report":
		sep := cost.MonthOf(2024, time.September)
		writeFake(w, 200, cost.Report{From: sep.First(), To: sep.End() - 1, By: []cost.Dim{cost.DimTeam, cost.DimEnv}, Rows: []cost.ReportRow{
			{Keys: map[cost.Dim]string{cost.DimTeam: "bookings", cost.DimEnv: "prod"}, Currency: "EUR", Amounts: cost.Amounts{Billed: amt("1250.5"), Effective: amt("1190.25"), List: amt("1400")}},
			{Keys: map[cost.Dim]string{cost.DimTeam: "bookings", cost.DimEnv: "dev"}, Currency: "EUR", Amounts: cost.Amounts{Billed: amt("210"), Effective: amt("205"), List: amt("230")}},
			{Keys: map[cost.Dim]string{cost.DimTeam: "", cost.DimEnv: ""}, Currency: "EUR", Amounts: cost.Amounts{Billed: amt("90"), Effective: amt("90"), List: amt("90")}},
		}, Totals: []cost.Total{{Currency: "EUR", Amounts: cost.Amounts{Billed: amt("1550.5"), Effective: amt("1485.25"), List: amt("1720")}}}})
	case p == "/api/v1/costs/budgets":
		sep := cost.MonthOf(2024, time.September)
		writeFake(w, 200, cost.BudgetReport{Month: sep, AsOf: sep.First() + 4, Budgets: []cost.BudgetStatus{{Name: "bookings-monthly", Scope: map[string]string{"team": "bookings"},
			Month: sep, Currency: "EUR", Amount: amt("1000"), Actual: amt("620"), AsOf: sep.First() + 4, Forecast: amt("3720"), Status: "warning", Daily: []money.Amount{amt("100"), amt("110"), amt("130"), amt("140"), amt("140")}}}})
	case p == "/api/v1/costs/anomalies":
		sep := cost.MonthOf(2024, time.September)
		writeFake(w, 200, cost.AnomalyReport{From: sep.First(), To: sep.End() - 1, Anomalies: []cost.Anomaly{{Day: sep.First() + 3, Dim: cost.DimTeam, Value: "bookings",
			Currency: "EUR", Cost: amt("140"), Expected: amt("60"), Impact: amt("80"), Direction: "spike", Baseline: 4}}})
	default:
		writeFake(w, http.StatusNotFound, api.Error{Error: api.ErrorBody{Code: "not_found", Message: "no route " + p}})
	}
}

// fakeProvisionFailed is the resource kind's message for a provisioning
// that failed.
const fakeProvisionFailed = "provisioning postgres with builtin/postgres failed: initdb: could not create directory \"/var/lib/socle/pg\": permission denied; tried again at 12:45:00, or when its provisioner changes"

// fakePassword is a secret output's value, which no page shows.
const fakePassword = "pw-7f3a9c1e0b"

// fakeResources are the resources as GET /api/v1/resources lists them:
// api's database in each environment (Synced in dev, Failed in preprod),
// a cache web uses, and in prod a database removed from Git and retained.
func fakeResources(clear bool) api.ResourceList {
	secret := api.SecretOutput
	if clear {
		secret = fakePassword
	}
	outputs := func(db string) []api.ResourceOutput {
		return []api.ResourceOutput{{Name: "host", Value: "127.0.0.1"}, {Name: "name", Value: db}, {Name: "password", Value: secret, Secret: true},
			{Name: "port", Value: "54321"}, {Name: "username", Value: db}}
	}
	return api.ResourceList{Items: []api.Resource{
		{Name: "api-db", Env: "dev", Type: "postgres", Provisioner: "builtin/postgres", Driver: "process", Apps: []string{"api"}, Data: true,
			Outputs: outputs("api_db"), ProvisionedAt: t0,
			Unit: &api.StackUnit{Phase: "Synced", Message: "postgres provisioned by builtin/postgres (process) for api", Since: t0, UpdatedAt: t0}},
		{Name: "web-cache", Env: "dev", Type: "redis", Provisioner: "builtin/redis", Driver: "process", Apps: []string{"web"},
			Outputs: []api.ResourceOutput{{Name: "host", Value: "127.0.0.1"}}, Unit: &api.StackUnit{Phase: "Synced", Since: t0, UpdatedAt: t0}},
		{Name: "api-db", Env: "preprod", Type: "postgres", Provisioner: "builtin/postgres", Driver: "process", Apps: []string{"api"}, Data: true,
			Unit: &api.StackUnit{Phase: "Failed", Reason: "ProvisionFailed", Message: fakeProvisionFailed, Since: t0, UpdatedAt: t0}},
		{Name: "worker-db", Env: "preprod", Type: "postgres", Provisioner: "builtin/postgres", Driver: "process", Apps: []string{"worker"}, Data: true,
			Unit: &api.StackUnit{Phase: "Failed", Reason: "ProvisionFailed", Message: fakeProvisionFailed, Since: t0, UpdatedAt: t0}},
		{Name: "api-audit", Env: "prod", Type: "postgres", Provisioner: "prod-postgres", Driver: "stack", Apps: []string{}, FormerApps: []string{"api"}, Data: true, Production: true,
			Outputs: outputs("api_audit"), ProvisionedAt: t0,
			Unit: &api.StackUnit{Phase: "Orphaned", Reason: "Retained", Message: "Retained: data-bearing resource kept in production; an admin deletes it with socle resource delete api-audit --env prod", Since: t0, UpdatedAt: t0}},
	}}
}

// amt is an amount written as decimal text.
func amt(s string) money.Amount { return money.MustParse(s) }

func writeFake(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// fakeSignals are api's signals over the hour before t0: steady traffic in
// dev, a deploy at t0-40m, errors and a rollback at t0-20m, and nothing in
// the other environments.
func fakeSignals() api.AppSignals {
	start := t0.Add(-time.Hour)
	dev := api.EnvSignals{Env: "dev", Release: "r12",
		Now: api.SignalFigures{Requests: 600, Errors: 6, Rate: 10, ErrorRatio: 0.01, P50Ms: 2, P95Ms: 9, P99Ms: 17}}
	for i := range 60 {
		f := api.SignalFigures{Requests: 600, Rate: 10, P50Ms: 2, P95Ms: 9, P99Ms: 17}
		if i >= 36 && i < 40 { // the bad release
			f.Errors, f.ErrorRatio, f.P95Ms, f.P99Ms = 120, 0.2, 120, 480
		}
		if i < 5 { // before the first request
			f = api.SignalFigures{}
		}
		dev.Points = append(dev.Points, api.SignalPoint{Start: start.Add(time.Duration(i) * time.Minute), SignalFigures: f})
	}
	dev.Markers = []api.SignalMark{
		{Time: start.Add(20 * time.Minute), Kind: "deploy", Release: "r11", Status: "Succeeded", Author: "ann"},
		{Time: start.Add(36 * time.Minute), Kind: "promotion", Release: "r13", Status: "RolledBack", Author: "marco"},
		{Time: start.Add(40 * time.Minute), Kind: "rollback", Release: "r13", Status: "RolledBack", Reason: "error rate 20% above 1%"},
	}
	out := api.AppSignals{App: "api", Period: "1h0m0s", Step: "1m0s", Envs: []api.EnvSignals{dev}}
	for _, env := range []string{"preprod", "prod"} {
		e := api.EnvSignals{Env: env, Markers: []api.SignalMark{}}
		for i := range 60 {
			e.Points = append(e.Points, api.SignalPoint{Start: start.Add(time.Duration(i) * time.Minute)})
		}
		out.Envs = append(out.Envs, e)
	}
	return out
}
