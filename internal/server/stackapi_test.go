package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	units "github.com/socle-dev/socle/internal/unit"
	"github.com/socle-dev/socle/internal/web"
)

// gitOut runs git in dir and returns its output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

// hubSecret is a secret input of the hub stack: no answer may carry it.
const hubSecret = "hub-s3cr3t-7f3a9c"

// stackFiles are two stacks of builtin terraform_data resources (no
// provider to download) added to the demo platform: hub, one instance in
// the connectivity zone, with a secret input and a sensitive output; edge,
// one per environment of two, reading hub's outputs.
var stackFiles = map[string]string{
	"stacks/hub/stack.yaml": `apiVersion: socle.dev/v1
kind: Stack
zones: [connectivity]
inputs:
  cidr: 10.0.0.0/16
  key: ` + hubSecret + `
`,
	"stacks/hub/main.tf": `variable "cidr" {
  type = string
}

variable "key" {
  type      = string
  sensitive = true
}

resource "terraform_data" "hub" {
  input = {
    cidr = var.cidr
    key  = var.key
  }
}

output "hub_id" {
  value = terraform_data.hub.id
}

output "key" {
  value     = var.key
  sensitive = true
}
`,
	"stacks/edge/stack.yaml": `apiVersion: socle.dev/v1
kind: Stack
environments: [dev, prod]
dependsOn: [hub]
inputs:
  env: ${environment.name}
  hub: ${stacks.hub.outputs.hub_id}
`,
	"stacks/edge/main.tf": `variable "env" {
  type = string
}

variable "hub" {
  type = string
}

resource "terraform_data" "edge" {
  input = "${var.env} behind ${var.hub}"
}
`,
}

// stackRepo is the demo platform with stackFiles instead of its own
// landing zone (its stacks and the policies on them), committed.
func stackRepo(t *testing.T) string {
	t.Helper()
	return stackRepoBy(t, "Ann Example", "ann@example.com", nil)
}

// stackRepoBy is the demo platform with stackFiles changed by edits
// (file → old → new), committed by author <email>.
func stackRepoBy(t *testing.T, author, email string, edits map[string][2]string) string {
	t.Helper()
	files := maps.Clone(stackFiles)
	for name, e := range edits {
		if !strings.Contains(files[name], e[0]) {
			t.Fatalf("%s has no %q", name, e[0])
		}
		files[name] = strings.Replace(files[name], e[0], e[1], 1)
	}
	return platformWith(t, author, email, []string{"stacks", "policies/stacks.yaml"}, files)
}

