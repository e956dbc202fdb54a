// socle's portal script: live matrix cells and logs over server-sent
// events, the app filter and its "/" key, filters that apply on change.
// Every page works without it; it only keeps pages current.
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
        (inc.blocked ? "; waits: " + esc(inc.reason) : "") + "</span>";
    }
    return h;
  }


  // updateCell redraws a cell; quiet skips cells that did not change.
  function updateCell(app, c, quiet) {
    var key = app + "/" + c.env;
    document.querySelectorAll("[data-cell]").forEach(function (el) {
      if (el.getAttribute("data-cell") !== key) return;
      var target = el.tagName === "TD" ? (el.querySelector("a") || el) : el;
      var html = cellBody(c), probe = document.createElement("span");
      probe.innerHTML = html;
      if (quiet && probe.innerHTML === target.innerHTML) return;
      target.innerHTML = html;
      el.className = el.className.replace(/\bph-\S+/, "ph-" + String(c.phase).toLowerCase());
      el.classList.add("changed");
      setTimeout(function () { el.classList.remove("changed"); }, 2000);
    });
  }

  // redrawAll reads every cell again, following the API's pages.
  function redrawAll(cursor) {
    fetch("/api/v1/apps?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (page) {
        if (!page) return;
        page.items.forEach(function (app) {
          app.envs.forEach(function (c) { updateCell(app.name, c, true); });
        });
        if (page.next) redrawAll(page.next);
      })
      .catch(function () { /* the next reconnection tries again */ });
  }

  // For the browser tests, which check these against the server's pages.
  window.socle = { cellBody: cellBody, redrawAll: redrawAll };

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
    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
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
  });
})();
