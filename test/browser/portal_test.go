package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/money"
)

// build is how long a test waits for apps to be built and rolled out.
const build = 4 * time.Minute

func short(s string) string { return s[:min(7, len(s))] }

// digest12 is an artifact as the portal prints it.
func digest12(s string) string {
	_, h, _ := strings.Cut(s, ":")
	return h[:min(12, len(h))]
}

// watch opens the matrix in a tab, waits for its live stream, and marks
// the page: a change seen later with the mark still there was drawn live,
// not by a reload.
func watch(b *tab) {
	b.t.Helper()
	b.open("/")
	b.do("the matrix", chromedp.WaitVisible("#matrix"))
	b.waitJS("the live stream", `document.body.dataset.stream === "open"`, 30*time.Second)
	eval[bool](b, `window.socleMark = true`)
}

func (b *tab) waitLive(what, app, env, expr string) {
	b.t.Helper()
	sel := cellSel(app, env)
	b.waitJS(what, fmt.Sprintf(`(function(){ var c = document.querySelector(%q); return c && (function(text){ return %s; })(c.innerText); })()`, sel, expr), build)
	if !eval[bool](b, `window.socleMark === true`) {
		b.t.Fatalf("%s: the page was reloaded; the cell did not change live", what)
	}
}

// TestDeveloperDeploysToDev: a developer signs in, sees the matrix, commits
// a change, deploys it to dev from the portal, and sees the cell change
// live in the matrix they had open.
func TestDeveloperDeploysToDev(t *testing.T) {
	before := waitCell(t, "api", "dev", "the first rollout", build, func(c api.AppEnv) bool { return c.Phase == "Synced" && c.Artifact != "" })

	marco := newUser(t)
	marco.open("/login")
	marco.shot("login")
	marco.login("marco")
	if got := marco.text(".who .role"); !strings.Contains(got, "developer (bookings)") {
		t.Errorf("the header says %q", got)
	}
	watch(marco)
	if got := marco.text(cellSel("api", "dev")); !strings.Contains(got, "Synced") || !strings.Contains(got, short(before.Revision)) {
		t.Errorf("api in dev reads %q, want Synced at %s", got, short(before.Revision))
	}
	for _, env := range []string{"dev", "preprod", "prod", "sandbox"} {
		if n := eval[int](marco, fmt.Sprintf(`document.querySelectorAll('#matrix [data-cell$="/%s"]').length`, env)); n != 3 {
			t.Errorf("the matrix has %d cells in %s, want 3 (api, web, worker)", n, env)
		}
	}
	marco.shot("matrix")

	rev := commit(t, "apps/api/main.go", "// the browser test's change", "api: a change deployed from the portal")
	other := marco.another()
	other.open("/apps/api")
	other.shot("app")
	other.do("opening the deploy confirmation", chromedp.Click(`#env-dev a[data-action="deploy"]`), chromedp.WaitVisible("#confirm"))
	if got := other.text("h1"); got != "Deploy api to dev?" {
		t.Errorf("the confirmation is titled %q", got)
	}
	if got := other.text(".preview"); !strings.Contains(got, "Gates") || !strings.Contains(got, "Plan") {
		t.Errorf("the confirmation shows no plan and gates:\n%s", got)
	}
	other.shot("confirm-deploy")
	other.do("deploying", chromedp.Click("#confirm"), chromedp.WaitVisible(".notice"))
	if got := other.text(".notice"); got != "Deploy to dev started." {
		t.Errorf("after the deploy the page says %q", got)
	}

	marco.waitLive("the new version running in dev", "api", "dev", fmt.Sprintf(`text.indexOf(%q) >= 0 && text.indexOf("Synced") >= 0`, short(rev)))
	marco.shot("matrix-live-dev")
}

