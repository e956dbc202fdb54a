package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/socle-dev/socle/internal/api"
)

// widths are the window sizes every page is checked at: a desktop and a
// phone (an iPhone 14's 390 × 844 CSS pixels).
var widths = []struct {
	name string
	w, h int64
}{{"desktop", 1440, 900}, {"phone", 390, 844}}

// axeScript is axe-core, installed from npm by scripts/test (npm ci in
// test/browser, pinned by its package-lock.json). The tests evaluate it in
// the page: no network, no CDN.
var axeScript = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(filepath.Join("node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		return "", fmt.Errorf("axe-core is not installed (run npm ci in test/browser, as scripts/test does): %w", err)
	}
	return string(b), nil
})

// axeViolation is one rule axe-core finds broken, with where.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for i, n := range v.Nodes {
		if i == 5 {
			fmt.Fprintf(&b, "\n    … and %d more", len(v.Nodes)-i)
			break
		}
		fmt.Fprintf(&b, "\n    %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return b.String()
}

// axe runs axe-core on the page shown and returns what it finds, every
// impact.
func (b *tab) axe() []axeViolation {
	b.t.Helper()
	src, err := axeScript()
	if err != nil {
		b.t.Fatal(err)
	}
	if !eval[bool](b, `typeof window.axe === "object"`) {
		eval[bool](b, src+"\n;true")
	}
	out := eval[string](b, `axe.run(document, {resultTypes: ["violations"]}).then(function (r) { return JSON.stringify(r.violations); })`)
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		b.t.Fatalf("reading axe's answer: %v", err)
	}
	return vs
}

// checkAxe fails the test on each serious or critical violation and logs
// the others.
func (b *tab) checkAxe(page string) {
	b.t.Helper()
	for _, v := range b.axe() {
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Errorf("%s: %s", page, v)
		} else {
			b.t.Logf("%s (not failing the test): %s", page, v)
		}
	}
}

// overflowJS lists what a person cannot see at the window's width: a page
// wider than the window (it scrolls sideways), elements that reach past an
// ancestor that clips them, and elements hidden in a box that scrolls
// sideways when that box is not one meant to (the matrix, preformatted
// text). An absolutely positioned element is clipped only from its
// containing block up, as the browser does.
const overflowJS = `(function () {
  var de = document.documentElement, W = de.clientWidth, out = [];
  if (de.scrollWidth > W) out.push("the page is " + de.scrollWidth + " px wide in a " + W + " px window");
  function name(el) {
    var s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.className && typeof el.className === "string") s += "." + el.className.trim().split(/\s+/).join(".");
    var text = (el.innerText || el.textContent || "").trim().replace(/\s+/g, " ");
    return s + (text ? " «" + text.slice(0, 40) + "»" : "");
  }
  function scroller(a) { return a.classList.contains("scroll") || a.tagName === "PRE"; }
  function check(el) {
    var r = el.getBoundingClientRect(), pos = getComputedStyle(el).position;
    if (pos === "fixed") return r.right > W + 1 ? name(el) + " reaches " + Math.round(r.right) + " px, past the window's " + W : "";
    for (var a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      var cs = getComputedStyle(a);
      if (pos === "absolute" && cs.position === "static") continue; // not its containing block: no clipping
      if (cs.clip !== "auto" && cs.clip !== "") return ""; // in a visually hidden text: clipped on purpose
      pos = cs.position;
      var ox = cs.overflowX, ar = a.getBoundingClientRect(), past = r.right > ar.right + 1 || r.left < ar.left - 1;
      if (ox === "visible" || !past) continue;
      if (ox === "auto" || ox === "scroll") return scroller(a) ? "" : name(el) + " is hidden in " + name(a) + ", which scrolls sideways";
      return name(el) + " is cut off by " + name(a) + " (" + Math.round(r.left) + "–" + Math.round(r.right) + " px in " + Math.round(ar.left) + "–" + Math.round(ar.right) + ")";
    }
    return r.right > W + 1 ? name(el) + " reaches " + Math.round(r.right) + " px, past the window's " + W : "";
  }
  document.body.querySelectorAll("*").forEach(function (el) {
    if (el.closest(".skip") || el.ownerSVGElement) return; // off screen until focused; inside a chart
    var r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || getComputedStyle(el).visibility === "hidden") return;
    var why = check(el);
    if (why) out.push(why);
  });
  return out.slice(0, 12).join("\n");
})()`

// checkPage fails the test on each serious problem axe-core finds on the
// page shown and, on a phone (the narrow one of widths), on what runs off
// its side or is cut off (overflowJS); where names the page in the
// failures.
func (b *tab) checkPage(where string, phone bool) {
	b.t.Helper()
	b.checkAxe(where)
	if !phone {
		return
	}
	if got := eval[string](b, overflowJS); got != "" {
		b.t.Errorf("%s: cut off or sideways:\n%s", where, got)
	}
}

