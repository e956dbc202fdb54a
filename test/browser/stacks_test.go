package browser

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/socle-dev/socle/internal/api"
)

// stackSecret is the secret input of the test's stack: no page may show it.
const stackSecret = "vpn-psk-5e1f0a77"

// vpnFiles are a stack of builtin terraform_data resources (no provider
// to download) in dev, which applies at once, and prod, which syncs by
// hand and so waits for an approval with its plan: a secret input, and a
// sensitive output that holds it.
var vpnFiles = map[string]string{
	"stacks/vpn/stack.yaml": `apiVersion: socle.dev/v1
kind: Stack
environments: [dev, prod]
inputs:
  env: ${environment.name}
  psk: ` + stackSecret + `
`,
	"stacks/vpn/main.tf": `variable "env" {
  type = string
}

variable "psk" {
  type      = string
  sensitive = true
}

resource "terraform_data" "gateway" {
  input = {
    name     = "vpn-${var.env}"
    psk      = var.psk
    location = "europe-west6"
    tags     = { owner = "platform", cost-center = "cc-1000", environment = var.env }
  }
}

output "gateway_id" {
  value = terraform_data.gateway.id
}

output "psk" {
  value     = var.psk
  sensitive = true
}
`,
}

// commitFiles writes files into the platform repository and commits them,
// then has socle fetch at once (the git webhook).
func commitFiles(t *testing.T, files map[string]string, msg string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(repoDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, "add", "-A")
	git(t, "commit", "-qm", msg)
	socle.Trigger()
	return git(t, "rev-parse", "HEAD")
}

