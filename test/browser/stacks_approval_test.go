package browser

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/socle-dev/socle/internal/api"
)

// tunnelSecret is the secret input of the approvals' stack.
const tunnelSecret = "tunnel-key-0c9d3b21"

// tunnelFiles are a stack of bookings in prod only: prod syncs by hand, so
// each plan waits for an approver of bookings (sofia), never a developer
// (marco).
func tunnelFiles(peer string) map[string]string {
	return map[string]string{
		"stacks/tunnel/stack.yaml": `apiVersion: socle.dev/v1
kind: Stack
owner: bookings
environments: [prod]
inputs:
  key: ` + tunnelSecret + `
`,
		"stacks/tunnel/main.tf": `variable "key" {
  type      = string
  sensitive = true
}

resource "terraform_data" "tunnel" {
  input = {
    peer     = "` + peer + `"
    key      = var.key
    location = "europe-west6"
    tags     = { owner = "bookings", cost-center = "cc-2000", environment = "prod" }
  }
}
`,
	}
}

// waiting reports whether d's plan waits for an approval.
func waiting(d api.StackDetail) bool {
	return d.Unit != nil && d.Unit.Reason == "AwaitingApproval" && d.Gate != nil && d.Plan != nil && d.Gate.PlanID == d.Plan.PlanID
}

// TestStackApproval: a gated prod instance's plan is approved from its
// page by an approver and then applied; a developer is offered no button
// and the API refuses the form sent anyway, with the rule; an approval of
// a plan made again since the page was loaded is refused and the page
// names the current plan. The pages pass axe-core and show no secret.
func TestStackApproval(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: stacks are not run")
	}
	commitFiles(t, tunnelFiles("10.9.0.1"), "stacks: a tunnel of bookings in prod")
	first := waitStack(t, "tunnel", "prod", "held for approval", waiting)
	const page = "/stacks/tunnel/prod"

	marco := newUser(t)
	marco.login("marco")
	marco.open(page)
	if eval[bool](marco, `document.getElementById("approve") !== null`) {
		t.Error("a developer is offered the approval of a prod stack's plan")
	}
	if got := marco.text(`section[aria-labelledby="h-gate"]`); !strings.Contains(got, "You cannot approve this plan: marco has developer in bookings") ||
		!strings.Contains(got, "0 of 1 needed") || !strings.Contains(got, first.Plan.PlanID) {
		t.Errorf("the approval section, as marco reads it:\n%s", got)
	}
	marco.checkAxe(page + " as a developer")
	// The form sent anyway, as a crafted page would: the API refuses it.
	refused := eval[string](marco, fmt.Sprintf(`fetch(%q, {method: "POST", body: new URLSearchParams({plan: %q})}).then(function (r) {
		return r.text().then(function (t) { return r.status + " " + t; });
	})`, page+"/approve", first.Plan.PlanID))
	if !strings.HasPrefix(refused, "403 ") || !strings.Contains(refused, "are approved by approver, admin of bookings") {
		t.Errorf("marco's approval sent anyway: %.300s", refused)
	}

	sofia := newUser(t)
	sofia.login("sofia")
	sofia.open(page)
	if got := sofia.text("#approve"); got != "Approve plan "+first.Plan.PlanID {
		t.Fatalf("sofia's button reads %q, want Approve plan %s", got, first.Plan.PlanID)
	}
	sofia.checkAxe(page + " as an approver")

	// The stack changes while sofia's page is open: her page approves a
	// plan that is no longer the one that would be applied.
	commitFiles(t, tunnelFiles("10.9.0.2"), "stacks: the tunnel's new peer")
	second := waitStack(t, "tunnel", "prod", "planned again", func(d api.StackDetail) bool { return waiting(d) && d.Plan.PlanID != first.Plan.PlanID })
	sofia.do("approving the plan the page showed",
		chromedp.SendKeys("#comment", "peer checked"),
		chromedp.Click("#approve"),
		chromedp.WaitVisible(`[role="alert"]`))
	if s := sofia.status(); s != http.StatusConflict {
		t.Errorf("approving a stale plan answers %d, want 409", s)
	}
	want := "The plan changed since you loaded the page; the current plan is " + second.Plan.PlanID
	if got := sofia.text(`[role="alert"]`); !strings.Contains(got, want) {
		t.Errorf("the refusal reads %q, want %q", got, want)
	}
	if got := sofia.text("#approve"); got != "Approve plan "+second.Plan.PlanID {
		t.Errorf("after the refusal the button reads %q, want the current plan %s", got, second.Plan.PlanID)
	}
	if got := eval[string](sofia, `document.getElementById("comment").value`); got != "peer checked" {
		t.Errorf("the comment typed is lost: %q", got)
	}
	// At a desktop and a phone width: axe-core finds no serious problem,
	// and no plan ID runs off the side of a phone.
	for _, w := range widths {
		sofia.setWidth(w.w, w.h)
		sofia.checkPage(page+" after a stale approval at "+w.name+" width", w.name == "phone")
		if w.name == "phone" {
			sofia.shot("stack-approve-stale-phone")
		}
	}
	sofia.setWidth(widths[0].w, widths[0].h)
	sofia.shot("stack-approve-stale")

	sofia.do("approving the current plan", chromedp.Click("#approve"), chromedp.WaitVisible(`.notice`))
	if got := eval[string](sofia, "location.pathname + location.search"); got != page+"?done=approve" {
		t.Errorf("after the approval the browser is at %s", got)
	}
	if got := sofia.text(".notice"); !strings.Contains(got, "Your approval is recorded") {
		t.Errorf("the notice reads %q", got)
	}
	sofia.shot("stack-approved")
	var as api.StackApprovalList
	if err := call(t, "admin", http.MethodGet, "/api/v1/stacks/tunnel/prod/approvals?plan="+second.Plan.PlanID, nil, &as); err != nil ||
		len(as.Items) != 1 || as.Items[0].User != "sofia" || as.Items[0].Comment != "peer checked" {
		t.Errorf("the approvals of %s: %+v (%v), want sofia's with her comment", second.Plan.PlanID, as, err)
	}
	if err := call(t, "admin", http.MethodGet, "/api/v1/stacks/tunnel/prod/approvals?plan="+first.Plan.PlanID, nil, &as); err != nil || len(as.Items) != 0 {
		t.Errorf("the stale plan %s was approved: %+v (%v)", first.Plan.PlanID, as, err)
	}

	// The unit moves on: the approved plan is applied, and the page says so.
	waitStack(t, "tunnel", "prod", "applied", func(d api.StackDetail) bool {
		return d.Apply != nil && d.Apply.PlanID == second.Plan.PlanID && d.Apply.Status == "Applied" && d.Unit != nil && d.Unit.Phase == "Synced"
	})
	sofia.open(page)
	if got := sofia.text(".status"); !strings.Contains(got, "Synced") {
		t.Errorf("the status after the apply reads %q", got)
	}
	if got := sofia.text(`section[aria-labelledby="h-apply"]`); !strings.Contains(got, "Applied") || !strings.Contains(got, second.Plan.PlanID) {
		t.Errorf("the last apply reads:\n%s", got)
	}
	if eval[bool](sofia, `document.getElementById("approve") !== null`) {
		t.Error("an applied instance still offers an approval")
	}
	for _, b := range []*tab{marco, sofia} {
		for _, path := range []string{page, "/stacks", "/"} {
			b.open(path)
			if html := eval[string](b, "document.documentElement.outerHTML"); strings.Contains(html, tunnelSecret) {
				t.Errorf("%s shows the tunnel's secret input", path)
			}
		}
	}
}