// platformWith is the demo platform without the paths of remove, with
// files (path → content) written over it, committed by author <email>.
func platformWith(t testing.TB, author, email string, remove []string, files map[string]string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.CopyFS(src, os.DirFS("../../examples/platform")); err != nil {
		t.Fatal(err)
	}
	for _, p := range remove {
		if err := os.RemoveAll(filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "platform")
	if _, err := source.Init(context.Background(), src, dir, author, email, "platform with stacks"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// getBody sends a GET with token and returns the status and the body.
func getBody(t *testing.T, base, token, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func apiStatus(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestStacksAPI plans and applies stack instances with the server's runner
// and reads them back through the API as a viewer: the order, the last
// plan and apply, the plan resource by resource, the outputs, secrets
// redacted everywhere; then unlocks a held run lock as an admin.
func TestStacksAPI(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	t.Parallel()
	dir := stackRepo(t)
	r := start(t, dir, t.TempDir())
	t.Cleanup(r.stop)
	r.waitFor(t, "the platform in force", func(st Status) bool { return st.LastGood != nil })
	if r.stacks == nil {
		t.Fatal("terraform is on PATH, but the server opened no stack runner")
	}
	ctx := t.Context()
	tokens := map[string]string{}
	for _, user := range []string{"paul", "tom", "lena"} { // viewer, developer, admin
		tok, _, err := auth.Create(ctx, r.Store(), user, "stacks test", "test", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[user] = tok
	}
	viewer, developer, admin := client.New(r.url, tokens["paul"]), client.New(r.url, tokens["tom"]), client.New(r.url, tokens["lena"])

	list, err := viewer.Stacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type where struct{ stack, instance, of string }
	var got []where
	for _, it := range list.Items {
		got = append(got, where{it.Stack, it.Instance, it.Of})
		if it.Plan != nil || it.Apply != nil || it.Lock != nil || it.Unit != nil {
			t.Errorf("%s @ %s was never run, yet shows %+v", it.Stack, it.Instance, it)
		}
	}
	// hub first: edge depends on it, though it sorts after.
	if want := []where{{"hub", "connectivity", "zone"}, {"edge", "dev", "environment"}, {"edge", "prod", "environment"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("instances %v, want %v", got, want)
	}
	if list.NotRun != "" || list.Revision != r.inForceSHA() {
		t.Errorf("list says notRun %q, revision %q; want it run, at %s", list.NotRun, list.Revision, r.inForceSHA())
	}

	repo, sha := r.pipeline.InForce()
	fsys, err := r.repo.Files(sha)
	if err != nil {
		t.Fatal(err)
	}
	hub, edge := repo.Stack("hub"), repo.Stack("edge")

	// edge waits for hub's outputs, and says which.
	if res := r.stacks.Plan(ctx, repo, fsys, edge, "dev"); res.Status != stack.StatusWaiting {
		t.Fatalf("edge @ dev before hub applies: %s %s %s", res.Status, res.Reason, res.Message)
	}
	d, err := viewer.Stack(ctx, "edge", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Pending, []api.StackPending{{Input: "hub", Stack: "hub", Instance: "connectivity", Output: "hub_id"}}) {
		t.Errorf("edge @ dev before hub applies: pending %+v", d.Pending)
	}

	// hub plans and applies.
	res := r.stacks.Plan(ctx, repo, fsys, hub, "connectivity")
	if res.Status != stack.StatusPlanned || res.PlanID == "" {
		t.Fatalf("hub: %s %s %s", res.Status, res.Reason, res.Message)
	}
	code, body := getBody(t, r.url, tokens["paul"], "/api/v1/stacks/hub/connectivity")
	if code != http.StatusOK || strings.Contains(body, hubSecret) {
		t.Errorf("hub planned: %d, its secret input shown: %v", code, strings.Contains(body, hubSecret))
	}
	d, err = viewer.Stack(ctx, "hub", "connectivity")
	if err != nil {
		t.Fatal(err)
	}
	if d.Plan == nil || d.Plan.Status != "Planned" || d.Plan.PlanID != res.PlanID || d.Plan.Hash != res.Hash ||
		d.Plan.Summary != (api.StackSummary{Add: 1}) || d.Plan.RecordedAt.IsZero() || d.Apply != nil {
		t.Errorf("hub planned: %+v, apply %+v", d.Plan, d.Apply)
	}
	if len(d.Changes) != 1 || d.Changes[0].Address != "terraform_data.hub" || d.Changes[0].Action != "create" ||
		!slices.Contains(d.Changes[0].Attributes, api.StackAttributeChange{Path: "input.key", After: stack.Redacted}) ||
		!slices.Contains(d.Changes[0].Attributes, api.StackAttributeChange{Path: "input.cidr", After: `"10.0.0.0/16"`}) {
		t.Errorf("hub's changes: %+v, want input.key redacted and input.cidr shown", d.Changes)
	}
	if !slices.Contains(d.OutputChanges, api.StackOutputChange{Name: "key", Action: "create", After: stack.Redacted}) {
		t.Errorf("hub's output changes: %+v, want key redacted", d.OutputChanges)
	}
	if d.Inputs["key"] != stack.Redacted || d.Inputs["cidr"] == "" {
		t.Errorf("hub's inputs: %v, want key redacted and cidr shown", d.Inputs)
	}
	if run := r.stacks.Apply(ctx, hub, "connectivity", stack.Approved{PlanID: res.PlanID, Hash: res.Hash}); run.Status != stack.RunApplied {
		t.Fatalf("applying hub: %s %s %s", run.Status, run.Reason, run.Message)
	}
	code, body = getBody(t, r.url, tokens["paul"], "/api/v1/stacks/hub/connectivity")
	if code != http.StatusOK || !strings.Contains(body, `"outputs"`) || !strings.Contains(body, `"hub_id"`) {
		t.Errorf("hub after apply: %d %s", code, body)
	}
	if strings.Contains(body, hubSecret) {
		t.Errorf("the detail of hub carries its secret input:\n%s", body)
	}
	d, err = viewer.Stack(ctx, "hub", "connectivity")
	if err != nil {
		t.Fatal(err)
	}
	if d.Outputs["key"] != stack.Redacted || d.Outputs["hub_id"] == "" || d.Outputs["hub_id"] == stack.Redacted {
		t.Errorf("hub's outputs: %v, want key redacted and hub_id shown", d.Outputs)
	}
	if a := d.Apply; a == nil || a.Status != "Applied" || a.PlanID != res.PlanID || a.Holder.PID != os.Getpid() || a.Finished.Before(a.Started) {
		t.Errorf("hub's last apply: %+v", a)
	}

	// edge waits no more.
	list, err = viewer.Stacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if it := list.Items[1]; len(it.Pending) != 0 || it.Plan != nil {
		t.Errorf("edge @ dev after hub applied: pending %+v, plan %+v; want nothing pending, no plan", it.Pending, it.Plan)
	}
	if res := r.stacks.Plan(ctx, repo, fsys, edge, "dev"); res.Status != stack.StatusPlanned {
		t.Fatalf("edge @ dev after hub applies: %s %s %s", res.Status, res.Reason, res.Message)
	}
	code, body = getBody(t, r.url, tokens["paul"], "/api/v1/stacks")
	if code != http.StatusOK || strings.Contains(body, hubSecret) {
		t.Errorf("the list: %d, secret shown: %v", code, strings.Contains(body, hubSecret))
	}
	list, err = viewer.Stacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := list.Items[1].Plan; p == nil || p.Status != "Planned" || p.Outdated || p.Summary.Add != 1 || p.PlanID == "" {
		t.Errorf("edge @ dev planned again: %+v", p)
	}
	if p := list.Items[2].Plan; p != nil {
		t.Errorf("edge @ prod was never planned, yet shows %+v", p)
	}
	// A revision that changes edge outdates its plan.
	commit(t, dir, "stacks/edge/main.tf", "behind", "via", "edge: say via")
	r.hook(t)
	head := strings.TrimSpace(gitOut(t, dir, "rev-parse", "HEAD"))
	r.waitFor(t, "the edge change in force", func(st Status) bool { return st.LastGood != nil && st.LastGood.SHA == head })
	list, err = viewer.Stacks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := list.Items[1].Plan; p == nil || !p.Outdated || list.Revision != head {
		t.Errorf("edge @ dev after a change to edge: %+v at %s, want its plan outdated at %s", p, list.Revision, head)
	}

	// Unknown stacks and instances.
	for _, c := range []struct{ stack, instance, want string }{
		{"nope", "dev", `no stack "nope" in the revision in force (stacks: edge, hub)`},
		{"edge", "sandbox", `stack edge has no instance "sandbox": it is in the environments dev, prod`},
	} {
		_, err := viewer.Stack(ctx, c.stack, c.instance)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Code != "not_found" || e.Message != c.want {
			t.Errorf("%s @ %s: %v, want 404 saying %s", c.stack, c.instance, err, c.want)
		}
	}
	if _, err := admin.UnlockStack(ctx, "edge", "sandbox", true); apiStatus(err) != http.StatusNotFound {
		t.Errorf("unlocking an unknown instance: %v, want 404", err)
	}

	// A run lock held by another socle (this test, here): shown, refused
	// to a developer, refused without force, taken with force and audited.
	locks := &lease.File{Dir: filepath.Join(r.stacks.Dir, ".locks")}
	le, err := locks.TryAcquire(ctx, "edge.prod", lease.Holder{PID: os.Getpid(), Host: "elsewhere", Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer le.Release()
	d, err = viewer.Stack(ctx, "edge", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if d.Lock == nil || d.Lock.Host != "elsewhere" || d.Lock.PID != os.Getpid() {
		t.Errorf("edge @ prod's lock: %+v", d.Lock)
	}
	if _, err := developer.UnlockStack(ctx, "edge", "prod", true); apiStatus(err) != http.StatusForbidden {
		t.Errorf("a developer unlocking: %v, want 403", err)
	}
	if _, err := viewer.UnlockStack(ctx, "edge", "prod", true); apiStatus(err) != http.StatusForbidden {
		t.Errorf("a viewer unlocking: %v, want 403", err)
	}
	_, err = admin.UnlockStack(ctx, "edge", "prod", false)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict || ce.Code != "conflict" || !strings.Contains(ce.Message, "elsewhere") {
		t.Errorf("unlocking a live holder without force: %v, want 409 naming the holder", err)
	}
	select {
	case <-le.Lost():
		t.Fatal("the lock was taken without force")
	default:
	}
	u, err := admin.UnlockStack(ctx, "edge", "prod", true)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Held || u.Holder == nil || u.Holder.Host != "elsewhere" {
		t.Errorf("unlock with force: %+v", u)
	}
	select {
	case <-le.Lost():
	case <-time.After(waitBudget):
		t.Fatal("the holder did not lose its lock")
	}
	var audit api.Page[api.AuditRecord]
	if err := viewer.Get(ctx, "/api/v1/audit?action="+url.QueryEscape("stack.unlocked"), &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit.Items) != 1 {
		t.Fatalf("audit of the unlock: %+v, want one record", audit.Items)
	}
	var detail struct {
		Stack, Instance string
		Force           bool
		Holder          lease.Holder
	}
	if err := json.Unmarshal(audit.Items[0].Detail, &detail); err != nil || audit.Items[0].Actor != "lena" ||
		detail.Stack != "edge" || detail.Instance != "prod" || !detail.Force || detail.Holder.Host != "elsewhere" {
		t.Errorf("audit of the unlock: %+v (detail %+v, %v)", audit.Items[0], detail, err)
	}
	// Nothing held: nothing to record.
	if u, err := admin.UnlockStack(ctx, "edge", "prod", false); err != nil || u.Held {
		t.Errorf("unlocking what no one holds: %+v, %v", u, err)
	}
	if err := viewer.Get(ctx, "/api/v1/audit?action="+url.QueryEscape("stack.unlocked"), &audit); err != nil || len(audit.Items) != 1 {
		t.Errorf("after a second unlock of nothing: %d records (%v), want 1", len(audit.Items), err)
	}
}

// TestStacksNotRun: without terraform the instances are listed, with why
// none is run, and the engine's status of each when it has one.
func TestStacksNotRun(t *testing.T) {
	repo, problems := spec.Load(os.DirFS(stackRepo(t)))
	if problems.Errors() > 0 {
		t.Fatalf("loading the platform: %v", problems)
	}
	v := newStackView(repo, nil)
	ts := stack.Targets(repo, nil)
	if len(ts) != 3 {
		t.Fatalf("targets %v", ts)
	}
	status := []byte(`{"kind":"stack","app":"edge","env":"dev","phase":"Blocked","reason":"TerraformMissing","message":"no terraform"}`)
	it, last := v.instance(ts[1], store.UnitState{Kind: stack.KindID, Name: "edge", Env: "dev", Status: status}, true)
	if last != nil || it.Plan != nil || it.Apply != nil || it.Lock != nil {
		t.Errorf("no runner, yet %+v", it)
	}
	if it.Unit == nil || it.Unit.Phase != "Blocked" || it.Unit.Reason != "TerraformMissing" || it.Unit.Message != "no terraform" {
		t.Errorf("the engine's status: %+v", it.Unit)
	}
	it, _ = v.instance(ts[1], store.UnitState{Kind: stack.KindID, Name: "edge", Env: "dev", Status: []byte(`{`)}, true)
	if it.Unit != nil || len(it.Problems) != 1 {
		t.Errorf("a status that does not read: unit %+v, problems %q", it.Unit, it.Problems)
	}
}

// TestStacksApplied runs the stacks through the engine, as socle up does
// (ApplyStacks): hub applies first, edge in dev after it without anyone
// acting, and edge in prod, which syncs manually, is held for approval
// with its plan; the API shows each, secrets redacted, and socle's status
// speaks of apps only.
func TestStacksApplied(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	t.Parallel()
	r := startWith(t, Config{Repo: stackRepo(t), Data: t.TempDir(), ApplyStacks: true})
	t.Cleanup(r.stop)
	c := client.New(r.url, r.token)
	ctx := t.Context()
	deadline := time.Now().Add(waitBudget)
	var hub, dev, prod api.StackDetail
	for {
		hub, _ = c.Stack(ctx, "hub", "connectivity")
		dev, _ = c.Stack(ctx, "edge", "dev")
		prod, _ = c.Stack(ctx, "edge", "prod")
		applied := func(d api.StackDetail) bool {
			return d.Apply != nil && d.Apply.Status == "Applied" && d.Unit != nil && d.Unit.Phase == "Synced"
		}
		if applied(hub) && applied(dev) && prod.Unit != nil && prod.Unit.Reason == "AwaitingApproval" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stacks never converged: hub %+v\nedge @ dev %+v\nedge @ prod %+v", hub, dev, prod)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !dev.Apply.Started.After(hub.Apply.Finished) && !dev.Apply.Started.Equal(hub.Apply.Finished) {
		t.Errorf("edge @ dev applied at %s, before hub finished at %s", dev.Apply.Started, hub.Apply.Finished)
	}
	if prod.Apply != nil || prod.Plan == nil || prod.Plan.Status != "Planned" || prod.Plan.Summary.Add == 0 {
		t.Errorf("edge @ prod: apply %+v, plan %+v; want planned and held", prod.Apply, prod.Plan)
	}
	if len(dev.History) != 1 || dev.History[0] != *dev.Apply {
		t.Errorf("edge @ dev's history %+v, want its one apply %+v", dev.History, *dev.Apply)
	}
	if len(prod.History) != 0 || dev.Unit.Revision != dev.Revision {
		t.Errorf("edge @ prod's history %+v, want none; edge @ dev planned from %q, want %q", prod.History, dev.Unit.Revision, dev.Revision)
	}
	if hub.Outputs["key"] != stack.Redacted {
		t.Errorf("hub's outputs %v, want key redacted", hub.Outputs)
	}
	for _, path := range []string{"/api/v1/stacks", "/api/v1/stacks/hub/connectivity", "/api/v1/stacks/edge/dev", "/api/v1/stacks/edge/prod", "/api/v1/stacks/edge/prod/approvals"} {
		if code, body := getBody(t, r.url, r.token, path); code != http.StatusOK || strings.Contains(body, hubSecret) {
			t.Errorf("%s: %d, secret shown: %v", path, code, strings.Contains(body, hubSecret))
		}
	}
	// The portal's pages of the same instances: the plan resource by
	// resource, the sensitive output marked, the secret nowhere.
	for path, want := range map[string]string{
		"/":                        `href="/stacks/edge/prod"`,
		"/stacks":                  "edge @ prod",
		"/stacks/hub/connectivity": `<code>key</code></td><td><code class="redacted">(sensitive)</code>`,
		"/stacks/edge/dev":         "Applied",
		"/stacks/edge/prod":        "terraform_data.edge</code>",
	} {
		req, _ := http.NewRequest(http.MethodGet, r.url+path, nil)
		req.AddCookie(&http.Cookie{Name: web.CookieName, Value: r.token})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body := string(b); resp.StatusCode != http.StatusOK || !strings.Contains(body, want) || strings.Contains(body, hubSecret) {
			t.Errorf("the portal's %s: %d, has %q: %v, secret shown: %v", path, resp.StatusCode, want, strings.Contains(body, want), strings.Contains(body, hubSecret))
		}
	}
	for _, u := range r.status(t).Runtime {
		if u.App == "hub" || u.App == "edge" {
			t.Errorf("socle's status lists a stack as an app: %+v", u)
		}
	}
}

// TestStackApproval approves a gated stack instance's plan through the
// API and has the real engine apply it with terraform: held for an
// approval; the author's approval does not count; an approval of
// another plan is a 409 naming the current one; someone outside the
// owner team gets the rule's words; an approver of the owner team
// approves and the plan is applied, as an audit record by socle with
// its approvers (the chain verifies) and a deployment of prod in DORA.
func TestStackApproval(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	t.Parallel()
	// ines (an approver of guest-experience, the owner) wrote the
	// revision; prod opens on Tuesdays and Thursdays 10:00-16:00 Paris
	// time: socle's clock is moved into it.
	repo := stackRepoBy(t, "Ines Moser", "ines.moser@alpenrose.example", map[string][2]string{
		"stacks/edge/stack.yaml": {"dependsOn: [hub]\n", "dependsOn: [hub]\nowner: guest-experience\n"}})
	offset := filepath.Join(t.TempDir(), "offset")
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().In(paris)
	day = time.Date(day.Year(), day.Month(), day.Day()+1, 11, 0, 0, 0, paris)
	for day.Weekday() != time.Tuesday {
		day = day.AddDate(0, 0, 1)
	}
	if err := os.WriteFile(offset, []byte(time.Until(day).Round(time.Second).String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startWith(t, Config{Repo: repo, Data: t.TempDir(), ApplyStacks: true, Clock: clock.Offset{Path: offset}})
	t.Cleanup(r.stop)
	ctx := t.Context()
	tokens := map[string]string{}
	for _, u := range []string{"ines", "lena", "tom", "sofia"} {
		tok, _, err := auth.Create(ctx, r.Store(), u, "stack approval test", "test", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tok
	}
	as := func(user string) *client.Client { return client.New(r.url, tokens[user]) }
	c := client.New(r.url, r.token)

	prod := waitStack(t, c, "edge", "prod", "held for an approval", func(d api.StackDetail) bool {
		return d.Unit != nil && d.Unit.Reason == "AwaitingApproval" && d.Gate != nil
	})
	plan := prod.Plan.PlanID
	if g := prod.Gate; !prod.Gated || g.PlanID != plan || g.Need != 1 || len(g.Approvals) != 0 || g.Author != "ines" ||
		!strings.Contains(prod.Unit.Message, "waits for 1 approval (not by ines, who wrote the change)") {
		t.Fatalf("edge @ prod: gated %v, gate %+v, says %q", prod.Gated, prod.Gate, prod.Unit.Message)
	}
	dora := func(query string) int {
		var f api.DORAFigures
		if err := c.Get(ctx, "/api/v1/dora?period=720h&"+query, &f); err != nil {
			t.Fatal(err)
		}
		return f.Deployments
	}
	deploys, teamDeploys := dora("env=prod"), dora("env=prod&team=guest-experience")

	// The author approves: recorded, but it does not count.
	if a, err := as("ines").ApproveStack(ctx, "edge", "prod", plan, "looks right"); err != nil || a.Plan != plan || a.User != "ines" {
		t.Fatalf("ines approves: %+v %v", a, err)
	}
	// The approval triggers the unit: once the engine has looked at it
	// again, it still waits, and nothing was applied.
	r.passes(t, units.Key{Kind: stack.KindID, Name: "edge", Env: "prod"}, 2)
	if d, err := c.Stack(ctx, "edge", "prod"); err != nil || d.Unit == nil || d.Unit.Reason != "AwaitingApproval" || d.Gate == nil || len(d.Gate.Approvals) != 0 || d.Apply != nil {
		t.Fatalf("after the author's approval: %+v %v", d, err)
	}
	// Another plan: 409, naming the current one.
	_, err = as("lena").ApproveStack(ctx, "edge", "prod", "sha256:0000", "")
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "the current one is "+plan) {
		t.Errorf("approving another plan: %v, want 409 naming %s", err, plan)
	}
	// Outside the owner team, or a developer where developers do not
	// deploy: 403 with the rule.
	for _, u := range []string{"sofia", "tom"} {
		_, err = as(u).ApproveStack(ctx, "edge", "prod", plan, "")
		if apiStatus(err) != http.StatusForbidden || !strings.Contains(err.Error(), "approved by approver, admin of guest-experience") {
			t.Errorf("%s approves: %v, want 403 with the rule", u, err)
		}
	}
	if list, err := c.StackApprovals(ctx, "edge", "prod", ""); err != nil || list.Plan != plan || len(list.Items) != 1 || list.Items[0].User != "ines" {
		t.Errorf("approvals: %+v %v", list, err)
	}

	// lena, an admin, approves: applied, as planned.
	if _, err := as("lena").ApproveStack(ctx, "edge", "prod", plan, "go"); err != nil {
		t.Fatal(err)
	}
	prod = waitStack(t, c, "edge", "prod", "applied", func(d api.StackDetail) bool {
		return d.Apply != nil && d.Apply.Status == "Applied" && d.Unit != nil && d.Unit.Phase == "Synced"
	})
	if prod.Apply.PlanID != plan {
		t.Errorf("applied plan %s, approved %s", prod.Apply.PlanID, plan)
	}
	var audit api.Page[api.AuditRecord]
	if err := c.Get(ctx, "/api/v1/audit?action=stack.applied&limit=1000", &audit); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, rec := range audit.Items {
		var d struct {
			Stack, Instance, Plan string
			Approvers             []string
		}
		json.Unmarshal(rec.Detail, &d)
		if d.Stack == "edge" && d.Instance == "prod" {
			found = true
			if rec.Actor != "socle" || d.Plan != plan || !slices.Equal(d.Approvers, []string{"lena"}) {
				t.Errorf("the audit record of the apply: %+v, detail %s", rec, rec.Detail)
			}
		}
	}
	if !found {
		t.Errorf("no stack.applied record of edge @ prod in %+v", audit.Items)
	}
	var approved api.Page[api.AuditRecord]
	if err := c.Get(ctx, "/api/v1/audit?action=stack.approved&limit=1000", &approved); err != nil || len(approved.Items) != 2 {
		t.Errorf("stack.approved records: %+v %v", approved.Items, err)
	}
	var v api.AuditVerifyResult
	if err := c.Get(ctx, "/api/v1/audit/verify", &v); err != nil || v.Problem != nil || v.Verified == 0 {
		t.Errorf("the audit chain: %+v %v", v, err)
	}
	if got := dora("env=prod"); got != deploys+1 {
		t.Errorf("DORA deployments of prod: %d, were %d; want one more for the stack's apply", got, deploys)
	}
	if got := dora("env=prod&team=guest-experience"); got != teamDeploys+1 {
		t.Errorf("DORA deployments of prod by guest-experience, the stack's owner: %d, were %d; want one more", got, teamDeploys)
	}
	// The app views do not show the stack: not in the matrix, and its
	// release (the apply) is in no app's releases of prod.
	var apps api.Page[api.App]
	if err := c.Get(ctx, "/api/v1/apps", &apps); err != nil {
		t.Fatal(err)
	}
	for _, a := range apps.Items {
		if strings.HasPrefix(a.Name, "stack:") || a.Name == "edge" {
			t.Errorf("the matrix lists a stack as an app: %s", a.Name)
		}
		rels, err := c.Releases(ctx, a.Name, "prod", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, rel := range rels {
			if rel.Artifact == plan || rel.Strategy == "terraform" {
				t.Errorf("%s's releases in prod show the stack's apply: %+v", a.Name, rel)
			}
		}
	}
}

// passes waits until the engine has finished n more passes over the
// unit: the first may have begun before what the caller just did, the
// last began after it.
func (r *running) passes(t *testing.T, k units.Key, n int) {
	t.Helper()
	at := func() time.Time {
		for _, st := range r.engine.Status() {
			if st.Key() == k {
				return st.UpdatedAt
			}
		}
		t.Fatalf("the engine has no unit %v", k)
		return time.Time{}
	}
	last := at()
	deadline := time.Now().Add(waitBudget)
	for n > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the engine did not look at %v again", k)
		}
		if u := at(); u.After(last) {
			last, n = u, n-1
		}
		time.Sleep(20 * time.Millisecond) // polling, not a synchronisation
	}
}

// waitStack polls the API until cond holds for the instance: a
// condition, not a timing.
func waitStack(t *testing.T, c *client.Client, name, instance, what string, cond func(api.StackDetail) bool) api.StackDetail {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for {
		d, err := c.Stack(t.Context(), name, instance)
		if err == nil && cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s @ %s never %s: %+v %v", name, instance, what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStackApplyInterrupted: socle stopped during an apply of edge @ dev
// (its run recorded Applying, as a kill leaves it). Started again, socle
// recovers the run and records it once: a release of the instance
// finished failed, which DORA counts as a failed change, and an audit
// record stack.apply_interrupted; started once more, nothing is recorded
// twice.
func TestStackApplyInterrupted(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	t.Parallel()
	cfg := Config{Repo: stackRepo(t), Data: t.TempDir(), ApplyStacks: true}
	r := startWith(t, cfg)
	waitStack(t, client.New(r.url, r.token), "edge", "dev", "applied", func(d api.StackDetail) bool {
		return d.Apply != nil && d.Apply.Status == "Applied" && d.Unit != nil && d.Unit.Phase == "Synced"
	})
	r.stop()
	runFile := filepath.Join(cfg.Data, "stacks", "edge", "dev", "run.json")
	b, err := os.ReadFile(runFile)
	if err != nil {
		t.Fatal(err)
	}
	var run map[string]any
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatal(err)
	}
	// The plan the dead socle applied: a plan made after the one
	// applied (whose release is recorded), of the same content.
	const plan = "sha256:5e1f1e5e1f1e5e1f1e5e1f1e5e1f1e5e1f1e5e1f1e5e1f1e5e1f1e5e1f1e5e1f"
	run["status"], run["reason"], run["planId"] = "Applying", "", plan
	if b, err = json.Marshal(run); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	key := units.Key{Kind: stack.KindID, Name: "edge", Env: "dev"}
	interrupted := func(r *running) []api.AuditRecord {
		var audit api.Page[api.AuditRecord]
		if err := client.New(r.url, r.token).Get(t.Context(), "/api/v1/audit?action=stack.apply_interrupted&limit=100", &audit); err != nil {
			t.Fatal(err)
		}
		return audit.Items
	}
	for restart := range 2 {
		r = startWith(t, cfg)
		c := client.New(r.url, r.token)
		waitStack(t, c, "edge", "dev", "recovered", func(d api.StackDetail) bool {
			return d.Apply != nil && d.Apply.Status == "Interrupted" && d.Unit != nil && d.Unit.Phase == "Synced"
		})
		r.passes(t, key, 2)
		recs := interrupted(r)
		if len(recs) != 1 {
			r.stop()
			t.Fatalf("after restart %d: %d stack.apply_interrupted records, want 1: %+v", restart+1, len(recs), recs)
		}
		var d struct{ Stack, Instance, Plan string }
		json.Unmarshal(recs[0].Detail, &d)
		if recs[0].Actor != "socle" || d.Stack != "edge" || d.Instance != "dev" || d.Plan != plan {
			t.Errorf("the record: %+v, detail %s; want edge @ dev, plan %s", recs[0], recs[0].Detail, plan)
		}
		rels, err := r.Store().Releases(t.Context(), store.ReleaseFilter{App: stack.StoreApp("edge"), Env: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		var failed int
		for _, rel := range rels {
			if rel.Artifact == plan {
				failed++
				if rel.Status != store.Failed || rel.Reason != "interrupted: socle stopped during the apply" || rel.Revision == "" {
					t.Errorf("the release of the interrupted apply: %+v", rel)
				}
			}
		}
		if failed != 1 {
			t.Errorf("after restart %d: %d releases of plan %s, want 1: %+v", restart+1, failed, plan, rels)
		}
		var f api.DORAFigures
		if err := c.Get(t.Context(), "/api/v1/dora?period=720h&env=dev", &f); err != nil || f.Failures != 1 {
			t.Errorf("DORA of dev: %+v %v; want the interrupted apply as a failure", f, err)
		}
		r.stop()
	}
}

// TestStackApprovalNeededNotified: a gated stack instance (edge @ prod,
// prod syncing manually) whose plan starts waiting for approvals sends
// prod's notifications (the demo's release-channel, a Slack webhook here
// a loopback receiver) approval.needed, naming the stack, the instance,
// the plan with what it changes and the portal's page; once, however
// many passes see it waiting.
func TestStackApprovalNeededNotified(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	var mu sync.Mutex
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	t.Setenv("SOCLE_SLACK_RELEASES_URL", recv.URL+"/hooks/releases")
	asked := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, b := range bodies {
			if strings.Contains(b, "stack edge @ prod") {
				out = append(out, b)
			}
		}
		return out
	}
	r := startWith(t, Config{Repo: stackRepo(t), Data: t.TempDir(), ApplyStacks: true})
	t.Cleanup(r.stop)
	c := client.New(r.url, r.token)
	prod := waitStack(t, c, "edge", "prod", "held for an approval", func(d api.StackDetail) bool {
		return d.Unit != nil && d.Unit.Reason == "AwaitingApproval" && d.Gate != nil
	})
	deadline := time.Now().Add(waitBudget)
	for len(asked()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no approval.needed of edge @ prod reached the receiver: %q", bodies)
		}
		time.Sleep(20 * time.Millisecond) // polling, not a synchronisation
	}
	r.passes(t, units.Key{Kind: stack.KindID, Name: "edge", Env: "prod"}, 2)
	got := asked()
	if len(got) != 1 {
		t.Fatalf("%d approval.needed notifications of edge @ prod, want 1: %q", len(got), got)
	}
	for _, want := range []string{"Approval needed", prod.Plan.PlanID, "1 to add", "+ terraform_data.edge", r.url + "/stacks/edge/prod", "socle stack approve edge --env prod"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("the notification does not say %q:\n%s", want, got[0])
		}
	}
	if strings.Contains(got[0], hubSecret) {
		t.Errorf("the notification shows a secret:\n%s", got[0])
	}
	var evs api.Page[api.Event]
	if err := c.Get(t.Context(), "/api/v1/events?kind=stack.approval_needed&app=edge", &evs); err != nil || len(evs.Items) != 1 || evs.Items[0].Env != "prod" {
		t.Errorf("stack.approval_needed events: %+v %v", evs.Items, err)
	}
}

// TestZoneStackApprovalNeededNotified: a gated instance of a zone stack
// (hub @ connectivity) whose plan waits is announced to the zone's own
// notify list (connectivity's: the release channel here), routed by the
// zone, once.
func TestZoneStackApprovalNeededNotified(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	var mu sync.Mutex
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	t.Setenv("SOCLE_SLACK_RELEASES_URL", recv.URL+"/hooks/releases")
	platform, err := os.ReadFile("../../examples/platform/socle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const account = "    account: alpenrose-connectivity\n"
	if !strings.Contains(string(platform), account) {
		t.Fatalf("the demo's connectivity zone has no %q: update the test", account)
	}
	files := maps.Clone(stackFiles)
	files["socle.yaml"] = strings.Replace(string(platform), account, account+"    notify: [release-channel]\n", 1)
	files["stacks/hub/stack.yaml"] = strings.Replace(files["stacks/hub/stack.yaml"], "zones: [connectivity]\n", "zones: [connectivity]\napply: gated\n", 1)
	r := startWith(t, Config{Repo: platformWith(t, "Ann Example", "ann@example.com", []string{"stacks", "policies/stacks.yaml"}, files), Data: t.TempDir(), ApplyStacks: true})
	t.Cleanup(r.stop)
	c := client.New(r.url, r.token)
	hub := waitStack(t, c, "hub", "connectivity", "held for an approval", func(d api.StackDetail) bool {
		return d.Unit != nil && d.Unit.Reason == "AwaitingApproval" && d.Gate != nil
	})
	asked := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, b := range bodies {
			if strings.Contains(b, "stack hub @ connectivity") {
				out = append(out, b)
			}
		}
		return out
	}
	for deadline := time.Now().Add(waitBudget); len(asked()) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no approval.needed of hub @ connectivity reached the zone's channel: %q", bodies)
		}
		time.Sleep(20 * time.Millisecond) // polling, not a synchronisation
	}
	r.passes(t, units.Key{Kind: stack.KindID, Name: "hub", Env: "connectivity"}, 2)
	got := asked()
	if len(got) != 1 || !strings.Contains(got[0], hub.Plan.PlanID) || !strings.Contains(got[0], "socle stack approve hub --env connectivity") || strings.Contains(got[0], hubSecret) {
		t.Errorf("approval.needed of hub @ connectivity, want one naming plan %s, no secret: %q", hub.Plan.PlanID, got)
	}
}