// waitStack polls the API until the instance is as ok says (a stack not
// yet in the revision in force reads as nothing yet) and returns it.
func waitStack(t *testing.T, name, instance, what string, ok func(api.StackDetail) bool) api.StackDetail {
	t.Helper()
	var d api.StackDetail
	for deadline := time.Now().Add(build); ; {
		d = api.StackDetail{}
		if err := call(t, "admin", http.MethodGet, "/api/v1/stacks/"+name+"/"+instance, nil, &d); err != nil && !strings.Contains(err.Error(), "404") {
			t.Fatal(err)
		}
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s @ %s never %s: %+v", name, instance, what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStackPages: a stack committed to the demo is applied in dev and
// held for approval in prod; the matrix shows both beside the apps, the
// prod instance's page shows why it waits and its plan resource by
// resource, dev's page its outputs and its apply; no page shows the
// secret input.
func TestStackPages(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: stacks are not run")
	}
	rev := commitFiles(t, vpnFiles, "stacks: a VPN gateway per environment")
	dev := waitStack(t, "vpn", "dev", "applied", func(d api.StackDetail) bool {
		return d.Apply != nil && d.Apply.Status == "Applied" && d.Unit != nil && d.Unit.Phase == "Synced"
	})
	prod := waitStack(t, "vpn", "prod", "held for approval", func(d api.StackDetail) bool {
		return d.Unit != nil && d.Unit.Reason == "AwaitingApproval" && d.Plan != nil
	})
	if prod.Unit.Revision != rev {
		t.Errorf("vpn @ prod was planned from %s, want the commit %s", prod.Unit.Revision, rev)
	}

	lena := newUser(t)
	lena.login("lena")
	lena.open("/")
	cell := lena.text(`[data-stack="vpn/prod"]`)
	if !strings.Contains(cell, "Blocked") || !strings.Contains(cell, "awaiting approval") || !strings.Contains(cell, "+1 ~0 -0") {
		t.Errorf("the matrix's vpn @ prod cell reads %q", cell)
	}
	if got := lena.text(`[data-stack="vpn/dev"]`); !strings.Contains(got, "Synced") {
		t.Errorf("the matrix's vpn @ dev cell reads %q", got)
	}
	lena.shot("matrix-stacks")
	lena.do("opening vpn @ prod from the matrix", chromedp.Click(`[data-stack="vpn/prod"] a`), chromedp.WaitVisible("#h-plan"))
	if got := eval[string](lena, "location.pathname"); got != "/stacks/vpn/prod" {
		t.Errorf("the cell led to %s", got)
	}
	if got := lena.text(".status"); !strings.Contains(got, "waits for 1 approval") || !strings.Contains(got, prod.Plan.PlanID) {
		t.Errorf("the status of vpn @ prod reads %q, want why it waits", got)
	}
	plan := lena.text("ul.resources")
	if !strings.Contains(plan, "+ create") || !strings.Contains(plan, "terraform_data.gateway") || !strings.Contains(plan, "(sensitive)") {
		t.Errorf("the plan of vpn @ prod reads:\n%s", plan)
	}
	lena.shot("stack-prod")

	lena.open("/stacks/vpn/dev")
	outputs := lena.text(`section[aria-labelledby="h-outputs"]`)
	if !strings.Contains(outputs, "gateway_id") || !strings.Contains(outputs, "(sensitive)") {
		t.Errorf("the outputs of vpn @ dev read:\n%s", outputs)
	}
	if got := lena.text(`section[aria-labelledby="h-history"]`); !strings.Contains(got, dev.Apply.PlanID) || !strings.Contains(got, "Applied") {
		t.Errorf("the history of vpn @ dev reads:\n%s", got)
	}
	// The last run's log, drawn from its start once opened, its secret
	// input redacted.
	lena.do("opening the last run's log", chromedp.Click(`details.logs summary`))
	lena.waitJS("the last run's log drawn", `(function () {
		var p = document.querySelector("details.logs pre");
		return p && p.textContent.indexOf("$ terraform ") >= 0 && /\n# (planned|applied|nochanges|insync)/.test(p.textContent);
	})()`, build)
	if got := lena.text("details.logs pre"); strings.Contains(got, stackSecret) || !strings.HasPrefix(got, "# ") {
		t.Errorf("the last run's log of vpn @ dev reads:\n%s", got)
	}
	lena.shot("stack-dev")
	lena.open("/stacks")
	if got := lena.text("table.stacklist"); !strings.Contains(got, "vpn @ dev") || !strings.Contains(got, "vpn @ prod") {
		t.Errorf("the stacks page lists:\n%s", got)
	}
	lena.shot("stacks")

	// The secret is in no page, nor in what the pages' script reads.
	for _, path := range []string{"/", "/stacks", "/stacks/vpn/dev", "/stacks/vpn/prod", "/revisions/" + rev, "/activity"} {
		lena.open(path)
		if s := lena.status(); s != http.StatusOK {
			t.Errorf("%s: %d", path, s)
		}
		if html := eval[string](lena, "document.documentElement.outerHTML"); strings.Contains(html, stackSecret) {
			t.Errorf("%s shows the stack's secret input", path)
		}
	}
	if html := eval[string](lena, fmt.Sprintf(`fetch(%q).then(function (r) { return r.text(); })`, "/api/v1/stacks/vpn/prod")); strings.Contains(html, stackSecret) || !strings.Contains(html, "terraform_data.gateway") {
		t.Errorf("the instance's API answer, as the browser reads it, holds the secret or no plan:\n%s", html)
	}

	// The stack pages, as every page of the portal: axe-core finds no
	// serious problem at a desktop and a phone width, and nothing runs off
	// the side of a phone.
	for _, w := range widths {
		lena.setWidth(w.w, w.h)
		for _, path := range []string{"/", "/stacks", "/stacks/vpn/dev", "/stacks/vpn/prod"} {
			lena.open(path)
			lena.checkPage(path+" at "+w.name+" width", w.name == "phone")
		}
	}
	lena.shot("stack-prod-phone")
	lena.setWidth(widths[0].w, widths[0].h)

	// A second resource: the matrix left open redraws prod's cell live
	// with the new plan, and draws it as the server does.
	watch(lena)
	commitFiles(t, map[string]string{"stacks/vpn/route.tf": `resource "terraform_data" "route" {
  input = "0.0.0.0/0 via vpn-${var.env}"
}
`}, "stacks: vpn routes everything")
	lena.waitJS("prod's new plan drawn live", `(function () {
		var c = document.querySelector('[data-stack="vpn/prod"]');
		return c && c.innerText.indexOf("+2 ~0 -0") >= 0 && c.innerText.indexOf("awaiting approval") >= 0;
	})()`, build)
	if !eval[bool](lena, `window.socleMark === true`) {
		t.Fatal("the page was reloaded; vpn @ prod's cell did not change live")
	}
	lena.shot("matrix-stacks-live")
	// dev applies the route meanwhile: the page and the list compared
	// must be of one moment. compareStackCells reads the list, the page
	// as served and the list again; only when both lists draw alike was
	// the page served in that state.
	if diff := compareStackCells(t, lena); diff != "" {
		t.Errorf("stack cells drawn differently:\n%s", diff)
	}
	// Every reason and summary the script may meet, drawn as stacks.go
	// words them.
	drawn := eval[string](lena, `window.socle.stackCellBody({stack: "s", instance: "i", unit: {phase: "Blocked", reason: "PolicyDenied"},
		plan: {summary: {add: 1, replace: 2, destroy: 3}, outdated: true}, lock: {pid: 1}}).replace(/<[^>]*>/g, "|")`)
	if want := "|Blocked| |policy denied| ||plan: 1 to add, 0 to change, 2 to replace, 3 to destroy||+1 ~0 -/+2 -3| |outdated|| |running now|"; drawn != want {
		t.Errorf("the script draws a stack cell as\n%s\nwant\n%s", drawn, want)
	}
}

// compareStackCells compares each stack cell of the matrix, as the server
// serves it, with the script's drawing of the API's list: "" when they
// agree, else the differences. The list is read before and after the
// page; while an instance changes between the two (a run starts or ends),
// the reading is made again, so that the page is compared with the state
// it was served in. The run lock ("running now") is left out of the
// comparison: a cached plan takes it for an instant, which no two reads
// can bracket.
func compareStackCells(t *testing.T, lena *tab) string {
	t.Helper()
	lena.open("/")
	for deadline := time.Now().Add(build); ; {
		var r struct {
			Moved bool   `json:"moved"`
			Diff  string `json:"diff"`
		}
		js := eval[string](lena, `(function () {
			function list() { return fetch("/api/v1/stacks").then(function (r) { return r.json(); }); }
			// The run lock is left out: a cached plan takes it for an
			// instant, between two reads of the list as well (the script's
			// drawing of it is checked below, the server's by the goldens).
			function unlocked(h) { return h.replace(/ ?<span class="running">running now<\/span>/, ""); }
			function draw(it) {
				return unlocked('<span class="sr where">' + it.stack + ' in ' + it.instance + ': </span>' + window.socle.stackCellBody(it));
			}
			function drawn(l) { return l.items.map(function (it) { return it.stack + "/" + it.instance + "=" + draw(it); }).join("\n"); }
			var before, page;
			return list().then(function (l) {
				before = l;
				return fetch("/").then(function (r) { return r.text(); });
			}).then(function (html) {
				page = new DOMParser().parseFromString(html, "text/html");
				return list();
			}).then(function (after) {
				if (drawn(before) !== drawn(after)) return JSON.stringify({moved: true});
				var out = [], div = document.createElement("div");
				after.items.forEach(function (it) {
					var served = page.querySelector('td[data-stack="' + it.stack + '/' + it.instance + '"] a');
					div.innerHTML = draw(it);
					if (!served) out.push(it.stack + "/" + it.instance + ": not on the page");
					else if (unlocked(served.innerHTML) !== div.innerHTML) out.push(it.stack + "/" + it.instance + ":\n served " + served.innerHTML + "\n script " + div.innerHTML);
				});
				if (!after.items.length) out.push("no stack to compare");
				return JSON.stringify({diff: out.join("\n")});
			});
		})()`)
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("comparing the stack cells: %v: %s", err, js)
		}
		if !r.Moved {
			return r.Diff
		}
		if time.Now().After(deadline) {
			t.Fatal("the stacks never stood still long enough to compare the page with the list")
		}
		time.Sleep(200 * time.Millisecond) // polling, not a synchronisation
	}
}
