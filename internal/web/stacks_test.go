package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/stack"
)

// TestRedactedIsTheAPIs: the pages recognise the API's word for a
// sensitive value.
func TestRedactedIsTheAPIs(t *testing.T) {
	if redactedValue != stack.Redacted {
		t.Errorf("the portal marks %q as sensitive, the API redacts with %q", redactedValue, stack.Redacted)
	}
}

// TestStackPages: each instance's page says why it stands where it stands,
// shows its plan resource by resource, and shows a sensitive value only
// as (sensitive); the matrix links each instance.
func TestStackPages(t *testing.T) {
	srv, _ := newTestPortal(t)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/stacks/hub/connectivity", []string{"Synced", `<code>key</code></td><td><code class="redacted">(sensitive)</code>`, "InSync: nothing changed outside socle",
			"p-hub-1", "local-exec provisioner error", `href="/revisions/` + fakeStackRev}},
		{"/stacks/network/dev", []string{"+ create", "~ update in-place", `terraform_data.subnet[&#34;app&#34;]`, "input.psk", "(sensitive)", "held by socle pid 4242 on socle-1"}},
		{"/stacks/network/preprod", []string{"Degraded", `<span class="reason">drift</span>`, "Drifted: 1 resource changed outside socle", `&#34;10.2.9.0/24&#34;`}},
		{"/stacks/network/prod", []string{"Blocked", "policy denied", "no replace of a network in production (no-replace-in-prod)", "-/+ replace", "forces replacement"}},
		{"/stacks/edge/dev", []string{"upstream pending", "output <code>subnet_id</code> of <a href=\"/stacks/network/dev\">network @ dev</a>"}},
	} {
		resp, body := get(t, srv, "tok-marco", tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", tc.path, resp.StatusCode)
			continue
		}
		body = strings.ReplaceAll(body, "&#43;", "+")
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %q", tc.path, w)
			}
		}
		if strings.Contains(body, stack.Redacted) {
			t.Errorf("GET %s shows the API's %q rather than (sensitive)", tc.path, stack.Redacted)
		}
	}
	_, home := get(t, srv, "tok-marco", "/")
	for _, d := range fakeStacks() {
		if !strings.Contains(home, `<a href="/stacks/`+d.Stack+"/"+d.Instance+`">`) {
			t.Errorf("the matrix has no link to %s @ %s", d.Stack, d.Instance)
		}
	}
	if !strings.Contains(home, `<a href="/stacks">Stacks</a>`) {
		t.Error("the navigation has no link to the stacks")
	}
	resp, body := get(t, srv, "tok-marco", "/stacks/hub/nowhere")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no stack instance hub/nowhere") {
		t.Errorf("an unknown instance: %d", resp.StatusCode)
	}
}

func TestStackMatrixColumns(t *testing.T) {
	l := api.StackList{Items: []api.StackInstance{
		{Stack: "hub", Instance: "connectivity", Of: "zone"},
		{Stack: "net", Instance: "prod", Of: "environment"},
		{Stack: "net", Instance: "dev", Of: "environment"},
		{Stack: "mgmt", Instance: "management", Of: "zone"},
	}}
	envs := []api.Environment{{Name: "dev"}, {Name: "prod"}}
	m := buildStackMatrix(l, envs, []string{"identity", "management", "connectivity"})
	if len(m.Tables) != 2 {
		t.Fatalf("%d tables, want one per environment and one per zone", len(m.Tables))
	}
	env, zone := m.Tables[0], m.Tables[1]
	if strings.Join(env.Columns, ",") != "dev,prod" || len(env.Rows) != 1 || env.Rows[0].Cells[0].Instance != "dev" || env.Rows[0].Cells[1].Instance != "prod" {
		t.Errorf("per environment: %+v", env)
	}
	// Zones in the platform's order, those without a stack left out.
	if strings.Join(zone.Columns, ",") != "management,connectivity" || len(zone.Rows) != 2 || zone.Rows[0].Name != "hub" || zone.Rows[0].Cells[0] != nil || zone.Rows[0].Cells[1] == nil {
		t.Errorf("per zone: %+v", zone)
	}
	// The zone filter keeps its own column only.
	if m := buildStackMatrix(l, nil, []string{"connectivity"}); len(m.Tables) != 1 || m.Tables[0].Of != "zone" || len(m.Tables[0].Rows) != 1 {
		t.Errorf("filtered on connectivity: %+v", m.Tables)
	}
	if m := buildStackMatrix(api.StackList{}, envs, nil); m != nil {
		t.Errorf("no stack: %+v, want no section", m)
	}
}