// setWidth sizes the window of the tab (it stays for the pages opened
// after).
func (b *tab) setWidth(w, h int64) {
	b.t.Helper()
	b.do(fmt.Sprintf("sizing the window to %d × %d", w, h), chromedp.EmulateViewport(w, h))
}

// openAll opens every <details> of the page, so that the checks see what
// a reader can unfold (release tables, logs, configuration, chart tables).
func (b *tab) openAll() {
	eval[bool](b, `document.querySelectorAll("details").forEach(function (d) { d.open = true; }); true`)
}

// TestAccessibility visits every page of the portal, as the roles that see
// different controls, at a desktop and a phone width, with every fold
// open: axe-core finds no serious or critical problem, and nothing runs off
// the side of a phone.
func TestAccessibility(t *testing.T) {
	waitCell(t, "api", "dev", "the first rollout", build, func(c api.AppEnv) bool { return c.Phase == "Synced" })
	var revs api.Page[api.Revision]
	if err := call(t, "marco", http.MethodGet, "/api/v1/revisions?limit=1", nil, &revs); err != nil || len(revs.Items) == 0 {
		t.Fatalf("revisions: %v %v", revs, err)
	}
	pages := []struct{ name, user, path string }{
		{"login", "", "/login"},
		{"unauthorized", "", "/apps/api"},
		{"matrix", "marco", "/"},
		{"matrix-filtered", "marco", "/?team=bookings&zone=apps-nonprod&q=a"},
		{"app-api", "sofia", "/apps/api"},
		{"app-web", "marco", "/apps/web"},
		{"app-worker", "marco", "/apps/worker"},
		{"confirm-deploy", "marco", "/apps/api/envs/dev/confirm?action=deploy"},
		{"confirm-rollback", "marco", "/apps/api/envs/dev/confirm?action=rollback"},
		{"confirm-promote", "sofia", "/apps/api/envs/prod/confirm?action=promote"},
		{"confirm-approve", "sofia", "/apps/api/envs/prod/confirm?action=approve"},
		{"logs", "marco", "/apps/api/envs/dev/logs"},
		{"revisions", "marco", "/revisions"},
		{"revision", "marco", "/revisions/" + revs.Items[0].SHA},
		{"activity", "lena", "/activity"},
		{"activity-filtered", "lena", "/activity?app=api"},
		{"dora", "lena", "/dora"},
		{"costs", "lena", "/costs"},
		{"not-found", "marco", "/nowhere"},
	}
	users := map[string]*tab{}
	for _, u := range []string{"", "marco", "sofia", "lena"} {
		users[u] = newUser(t)
		if u != "" {
			users[u].login(u)
		}
	}
	for _, w := range widths {
		for _, b := range users {
			b.setWidth(w.w, w.h)
		}
		for _, pg := range pages {
			b := users[pg.user]
			b.open(pg.path)
			b.openAll()
			where := pg.path + " at " + w.name + " width"
			b.checkPage(where, w.name == "phone")
			// Laid out as lines on a phone, the releases stay a table to
			// a screen reader.
			if eval[bool](b, `!!document.querySelector(".releases td")`) {
				for sel, want := range map[string]string{".releases table": "table", ".releases th": "columnheader", ".releases td": "cell"} {
					if role, _ := b.axNode(fmt.Sprintf(`document.querySelector(%q)`, sel)); role != want {
						t.Errorf("%s: %s is a %q to a screen reader, want %q", where, sel, role, want)
					}
				}
			}
			b.shot("a11y-" + pg.name + "-" + w.name)
		}
	}
	// The login page after a refused token, with its alert.
	b := users[""]
	b.open("/login")
	b.do("signing in with a wrong token", chromedp.SendKeys("#token", "socle_nope_nope"),
		chromedp.Click(`form[action="/login"] button[type=submit]`), chromedp.WaitVisible(".error"))
	b.checkPage("/login refused", true)
}