// TestApproverApprovesProd: an approver opens the blocked prod cell, reads
// why it waits, approves, promotes, and watches it go live.
func TestApproverApprovesProd(t *testing.T) {
	dev := waitCell(t, "api", "dev", "a version in dev", build, func(c api.AppEnv) bool { return c.Phase == "Synced" && c.Artifact != "" })
	if pre := cellOf(t, "api", "preprod"); pre.Artifact != dev.Artifact {
		if err := call(t, "admin", http.MethodPost, "/api/v1/apps/api/promote", api.ActionRequest{To: "preprod", Message: "browser test"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitCell(t, "api", "preprod", "dev's version in preprod", build, func(c api.AppEnv) bool { return c.Phase == "Synced" && c.Artifact == dev.Artifact })
	// The soak (2 s here) passes; then only the approval holds prod.
	for deadline := time.Now().Add(time.Minute); ; {
		var p api.Preview
		if err := call(t, "sofia", http.MethodGet, "/api/v1/apps/api/envs/prod/preview?action=promote", nil, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Gates.Blocks) == 1 && p.Gates.Blocks[0].Gate == "approvals" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prod is not held by its approval alone: %+v", p.Gates)
		}
		time.Sleep(200 * time.Millisecond)
	}

	sofia := newUser(t)
	sofia.login("sofia")
	watch(sofia)
	sofia.shot("matrix-approver")

	b := sofia.another()
	b.open("/")
	cell := b.text(cellSel("api", "prod"))
	if !strings.Contains(cell, "0/1 approvals") || !strings.Contains(cell, "from preprod") {
		t.Errorf("the prod cell does not say it waits for an approval: %q", cell)
	}
	b.do("opening the prod cell", chromedp.Click(cellSel("api", "prod")+" a"), chromedp.WaitVisible("#env-prod"))
	if why := b.text("#promotion-prod"); !strings.Contains(why, "blocked") || !strings.Contains(why, "approvals: 0 of 1") {
		t.Errorf("the app page does not say why prod is blocked: %q", why)
	}
	b.shot("app-prod-blocked")
	b.do("opening the approval", chromedp.Click(`#env-prod a[data-action="approve"]`), chromedp.WaitVisible("#confirm"))
	if got := b.text(".preview"); !strings.Contains(got, "approvals") {
		t.Errorf("the approval's confirmation shows no gate:\n%s", got)
	}
	b.shot("confirm-approve")
	b.do("approving", chromedp.SendKeys("#message", "checked the release notes"), chromedp.Click("#confirm"), chromedp.WaitVisible(".notice"))
	if got := b.text(".notice"); got != "Approval for prod recorded." {
		t.Errorf("after approving the page says %q", got)
	}
	if why := b.text("#promotion-prod"); !strings.Contains(why, "the gates are open") {
		t.Errorf("after the approval, prod's promotion reads %q", why)
	}
	b.do("opening the promotion", chromedp.Click(`#env-prod a[data-action="promote"]`), chromedp.WaitVisible("#confirm"))
	if got := b.text(".verdict"); got != "Allowed now." {
		t.Errorf("the promotion's verdict reads %q", got)
	}
	b.shot("confirm-promote")
	b.do("promoting", chromedp.Click("#confirm"), chromedp.WaitVisible(".notice"))

	sofia.waitLive("dev's version live in prod", "api", "prod", fmt.Sprintf(`text.indexOf(%q) >= 0 && text.indexOf("Synced") >= 0`, digest12(dev.Artifact)))
	sofia.shot("matrix-live-prod")
}

// TestDeveloperCannotApprove: the controls follow the role.
func TestDeveloperCannotApprove(t *testing.T) {
	marco := newUser(t)
	marco.login("marco")
	marco.open("/apps/api")
	if n := eval[int](marco, `document.querySelectorAll('#env-prod [data-action="approve"], #env-prod [data-action="promote"]').length`); n != 0 {
		t.Errorf("a developer sees %d approve or promote buttons on prod", n)
	}
	if n := eval[int](marco, `document.querySelectorAll('#env-dev [data-action="deploy"]').length`); n != 1 {
		t.Errorf("a developer sees %d deploy buttons on dev, want 1", n)
	}
	marco.open("/apps/api/envs/prod/confirm?action=approve")
	if n := eval[int](marco, `document.querySelectorAll("#confirm").length`); n != 0 {
		t.Error("a developer is offered an approval form")
	}
	marco.shot("developer-prod-no-approve")
}

// TestCellsDrawnAlike: a cell redrawn live by the page's script reads
// exactly as the server drew it, for every cell of the matrix; and after a
// lost connection the script reads every cell again.
func TestCellsDrawnAlike(t *testing.T) {
	waitCell(t, "api", "dev", "api running in dev", build, func(c api.AppEnv) bool { return c.Phase == "Synced" })
	b := newUser(t)
	b.login("sofia")
	b.open("/")
	diff := eval[string](b, `fetch("/api/v1/apps?limit=1000").then(function (r) { return r.json(); }).then(function (page) {
		var out = [], div = document.createElement("div");
		function words(h) { return h.replace(/(<time [^>]*>)[^<]*(<\/time>)/g, "$1$2"); }
		page.items.forEach(function (app) {
			app.envs.forEach(function (c) {
				var served = document.querySelector('[data-cell="' + app.name + '/' + c.env + '"] a');
				// The link starts with whose cell it is, for screen readers.
				div.innerHTML = '<span class="sr where">' + app.name + ' in ' + c.env + ': </span>' + window.socle.cellBody(c);
				if (!served) out.push(app.name + "/" + c.env + ": not on the page");
				// Coloured alike: the script redraws the class from cellPhase.
				else if (!served.parentElement.classList.contains("ph-" + window.socle.cellPhase(c).toLowerCase())) out.push(app.name + "/" + c.env + ": served class " + served.parentElement.className + ", script phase " + window.socle.cellPhase(c));
				// Relative times ("in 58 min") are reckoned as each is drawn,
				// seconds apart; their words are reltime.json's to check.
				else if (words(served.innerHTML) !== words(div.innerHTML)) out.push(app.name + "/" + c.env + ":\n served " + served.innerHTML + "\n script " + div.innerHTML);
			});
		});
		if (!page.items.length) out.push("no app to compare");
		return out.join("\n");
	})`)
	if diff != "" {
		t.Errorf("cells drawn differently:\n%s", diff)
	}
	// An app held by a resource that failed is coloured (and counted, by
	// matrix.go) Failed, its own phase shown: as cellPhase in cell.go.
	if got := eval[string](b, `window.socle.cellPhase({env: "dev", phase: "Pending", reasonCode: "DependencyFailed"}) + " " +
		window.socle.cellPhase({env: "dev", phase: "Pending", reasonCode: "DependencyNotReady"})`); got != "Failed Pending" {
		t.Errorf("the script colours a cell held by a failed resource, then one held by a resource provisioning: %q, want Failed Pending", got)
	}
	// A first build: the script says for how long it runs and its log's
	// last line, escaped, as cell.go does.
	building := eval[string](b, `(function () {
		var div = document.createElement("div");
		div.innerHTML = window.socle.cellBody({env: "dev", phase: "Building", reasonCode: "Building", reason: "building api at 2281b36",
			since: new Date(Date.now() - 72000).toISOString(), logTail: "$ go build\n<b>go: downloading x</b>\n\n", ready: 0, desired: 0});
		return div.textContent + " | " + div.querySelector(".logtail").innerHTML;
	})()`)
	if !strings.Contains(building, "Building (1m12s)") && !strings.Contains(building, "Building (1m13s)") || !strings.HasSuffix(building, "| &lt;b&gt;go: downloading x&lt;/b&gt;") {
		t.Errorf("a building cell drawn by the script: %q", building)
	}

	// A promotion held by a soak gate: the script says when the gate
	// opens as a relative time the page keeps current, as cell.go does.
	held := eval[string](b, `(function () {
		var div = document.createElement("div"), opens = new Date(Date.now() + (58 * 60 + 42) * 1000);
		opens.setUTCMilliseconds(0);
		div.innerHTML = window.socle.cellBody({env: "prod", phase: "Synced", ready: 1, desired: 1, revision: "9a8b7c6",
			incoming: {from: "preprod", revision: "9a8b7c6", approvals: [], needed: 0, blocked: true,
				reason: "soak: preprod has run it healthy for 2m of 1h (opens x)",
				blocks: [{gate: "soak", reason: "preprod has run it healthy for 2m of 1h", opens: opens.toISOString()}]}});
		var t = div.querySelector(".incoming time");
		return div.querySelector(".incoming").textContent + " | " + (t && t.getAttribute("datetime") === opens.toISOString().slice(0, 19) + "Z" && t.getAttribute("data-rel"));
	})()`)
	if !strings.Contains(held, "waits: soak: preprod has run it healthy for 2m of 1h (opens in 58 min) | until") {
		t.Errorf("a held promotion drawn by the script: %q", held)
	}

	// After a lost connection the page reads every cell again: a cell
	// that is out of date is drawn anew.
	sel := cellSel("api", "dev") + " a"
	want := b.text(sel)
	eval[bool](b, fmt.Sprintf(`document.querySelector(%q).lastChild.textContent = "stale"; window.socle.redrawAll(); true`, sel))
	b.waitJS("the stale cell redrawn", fmt.Sprintf(`document.querySelector(%q).innerText === %q`, sel, want), 30*time.Second)
}

// TestLiveLogs: the logs panel of an app page follows the app's output.
func TestLiveLogs(t *testing.T) {
	waitCell(t, "api", "dev", "api running in dev", build, func(c api.AppEnv) bool { return c.Phase == "Synced" && c.Ready > 0 })
	marco := newUser(t)
	marco.login("marco")
	marco.open("/apps/api")
	marco.do("opening the logs", chromedp.Click("#env-dev details.logs summary"))
	marco.waitJS("log lines", `document.querySelector("#env-dev pre.log").textContent.indexOf("listening on") >= 0`, time.Minute)
	// A live region would read every new line aloud, forever: the log
	// follows quietly and can be scrolled from the keyboard.
	if live := eval[string](marco, `(function () { var pre = document.querySelector("#env-dev pre.log"), r = pre.closest("[aria-live], [role=log], [role=status], [role=alert]");
		return r ? r.outerHTML.slice(0, 120) : ""; })()`); live != "" {
		t.Errorf("the live log is a live region: %s", live)
	}
	if ti := eval[int](marco, `document.querySelector("#env-dev pre.log").tabIndex`); ti != 0 {
		t.Errorf("the log cannot be reached from the keyboard to scroll it (tabIndex %d)", ti)
	}
	marco.shot("app-logs")
}

// TestPages visits every page, checks it answers and shows what it is
// for, and keeps a screenshot of it.
func TestPages(t *testing.T) {
	waitCell(t, "api", "dev", "the first rollout", build, func(c api.AppEnv) bool { return c.Phase == "Synced" })
	nobody := newUser(t)
	nobody.open("/")
	if s := nobody.status(); s != http.StatusUnauthorized {
		t.Errorf("/ without a token: %d, want 401", s)
	}
	if n := eval[int](nobody, `document.querySelectorAll('a[href^="/login"]').length`); n == 0 {
		t.Error("the 401 page has no link to the login page")
	}
	nobody.shot("unauthorized")

	importCosts(t)
	lena := newUser(t)
	lena.login("lena")
	var revs api.Page[api.Revision]
	if err := call(t, "lena", http.MethodGet, "/api/v1/revisions?limit=1", nil, &revs); err != nil || len(revs.Items) == 0 {
		t.Fatalf("revisions: %v %v", revs, err)
	}
	for _, pg := range []struct{ name, path, sel, want string }{
		{"revisions", "/revisions", "table.list", short(revs.Items[0].SHA)},
		{"revision", "/revisions/" + revs.Items[0].SHA, "main", "Plan #"},
		{"activity", "/activity", ".timeline", "revision.apply"},
		{"dora", "/dora", ".figures", "deployments a day"},
		{"costs", "/costs", "main", "Effective cost by team and environment"},
		{"logs", "/apps/api/envs/dev/logs", "pre.log", ""},
		{"app-worker", "/apps/worker", "#env-dev", "Synced"},
	} {
		lena.open(pg.path)
		if s := lena.status(); s != http.StatusOK {
			t.Errorf("%s: %d", pg.path, s)
		}
		if got := lena.text(pg.sel); !strings.Contains(got, pg.want) {
			t.Errorf("%s: %s does not say %q:\n%s", pg.path, pg.sel, pg.want, got)
		}
		lena.shot(pg.name)
	}
	if n := eval[int](lena, `document.querySelectorAll("svg.chart").length`); n != 0 {
		t.Logf("worker's page has %d charts", n)
	}
	lena.open("/dora")
	if n := eval[int](lena, `document.querySelectorAll("svg.chart").length`); n != 4 {
		t.Errorf("the DORA page has %d charts, want 4", n)
	}
	// Each chart has its figures as a table too, a row per week.
	if missing := eval[string](lena, `Array.from(document.querySelectorAll("figure")).filter(function (f) {
		var table = f.querySelector("table");
		return !f.querySelector("svg.chart") || !table || table.tBodies[0].rows.length === 0 || !table.caption;
	}).map(function (f) { return (f.querySelector("svg") || f).getAttribute("aria-label") || "a figure"; }).join(", ")`); missing != "" {
		t.Errorf("DORA charts without a table of their figures: %s", missing)
	}
	lena.open("/costs")
	if n := eval[int](lena, `document.querySelectorAll("svg.chart").length`); n < 2 {
		t.Errorf("the costs page has %d charts, want one of costs and one per budget", n)
	}
}

// importCosts imports the FOCUS sample billing export, so that the costs
// page has something to show.
func importCosts(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "focus", "focus_1.0_sample_1000.csv"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, baseURL+"/api/v1/costs/imports?name=focus_1.0_sample_1000.csv", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token(t, "lena"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("importing the FOCUS sample: %s\n%s", resp.Status, out)
	}
}

// TestWithoutJavaScript: with scripts off, the pages read the same and
// the filters and actions still work: they are links and forms.
func TestWithoutJavaScript(t *testing.T) {
	waitCell(t, "api", "dev", "api running in dev", build, func(c api.AppEnv) bool { return c.Phase == "Synced" })
	marco := newUser(t)
	if _, err := chromedp.Call(marco.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	marco.login("marco")
	marco.open("/?team=guest-experience")
	if rows := eval[string](marco, `Array.from(document.querySelectorAll("#matrix tbody tr")).map(function(r){return r.dataset.app}).join(",")`); rows != "web" {
		t.Errorf("the team filter shows %q, want web", rows)
	}
	if eval[bool](marco, `document.body.hasAttribute("data-stream")`) {
		t.Error("the page's script ran: scripts are not off")
	}
	marco.shot("matrix-no-js")
	marco.open("/apps/api")
	marco.do("deploying without scripts", chromedp.Click(`#env-dev a[data-action="deploy"]`), chromedp.WaitVisible("#confirm"),
		chromedp.Click("#confirm"), chromedp.WaitVisible(".notice"))
	if got := marco.text(".notice"); got != "Deploy to dev started." {
		t.Errorf("after the deploy the page says %q", got)
	}
}

// TestKeyboard: "/" focuses the filter, typing filters the matrix, and
// signing out ends the session.
func TestKeyboard(t *testing.T) {
	tom := newUser(t)
	tom.login("tom")
	tom.open("/")
	tom.do("pressing /", chromedp.KeyEvent("/"))
	if id := eval[string](tom, `document.activeElement.id`); id != "filter" {
		t.Fatalf("/ focused %q, want the filter", id)
	}
	tom.do("typing a filter", chromedp.KeyEvent("wor"))
	if rows := eval[string](tom, `Array.from(document.querySelectorAll("#matrix tbody tr")).filter(function(r){return !r.hidden}).map(function(r){return r.dataset.app}).join(",")`); rows != "worker" {
		t.Errorf("filtering on %q shows %q, want worker", eval[string](tom, `document.getElementById("filter").value`), rows)
	}
	tom.shot("matrix-filtered")
	tom.do("signing out", chromedp.Click(`form[action="/logout"] button`), chromedp.WaitVisible("#token"))
	tom.open("/")
	if s := tom.status(); s != http.StatusUnauthorized {
		t.Errorf("after signing out, / answers %d, want 401", s)
	}
}

// TestCostsPage: the costs page shows each total as the API computes it,
// exactly, to the cent: the API's amounts are decimal strings, and the
// page writes them with two decimals as the CLI does.
func TestCostsPage(t *testing.T) {
	importCosts(t)
	var rep struct {
		Totals []struct {
			Currency  string          `json:"currency"`
			Billed    json.RawMessage `json:"billed"`
			Effective json.RawMessage `json:"effective"`
		} `json:"totals"`
	}
	if err := call(t, "lena", http.MethodGet, "/api/v1/costs/report?by=team,env", nil, &rep); err != nil || len(rep.Totals) == 0 {
		t.Fatalf("report: %+v %v", rep, err)
	}
	lena := newUser(t)
	lena.login("lena")
	lena.open("/costs")
	summary := lena.text("p.summary")
	for _, tot := range rep.Totals {
		var effective, billed money.Amount
		if tot.Effective[0] != '"' || json.Unmarshal(tot.Effective, &effective) != nil || json.Unmarshal(tot.Billed, &billed) != nil {
			t.Fatalf("the API's %s totals are not decimal strings: %s, %s", tot.Currency, tot.Effective, tot.Billed)
		}
		for _, want := range []string{effective.Display() + " " + tot.Currency + " effective", billed.Display() + " " + tot.Currency + " billed"} {
			if !strings.Contains(summary, strings.Replace(want, "-", "−", 1)) {
				t.Errorf("the costs page says %q, not %q", summary, want)
			}
		}
	}
	lena.shot("costs-totals")
}