func TestCodeWords(t *testing.T) {
	for in, want := range map[string]string{
		"AwaitingApproval": "awaiting approval",
		"PolicyDenied":     "policy denied",
		"NoSavedPlan":      "no saved plan",
		"Drift":            "drift",
		"PlanTooLarge":     "plan too large",
		"":                 "",
	} {
		if got := codeWords(in); got != want {
			t.Errorf("codeWords(%q) = %q, want %q", in, got, want)
		}
	}
	if got := planSummary(api.StackSummary{Add: 1, Replace: 2, Destroy: 3}); got != "+1 ~0 -/+2 -3" {
		t.Errorf("planSummary = %q", got)
	}
}

// TestMatrixWithoutStacks: the apps are shown when the stacks cannot be
// read, with why; a stack page answers the API's status.
func TestMatrixWithoutStacks(t *testing.T) {
	srv, f := newTestPortal(t)
	f.stacksRefused = true
	resp, body := get(t, srv, "tok-marco", "/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-cell="api/dev"`) || strings.Contains(body, `id="h-stacks"`) ||
		!strings.Contains(body, "The stacks could not be read: no valid revision of the platform repository yet") {
		t.Errorf("the matrix when the stacks are refused: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv, "tok-marco", "/stacks/hub/connectivity"); resp.StatusCode != http.StatusConflict {
		t.Errorf("a stack page when the API refuses: %d, want 409", resp.StatusCode)
	}
}

// TestStackApprove: the form approves the plan the page showed, through
// the API, and the page then says so; a plan made again since is not
// approved, and the page names the current one; only an admin is offered
// the unlock, which posts to the API after its confirmation.
func TestStackApprove(t *testing.T) {
	srv, f := newTestPortal(t)
	resp, _ := post(t, srv, "tok-sofia", "/stacks/vpn/prod/approve", url.Values{"plan": {"p-vpn-7"}, "comment": {"looks right"}}, "")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/stacks/vpn/prod?done=approve#h-gate" {
		t.Fatalf("approve: %d to %q", resp.StatusCode, loc)
	}
	if want := `POST /api/v1/stacks/vpn/prod/approvals {"plan":"p-vpn-7","comment":"looks right"}`; len(f.posted) != 1 || f.posted[0] != want {
		t.Errorf("posted %q, want %q", f.posted, want)
	}
	_, body := get(t, srv, "tok-sofia", "/stacks/vpn/prod?done=approve")
	if !strings.Contains(body, "Your approval is recorded") {
		t.Error("the page after an approval does not say it is recorded")
	}

	resp, body = post(t, srv, "tok-sofia", "/stacks/vpn/prod/approve", url.Values{"plan": {"p-vpn-6"}, "comment": {"stale"}}, "")
	if resp.StatusCode != http.StatusConflict ||
		!strings.Contains(body, "The plan changed since you loaded the page; the current plan is p-vpn-7") ||
		!strings.Contains(body, `name="plan" value="p-vpn-7"`) || !strings.Contains(body, `value="stale"`) {
		t.Errorf("approving a stale plan: %d\n%s", resp.StatusCode, body)
	}

	for tok, want := range map[string]bool{"tok-ada": true, "tok-sofia": false, "tok-marco": false} {
		_, body := get(t, srv, tok, "/stacks/network/dev")
		if got := strings.Contains(body, `href="/stacks/network/dev/unlock"`); got != want {
			t.Errorf("%s is offered the unlock: %v, want %v", tok, got, want)
		}
		_, body = get(t, srv, tok, "/stacks/network/dev/unlock")
		if got := strings.Contains(body, `action="/stacks/network/dev/unlock"`); got != want {
			t.Errorf("%s gets the unlock form: %v, want %v", tok, got, want)
		}
	}
	resp, _ = post(t, srv, "tok-ada", "/stacks/network/dev/unlock", url.Values{"force": {"on"}}, "")
	if resp.StatusCode != http.StatusSeeOther || f.posted[len(f.posted)-1] != `POST /api/v1/stacks/network/dev/unlock {"force":true}` {
		t.Errorf("unlock: %d, posted %q", resp.StatusCode, f.posted)
	}
	for tok, want := range map[string]bool{"tok-sofia": true, "tok-ada": true, "tok-marco": false} {
		_, body := get(t, srv, tok, "/stacks/vpn/prod")
		if got := strings.Contains(body, `id="approve"`); got != want {
			t.Errorf("%s is offered the approval of vpn @ prod: %v, want %v", tok, got, want)
		}
	}
	// An instance that is not gated offers no approval. (No fake instance
	// is gated with no plan waiting: that case is not checked here.)
	_, body = get(t, srv, "tok-sofia", "/stacks/network/prod")
	if strings.Contains(body, `id="approve"`) || strings.Contains(body, `id="h-gate"`) {
		t.Error("an instance that is not gated offers an approval")
	}
}