// TestFiltersKeepKeyboardUsers: browsing a filter's options with the arrow
// keys changes nothing but the choice (WCAG 3.2.2, on input); the Filter
// button applies it, with or without scripts.
func TestFiltersKeepKeyboardUsers(t *testing.T) {
	marco := newUser(t)
	marco.login("marco")
	for _, pg := range []struct{ path, sel, button string }{
		{"/", `select[name=team]`, `form.filters button[type=submit]`},
		{"/", `select[name=zone]`, `form.filters button[type=submit]`},
		{"/dora", `select[name=period]`, `form.filters button[type=submit]`},
		{"/dora", `select[name=team]`, `form.filters button[type=submit]`},
	} {
		marco.open(pg.path)
		// form.submit() sends no submit event: count the calls instead.
		eval[bool](marco, `window.socleSubmits = 0;
			HTMLFormElement.prototype.submit = function () { window.socleSubmits++; };
			HTMLFormElement.prototype.requestSubmit = function () { window.socleSubmits++; }; true`)
		before := eval[string](marco, fmt.Sprintf(`document.querySelector(%q).value`, pg.sel))
		marco.do("browsing "+pg.sel+" with the arrow keys", chromedp.Focus(pg.sel), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
		after := eval[string](marco, fmt.Sprintf(`document.querySelector(%q).value`, pg.sel))
		if after == before {
			t.Errorf("%s %s: the arrow keys did not move the choice (%q); the test checks nothing", pg.path, pg.sel, after)
		}
		if n := eval[int](marco, `window.socleSubmits`); n != 0 {
			t.Errorf("%s %s: browsing the options with the arrow keys sent the form %d times", pg.path, pg.sel, n)
		}
		// An option picked with the pointer applies at once: the script's
		// enhancement, kept where it costs keyboards nothing.
		if n := eval[int](marco, fmt.Sprintf(`(function () { var s = document.querySelector(%q);
			s.dispatchEvent(new PointerEvent("pointerdown", {bubbles: true}));
			s.selectedIndex = (s.selectedIndex + 1) %% s.options.length;
			s.dispatchEvent(new Event("change", {bubbles: true}));
			return window.socleSubmits; })()`, pg.sel)); n != 1 {
			t.Errorf("%s %s: an option picked with the pointer sent the form %d times, want 1", pg.path, pg.sel, n)
		}
		eval[bool](marco, fmt.Sprintf(`document.querySelector(%q).value = %q; true`, pg.sel, after))
		// The button applies the choice.
		name := eval[string](marco, fmt.Sprintf(`document.querySelector(%q).name`, pg.sel))
		ctx, cancel := context.WithTimeout(marco.ctx, time.Minute)
		_, err := chromedp.RunResponse(ctx, chromedp.Click(pg.button))
		cancel()
		if err != nil {
			t.Fatalf("%s: applying the filter: %v", pg.path, err)
		}
		if got := eval[string](marco, fmt.Sprintf(`new URLSearchParams(location.search).get(%q)`, name)); got != after {
			t.Errorf("%s: the Filter button applied %s=%q, want %q", pg.path, name, got, after)
		}
	}
}

// axNode is the role and accessible name Chromium computes for the
// element expr evaluates to: what a screen reader says when it lands there.
func (b *tab) axNode(expr string) (role, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	obj, err := chromedp.Run(ctx, chromedp.Evaluate[*runtime.RemoteObject](expr))
	if err != nil || obj.ObjectID == "" {
		b.t.Fatalf("finding %s: %v", expr, err)
	}
	no := false
	res, err := chromedp.Call(ctx, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{ObjectID: obj.ObjectID, FetchRelatives: &no})
	if err != nil {
		b.t.Fatalf("reading the accessibility tree: %v", err)
	}
	if len(res.Nodes) == 0 {
		return "", ""
	}
	n := res.Nodes[0]
	if n.Role != nil {
		json.Unmarshal(n.Role.Value, &role)
	}
	if n.Name != nil {
		json.Unmarshal(n.Name.Value, &name)
	}
	return role, name
}

// focusedCellJS reports how the focused matrix cell shows: its focus ring
// must be drawn inside the cell, and the whole cell must be in sight, not
// under the sticky App column or header row.
const focusedCellJS = `(function () {
  var a = document.activeElement, td = a && a.closest("td[data-cell]");
  if (!td) return "focus is on " + (a ? a.tagName + " " + a.textContent.trim().slice(0, 30) : "nothing") + ", not on a cell";
  var cs = getComputedStyle(a);
  if (cs.outlineStyle === "none" || parseFloat(cs.outlineWidth) < 2) return "no focus ring";
  if (parseFloat(cs.outlineOffset) + parseFloat(cs.outlineWidth) > 0) return "the focus ring is drawn outside the cell, where neighbours cover it";
  var r = a.getBoundingClientRect(), bad = [];
  [[r.left + 2, r.top + 2], [r.right - 3, r.top + 2], [r.left + 2, r.bottom - 3], [r.right - 3, r.bottom - 3]].forEach(function (p) {
    var hit = document.elementFromPoint(p[0], p[1]);
    if (!hit || !a.contains(hit)) bad.push(Math.round(p[0]) + "," + Math.round(p[1]) + " shows " + (hit ? hit.tagName + " " + hit.textContent.trim().slice(0, 20) : "nothing"));
  });
  return bad.length ? "part of the focused cell is hidden: " + bad.join("; ") : "";
})()`

// TestMatrixCellsByKeyboard: tabbing through the matrix, forward and back,
// every cell is in sight with its focus ring, and says which app and
// environment it is.
func TestMatrixCellsByKeyboard(t *testing.T) {
	waitCell(t, "api", "dev", "the first rollout", build, func(c api.AppEnv) bool { return c.Phase == "Synced" })
	marco := newUser(t)
	marco.login("marco")
	for _, w := range widths {
		marco.setWidth(w.w, w.h)
		marco.open("/")
		cells := eval[[]string](marco, `Array.from(document.querySelectorAll("#matrix td[data-cell] a")).map(function (a) { return a.parentElement.dataset.cell; })`)
		if len(cells) < 12 {
			t.Fatalf("the matrix has %d cells, want 12", len(cells))
		}
		// check starts from the element start focuses and tabs through
		// the matrix until focus leaves it.
		check := func(dir, start string, settle []chromedp.Action[chromedp.Void], mods ...chromedp.KeyOption) {
			eval[bool](marco, start+"; true")
			marco.do("settling the focus", settle...) // by keyboard, as a person would get there
			seen := map[string]bool{}
			for range 3 * len(cells) {
				cell := eval[string](marco, `(function () { var td = document.activeElement.closest("td[data-cell]"); return td ? td.dataset.cell : ""; })()`)
				if cell != "" && !seen[cell] {
					seen[cell] = true
					if why := eval[string](marco, focusedCellJS); why != "" {
						marco.shot("failed-cell-focus-" + w.name)
						t.Errorf("%s width, tabbing %s to %s: %s", w.name, dir, cell, why)
					}
					app, env, _ := strings.Cut(cell, "/")
					if _, name := marco.axNode(`document.activeElement`); !strings.Contains(name, app) || !strings.Contains(name, env) {
						t.Errorf("%s width: the cell %s is read as %q, which does not name both its app and its environment", w.name, cell, name)
					}
				}
				if len(seen) > 0 && eval[bool](marco, `!document.activeElement.closest("#matrix")`) {
					break // out of the matrix
				}
				marco.do("pressing Tab", chromedp.KeyEvent(kb.Tab, mods...))
			}
			if len(seen) != len(cells) {
				t.Errorf("%s width, tabbing %s: reached %d cells of %d", w.name, dir, len(seen), len(cells))
			}
		}
		check("forward", `var th = document.querySelector("#matrix thead th"); th.tabIndex = -1; th.focus()`, nil)
		marco.shot("matrix-keyboard-" + w.name)
		// From the last cell, by keyboard: back a step and forward again.
		check("back", `var all = document.querySelectorAll("#matrix td[data-cell] a"); all[all.length - 1].focus()`,
			[]chromedp.Action[chromedp.Void]{chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)), chromedp.KeyEvent(kb.Tab)},
			chromedp.KeyModifiers(chromedp.ModifierShift))
	}
	marco.setWidth(widths[0].w, widths[0].h)
}

