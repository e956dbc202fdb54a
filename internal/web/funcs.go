package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/money"
)

// funcs are the templates' helpers. shortSHA, shortDigest, health and
// healthText, which cell.go draws cells with, have twins in static/app.js,
// which redraws cells live.
var funcs = template.FuncMap{
	"short":      shortSHA,
	"digest":     shortDigest,
	"lower":      func(s any) string { return strings.ToLower(fmt.Sprint(s)) }, // strings and the API's enums (api.Phase)
	"when":       when,
	"dur":        humanDuration,
	"pct":        func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" },
	"money":      formatMoney,
	"pretty":     prettyJSON,
	"join":       strings.Join,
	"actionText": actionText,
	"str":        func(v any) string { return fmt.Sprint(v) },
	"add":        func(a, b int) int { return a + b },
	"periodName": periodName,
	"asset":      asset,
	"blockers":   blockers,
	// Stacks (stacks.go).
	"planSummary":  planSummary,
	"planWords":    planWords,
	"changeSymbol": changeSymbol,
	"sensitive":    sensitive,
	"codeWords":    codeWords,
	"stackPath":    stackPath,
	"subjectPath":  subjectPath,
	// emergencyAction and detailReason mark emergency changes in the audit
	// timeline, with the reason their record keeps.
	"emergencyAction": func(action string) bool { return strings.HasSuffix(action, ".emergency") },
	"detailReason":    detailReason,
}

// detailReason is the "reason" of an audit record's detail, "" if none.
func detailReason(detail json.RawMessage) string {
	var d struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(detail, &d)
	return d.Reason
}

// shortSHA is a commit as people write it: its first seven digits.
func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// shortDigest is the first twelve hex digits of an image digest, as
// container tools print it.
func shortDigest(s string) string {
	_, h, ok := strings.Cut(s, ":")
	if !ok {
		h = s
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// health sums a cell's replicas: ok when all it wants are ready, bad when
// some are missing, none when it runs nothing.
func health(c api.AppEnv) string {
	switch {
	case c.Desired == 0 && c.Ready == 0:
		return "none"
	case c.Ready >= c.Desired && c.Phase != "Failed" && c.Phase != "Degraded":
		return "ok"
	default:
		return "bad"
	}
}

func healthText(c api.AppEnv) string {
	switch health(c) {
	case "ok":
		return "healthy"
	case "bad":
		return "unhealthy"
	}
	return "not running"
}

// when writes a time in UTC to the minute; zero is a dash.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// relTime says how far t is from now as a person would: "in 58 min",
// "3 h 5 min ago"; a week or more away, the date itself. A deadline
// (until) that has passed is "now": the gate it opens is open. relTime
// has a twin in static/app.js, which keeps the words current on a page
// left open; testdata/reltime.json holds the cases both must agree on.
func relTime(t, now time.Time, until bool) string {
	d := t.Sub(now)
	if until && d <= 0 {
		return "now"
	}
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		// An event a few seconds ahead is the clocks' drift, not the future.
		if future && until {
			return "in under a minute"
		}
		return "just now"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 24*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + " h"
		if m := int(d%time.Hour) / int(time.Minute); m > 0 {
			s += " " + strconv.Itoa(m) + " min"
		}
	case d < 7*24*time.Hour:
		n := int(d / (24 * time.Hour))
		s = strconv.Itoa(n) + " day"
		if n > 1 {
			s += "s"
		}
	default:
		return when(t)
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// timeTag writes t as a <time> element: the words of relTime, the exact
// time on hover, and the instant itself for the script that keeps the
// words current. Zero is a dash.
func timeTag(t, now time.Time, until bool) template.HTML {
	if t.IsZero() {
		return "—"
	}
	rel := "since"
	if until {
		rel = "until"
	}
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `" title="` + t.UTC().Format("2006-01-02 15:04:05 UTC") +
		`" data-rel="` + rel + `">` + template.HTMLEscapeString(relTime(t, now, until)) + `</time>`)
}

// humanDuration writes a duration to two units: 3d4h, 2h05m, 4m10s, 12s.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 0, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// formatMoney writes an amount as the CLI does (money.Amount.Display: two
// decimals, rounded half to even), with a typographic minus and the
// currency.
func formatMoney(v money.Amount, currency string) string {
	out := v.Display()
	if rest, ok := strings.CutPrefix(out, "-"); ok {
		out = "−" + rest
	}
	if currency != "" {
		out += " " + currency
	}
	return out
}

func prettyJSON(raw any) string {
	var b []byte
	switch v := raw.(type) {
	case json.RawMessage:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// actionText is an action's button label.
func actionText(action string) string {
	switch action {
	case "deploy":
		return "Deploy"
	case "promote":
		return "Promote"
	case "approve":
		return "Approve"
	case "rollback":
		return "Roll back"
	case "logs":
		return "Logs"
	}
	return action
}
