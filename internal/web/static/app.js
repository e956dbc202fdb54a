// socle's portal script: live matrix cells (apps and stacks) and logs over
// server-sent events, relative times kept current, the app filter and its
// "/" key, filters that apply when picked with a pointer. Every page works
// without it; it only keeps pages current.
(function () {
  "use strict";

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;" }[c];
    });
  }
  // The twins of shortSHA, shortDigest, health and healthText in funcs.go.
  function short(s) { return s.length > 7 ? s.slice(0, 7) : s; }
  function digest(s) {
    var i = s.indexOf(":"), h = i < 0 ? s : s.slice(i + 1);
    return h.length > 12 ? h.slice(0, 12) : h;
  }
  function health(c) {
    var ready = c.ready || 0, desired = c.desired || 0;
    if (desired === 0 && ready === 0) return "none";
    if (ready >= desired && c.phase !== "Failed" && c.phase !== "Degraded") return "ok";
    return "bad";
  }
  var healthText = { ok: "healthy", bad: "unhealthy", none: "not running" };
  // cellPhase is the twin of cellPhase in cell.go: the phase a cell is
  // coloured by, Failed for an app held by a unit that failed.
  function cellPhase(c) { return c.reasonCode === "DependencyFailed" ? "Failed" : c.phase; }

  // The twins of humanDuration, phaseLabel and lastLine in Go.
  function humanDuration(ms) {
    var s = Math.round(ms / 1000), pad = function (n) { return n < 10 ? "0" + n : String(n); };
    if (s <= 0) return "—";
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + pad(s % 60) + "s";
    if (s < 48 * 3600) return Math.floor(s / 3600) + "h" + pad(Math.floor(s / 60) % 60) + "m";
    return Math.floor(s / 86400) + "d" + Math.floor(s / 3600) % 24 + "h";
  }
  function phaseLabel(c) {
    var since = c.since ? Date.parse(c.since) : NaN;
    if (c.phase === "Building" && !isNaN(since) && Date.now() - since >= 1000) {
      return c.phase + " (" + humanDuration(Date.now() - since) + ")";
    }
    return c.phase;
  }
  function lastLine(s) {
    var lines = String(s || "").split("\n");
    for (var i = lines.length - 1; i >= 0; i--) {
      if (lines[i].trim()) return lines[i].trim();
    }
    return "";
  }

  // blocks is the twin of writeBlocks in cell.go.
  function blocks(inc) {
    if (!inc.blocks || !inc.blocks.length) return esc(inc.reason || "");
    return inc.blocks.map(function (g) {
      var h = esc(g.gate) + ": " + esc(g.reason);
      if (g.opens) h += " (opens " + untilTag(g.opens) + ")";
      return h;
    }).join("; ");
  }

  // untilTag is the twin of timeTag(t, now, true) in funcs.go: a deadline
  // as a <time> element that refreshTimes keeps current.
  function untilTag(iso) {
    var t = Date.parse(iso);
    if (isNaN(t)) return esc(iso);
    var exact = new Date(t).toISOString();
    return '<time datetime="' + esc(exact.slice(0, 19) + "Z") + '" title="' + esc(exact.slice(0, 10) + " " + exact.slice(11, 19) + " UTC") +
      '" data-rel="until">' + esc(relTime(t, clock(), true)) + "</time>";
  }

  // cellBody is the twin of writeCellBody in cell.go.
  function cellBody(c) {
    var h = '<span class="phase">' + esc(phaseLabel(c)) + "</span>";
    if (c.revision) {
      h += ' <span class="ver"><code>' + esc(short(c.revision)) + "</code>" +
        (c.artifact ? " <code>" + esc(digest(c.artifact)) + "</code>" : "") + "</span>";
    }
    if (c.phase !== "Absent") {
      var hl = health(c);
      h += ' <span class="rep h-' + hl + '"><span class="sr">' + healthText[hl] + ", replicas ready </span>" +
        esc(c.ready || 0) + "/" + esc(c.desired || 0) + "</span>";
    }
    if (c.reason) h += ' <span class="reason">' + esc(c.reason) + "</span>";
    var line = lastLine(c.logTail);
    if (line) h += ' <code class="logtail">' + esc(line) + "</code>";
    var inc = c.incoming;
    if (inc) {
      h += ' <span class="incoming">↑ <code>' + esc(short(inc.revision)) + "</code> from " + esc(inc.from) +
        (inc.needed ? ", " + (inc.approvals || []).length + "/" + inc.needed + " approvals" : "") +
        (inc.blocked ? "; waits: " + blocks(inc) : "") + "</span>";
    }
    return h;
  }


  // The twins of codeWords, planSummary and planWords in stacks.go.
  function isLower(c) { return c !== c.toUpperCase(); }
  function codeWords(code) {
    var s = String(code || ""), out = "";
    for (var i = 0; i < s.length; i++) {
      var c = s[i];
      if (i > 0 && c !== c.toLowerCase() && (isLower(s[i - 1]) || (i + 1 < s.length && isLower(s[i + 1])))) out += " ";
      out += c.toLowerCase();
    }
    return out;
  }
  function planSummary(s) {
    return "+" + (s.add || 0) + " ~" + (s.change || 0) + (s.replace ? " -/+" + s.replace : "") + " -" + (s.destroy || 0);
  }
  function planWords(s) {
    return (s.add || 0) + " to add, " + (s.change || 0) + " to change, " + (s.replace ? s.replace + " to replace, " : "") + (s.destroy || 0) + " to destroy";
  }

  // stackCellBody is the twin of the "stackCell" template in parts.html:
  // a stack instance as GET /api/v1/stacks lists it.
  function stackCellBody(it) {
    var u = it.unit || {}, reason = codeWords(u.reason);
    var h = '<span class="phase">' + esc(u.phase || "Unknown") + "</span>";
    if (reason) h += ' <span class="reason">' + esc(reason) + "</span>";
    if (it.plan) {
      h += ' <span class="plan"><span class="sr">plan: ' + esc(planWords(it.plan.summary || {})) + '</span><code aria-hidden="true">' +
        esc(planSummary(it.plan.summary || {})) + "</code>" + (it.plan.outdated ? " <small>outdated</small>" : "") + "</span>";
    }
    if (it.lock) h += ' <span class="running">running now</span>';
    return h;
  }

  // redraw draws a cell anew and flashes it; quiet skips a cell that
  // did not change. A matrix cell's link starts with whose cell it is,
  // for screen readers (matrixBody in cell.go, home.html): it stays.
  function redraw(el, target, body, phase, quiet) {
    var where = target.firstElementChild && target.firstElementChild.classList.contains("where") ? target.firstElementChild.outerHTML : "";
    var html = where + body, probe = document.createElement("span");
    probe.innerHTML = html;
    if (quiet && probe.innerHTML === target.innerHTML) return;
    target.innerHTML = html;
    el.className = el.className.replace(/\bph-\S+/, "ph-" + String(phase).toLowerCase());
    el.classList.add("changed");
    setTimeout(function () { el.classList.remove("changed"); }, 2000);
  }

  // updateCell redraws an app's cell; quiet skips cells that did not change.
  function updateCell(app, c, quiet) {
    var key = app + "/" + c.env;
    document.querySelectorAll("[data-cell]").forEach(function (el) {
      if (el.getAttribute("data-cell") !== key) return;
      redraw(el, el.tagName === "TD" ? (el.querySelector("a") || el) : el, cellBody(c), cellPhase(c), quiet);
    });
  }

  // updateStack redraws a stack instance's cell of the matrix, if it
  // looks different.
  function updateStack(it) {
    var key = it.stack + "/" + it.instance;
    document.querySelectorAll("td[data-stack]").forEach(function (el) {
      var a = el.querySelector("a");
      if (el.getAttribute("data-stack") !== key || !a) return;
      redraw(el, a, stackCellBody(it), (it.unit && it.unit.phase) || "Unknown", true);
    });
  }

  // redrawAll reads every cell again: the apps' and the stacks'.
  function redrawAll() {
    redrawApps();
    if (document.querySelector("td[data-stack]")) {
      fetch("/api/v1/stacks", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (l) { if (l) l.items.forEach(updateStack); })
        .catch(function () { /* the next reconnection tries again */ });
    }
  }

  // redrawApps reads every app's cells again, following the API's pages.
  function redrawApps(cursor) {
    fetch("/api/v1/apps?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (page) {
        if (!page) return;
        page.items.forEach(function (app) {
          app.envs.forEach(function (c) { updateCell(app.name, c, true); });
        });
        if (page.next) redrawApps(page.next);
      })
      .catch(function () { /* the next reconnection tries again */ });
  }

  // relTime is the twin of relTime in funcs.go (internal/web/testdata/
  // reltime.json holds the cases both must agree on); t and now are
  // milliseconds.
  function relTime(t, now, until) {
    var d = t - now, min = 60000, hour = 60 * min, day = 24 * hour, s;
    if (until && d <= 0) return "now";
    var future = d > 0;
    if (!future) d = -d;
    if (d < min) return future && until ? "in under a minute" : "just now"; // an event seconds ahead: clock drift
    if (d < hour) s = Math.floor(d / min) + " min";
    else if (d < day) {
      s = Math.floor(d / hour) + " h";
      var m = Math.floor((d % hour) / min);
      if (m > 0) s += " " + m + " min";
    } else if (d < 7 * day) {
      var n = Math.floor(d / day);
      s = n + " day" + (n > 1 ? "s" : "");
    } else {
      var iso = new Date(t).toISOString(); // the twin of when in funcs.go
      return iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC";
    }
    return future ? "in " + s : s + " ago";
  }

  // The page says the server's time when it was written: relative times
  // are reckoned on the server's clock, even where the browser's is off.
  var skew = 0;
  function clock() { return Date.now() + skew; }

  // refreshTimes writes every relative time again as of now (ms): on a
  // page left open, "in 58 min" becomes "in 57 min", then "now".
  function refreshTimes(now) {
    document.querySelectorAll("time[data-rel]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      var text = relTime(t, now, el.getAttribute("data-rel") === "until");
      if (el.textContent !== text) el.textContent = text;
    });
  }

  function times() {
    var served = Date.parse(document.body.getAttribute("data-now") || "");
    if (!isNaN(served)) skew = served - Date.now();
    if (!document.querySelector("time[data-rel]")) return;
    setInterval(function () { refreshTimes(clock()); }, 15000);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) refreshTimes(clock());
    });
  }

  // A cell reached with Tab is scrolled clear of the matrix's sticky App
  // column and header row, which would otherwise cover it and its focus
  // ring: the browser scrolls it only to the edge of the box.
  function focusInSight() {
    var box = document.querySelector(".scroll");
    if (!box) return;
    box.addEventListener("focusin", function (e) {
      var cell = e.target.closest("td");
      if (!cell) return;
      var b = box.getBoundingClientRect(), r = cell.getBoundingClientRect();
      var head = box.querySelector("thead"), side = box.querySelector("tbody th");
      var left = b.left + box.clientLeft + (side ? side.offsetWidth : 0), right = b.left + box.clientLeft + box.clientWidth;
      var top = b.top + box.clientTop + (head ? head.offsetHeight : 0), bottom = b.top + box.clientTop + box.clientHeight;
      if (r.left < left) box.scrollLeft -= left - r.left;
      else if (r.right > right) box.scrollLeft += Math.min(r.right - right, r.left - left);
      if (r.top < top) box.scrollTop -= top - r.top;
      else if (r.bottom > bottom) box.scrollTop += Math.min(r.bottom - bottom, r.top - top);
    });
  }

  // For the browser tests, which check these against the server's pages.
  window.socle = { cellBody: cellBody, cellPhase: cellPhase, stackCellBody: stackCellBody, redrawAll: redrawAll, relTime: relTime, refreshTimes: refreshTimes };

  function live() {
    if (!document.querySelector("[data-live]") || !window.EventSource) return;
    var state = document.querySelector("[data-live-state]");
    var es = new EventSource("/api/v1/events/stream");
    function show(s, text) {
      document.body.setAttribute("data-stream", s);
      if (state) { state.hidden = false; state.textContent = text; state.className = "live " + s; }
    }
    var lost = false;
    es.onopen = function () {
      show("open", "live");
      if (lost) redrawAll(); // the stream sends changes only: catch up on those missed
      lost = false;
    };
    es.onerror = function () { lost = true; show("closed", "reconnecting…"); };
    es.addEventListener("cell", function (e) {
      try {
        var d = JSON.parse(e.data);
        if (d && d.app && d.cell) updateCell(d.app, d.cell);
      } catch (err) { /* a message we do not know: keep the page as it is */ }
    });
    es.addEventListener("stack", function (e) {
      try {
        var d = JSON.parse(e.data);
        if (d && d.stack && d.stack.stack) updateStack(d.stack);
      } catch (err) { /* a message we do not know: keep the page as it is */ }
    });
    window.addEventListener("pagehide", function () { es.close(); });
  }

  // Logs follow while their panel is open, and stop when it closes.
  function logs() {
    document.querySelectorAll("details.logs").forEach(function (d) {
      var pre = d.querySelector("pre[data-logs]"), es = null;
      if (!pre) return;
      d.addEventListener("toggle", function () {
        if (d.open && !es) {
          es = new EventSource(pre.getAttribute("data-logs"));
          // A log sent whole from its start is drawn again at each
          // connection, a reconnection too.
          if (pre.hasAttribute("data-whole")) es.onopen = function () { pre.textContent = ""; };
          // The run is over and its log sent: no reconnection.
          es.addEventListener("end", function () { es.close(); });
          es.onmessage = function (e) {
            var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.appendChild(document.createTextNode(e.data + "\n"));
            while (pre.childNodes.length > 2000) pre.removeChild(pre.firstChild);
            if (atEnd) pre.scrollTop = pre.scrollHeight;
          };
        } else if (!d.open && es) {
          es.close();
          es = null;
        }
      });
    });
  }

  function filters() {
    var input = document.querySelector("input[data-filter]");
    if (input) {
      var rows = input.getAttribute("data-filter"), count = document.getElementById("count");
      input.addEventListener("input", function () {
        var q = input.value.trim().toLowerCase(), n = 0;
        document.querySelectorAll(rows).forEach(function (tr) {
          var app = (tr.getAttribute("data-app") || "").toLowerCase();
          var show = !tr.hasAttribute("data-app") || app.indexOf(q) >= 0;
          tr.hidden = !show;
          if (show && tr.hasAttribute("data-app")) n++;
        });
        if (count) count.textContent = n;
      });
    }
    // An option picked with a pointer applies at once. With the keyboard,
    // the arrow keys walk through the options, each one a change: applying
    // each would reload the page under the user's fingers (WCAG 3.2.2), so
    // the Filter button applies a choice made with keys.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      var pointer = false;
      s.addEventListener("pointerdown", function () { pointer = true; });
      s.addEventListener("keydown", function () { pointer = false; });
      s.addEventListener("change", function () { if (pointer) s.form.submit(); });
    });
    var slash = false; // the "/" that focused the filter must not be typed in it
    document.addEventListener("keydown", function (e) {
      slash = false;
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
      var t = e.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      var f = document.getElementById("filter");
      if (f) { e.preventDefault(); slash = true; f.focus(); f.select && f.select(); }
    });
    // Some input methods send the character as an event of its own, which
    // the keydown's preventDefault does not stop.
    document.addEventListener("keypress", function (e) {
      if (slash && e.key === "/") e.preventDefault();
      slash = false;
    }, true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    logs();
    filters();
    times();
    focusInSight();
  });
})();