// TestRelativeTimes: the script writes relative times as the server does
// (the cases of internal/web/testdata/reltime.json, run against an
// injected clock), and keeps a page left open current: "in 58 min"
// becomes "now" once the time has passed.
func TestRelativeTimes(t *testing.T) {
	cases, err := os.ReadFile(filepath.Join("..", "..", "internal", "web", "testdata", "reltime.json"))
	if err != nil {
		t.Fatal(err)
	}
	b := newUser(t)
	b.login("marco")
	b.open("/revisions")
	diff := eval[string](b, `(function (cases) {
		return cases.map(function (c) {
			var got = window.socle.relTime(Date.parse(c.t), Date.parse(c.now), c.until);
			return got === c.want ? "" : c.t + " at " + c.now + (c.until ? " (until)" : "") + ": " + JSON.stringify(got) + ", want " + JSON.stringify(c.want);
		}).filter(Boolean).join("\n");
	})(`+string(cases)+`)`)
	if diff != "" {
		t.Errorf("the script's relative times differ from the server's:\n%s", diff)
	}

	// The page as served says how long ago the commit was, with the exact
	// time on hover.
	if n := eval[int](b, `document.querySelectorAll("table.list time[datetime][title][data-rel]").length`); n == 0 {
		t.Fatal("the revisions page has no relative time")
	}
	got := eval[string](b, `(function () {
		var el = document.querySelector("table.list time[data-rel]"), t = Date.parse(el.getAttribute("datetime"));
		el.setAttribute("data-rel", "until");
		window.socle.refreshTimes(t - (58 * 60 + 30) * 1000);
		var before = el.textContent;
		window.socle.refreshTimes(t + 1000);
		return before + " | " + el.textContent;
	})()`)
	if got != "in 58 min | now" {
		t.Errorf("a deadline 58 min away, then passed, reads %q, want \"in 58 min | now\"", got)
	}
}
