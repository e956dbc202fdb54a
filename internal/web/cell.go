package web

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// The matrix is written by hand rather than by html/template: with 4,000
// cells, the template's escaping per action was most of the page's render
// time. Everything written passes through escapeTo. cellBody has a twin
// in static/app.js, which redraws cells live: change them together.

// cellPhase is the phase a cell is coloured and counted by: its own, but
// Failed for an app whose change waits on a unit that failed (a resource
// that did not provision), by its reason code: it does not run until that
// is mended, though its own phase, which the cell shows, is Pending.
func cellPhase(c api.AppEnv) api.Phase {
	if c.ReasonCode == api.ReasonDependencyFailed {
		return api.PhaseFailed
	}
	return c.Phase
}

// matrixBody writes the matrix's rows.
func matrixBody(rows []matrixRow, now time.Time) template.HTML {
	var b strings.Builder
	if len(rows) > 0 {
		b.Grow(len(rows) * (200 + 460*len(rows[0].Cells))) // about what a row takes: one allocation
	}
	for _, r := range rows {
		app := url.PathEscape(r.Name)
		b.WriteString(`<tr data-app="`)
		escapeTo(&b, r.Name)
		b.WriteString(`"><th scope="row"><a href="/apps/`)
		escapeTo(&b, app)
		b.WriteString(`">`)
		escapeTo(&b, r.Name)
		b.WriteString(`</a> <small>`)
		escapeTo(&b, r.Owner)
		b.WriteString(`</small></th>`)
		for _, c := range r.Cells {
			b.WriteString(`<td class="cell ph-`)
			escapeTo(&b, strings.ToLower(string(cellPhase(c.AppEnv))))
			b.WriteString(`" data-cell="`)
			escapeTo(&b, r.Name)
			b.WriteByte('/')
			escapeTo(&b, c.Env)
			b.WriteString(`"><a href="/apps/`)
			escapeTo(&b, app)
			b.WriteString(`#env-`)
			escapeTo(&b, url.PathEscape(c.Env))
			// A link landed on by Tab is read alone, without its row and
			// column: it says which app and environment it is, to screen
			// readers only (app.js keeps this when it redraws the cell).
			b.WriteString(`"><span class="sr where">`)
			escapeTo(&b, r.Name)
			b.WriteString(` in `)
			escapeTo(&b, c.Env)
			b.WriteString(`: </span>`)
			writeCellBody(&b, c.AppEnv, now)
			b.WriteString("</a></td>")
		}
		b.WriteString("</tr>\n")
	}
	return template.HTML(b.String())
}

// cellBody is a cell's content: phase, version, replicas and health, and
// the reason in words. Times are written against now.
func cellBody(c api.AppEnv, now time.Time) template.HTML {
	var b strings.Builder
	writeCellBody(&b, c, now)
	return template.HTML(b.String())
}

func writeCellBody(b *strings.Builder, c api.AppEnv, now time.Time) {
	b.WriteString(`<span class="phase">`)
	escapeTo(b, phaseLabel(c, now))
	b.WriteString(`</span>`)
	if c.Revision != "" {
		b.WriteString(` <span class="ver"><code>`)
		escapeTo(b, shortSHA(c.Revision))
		b.WriteString(`</code>`)
		if c.Artifact != "" {
			b.WriteString(` <code>`)
			escapeTo(b, shortDigest(c.Artifact))
			b.WriteString(`</code>`)
		}
		b.WriteString(`</span>`)
	}
	if c.Phase != "Absent" {
		b.WriteString(` <span class="rep h-`)
		b.WriteString(health(c))
		b.WriteString(`"><span class="sr">`)
		b.WriteString(healthText(c))
		b.WriteString(`, replicas ready </span>`)
		b.WriteString(strconv.Itoa(c.Ready))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(c.Desired))
		b.WriteString(`</span>`)
	}
	if c.Reason != "" {
		b.WriteString(` <span class="reason">`)
		escapeTo(b, c.Reason)
		b.WriteString(`</span>`)
	}
	if line := lastLine(c.LogTail); line != "" {
		b.WriteString(` <code class="logtail">`)
		escapeTo(b, line)
		b.WriteString(`</code>`)
	}
	if in := c.Incoming; in != nil {
		b.WriteString(` <span class="incoming">↑ <code>`)
		escapeTo(b, shortSHA(in.Revision))
		b.WriteString(`</code> from `)
		escapeTo(b, in.From)
		if in.Needed > 0 {
			b.WriteString(", ")
			b.WriteString(strconv.Itoa(len(in.Approvals)))
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(in.Needed))
			b.WriteString(" approvals")
		}
		if in.Blocked {
			b.WriteString(`; waits: `)
			writeBlocks(b, in, now)
		}
		b.WriteString(`</span>`)
	}
}

// writeBlocks says which gates hold a promotion, and when each opens as a
// relative time ("opens in 58 min") that the page's script keeps current.
// An answer without the gates one by one has only the sentence.
func writeBlocks(b *strings.Builder, in *api.Incoming, now time.Time) {
	if len(in.Blocks) == 0 {
		escapeTo(b, in.Reason)
		return
	}
	for i, g := range in.Blocks {
		if i > 0 {
			b.WriteString("; ")
		}
		escapeTo(b, string(g.Gate))
		b.WriteString(": ")
		escapeTo(b, g.Reason)
		if !g.Opens.IsZero() {
			b.WriteString(" (opens ")
			b.WriteString(string(timeTag(g.Opens, now, true)))
			b.WriteByte(')')
		}
	}
}

// phaseLabel is a cell's phase, with how long it has built: Building (1m12s).
func phaseLabel(c api.AppEnv, now time.Time) string {
	if c.Phase == "Building" && !c.Since.IsZero() && now.Sub(c.Since) >= time.Second {
		return string(c.Phase) + " (" + humanDuration(now.Sub(c.Since)) + ")"
	}
	return string(c.Phase)
}

// lastLine is the last non-blank line of a log's tail: a build's latest
// word, in a cell.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// escapeTo writes s escaped for HTML text and quoted attribute values,
// without allocating when there is nothing to escape.
func escapeTo(b *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&#34;"
		case '\'':
			rep = "&#39;"
		case 0:
			rep = "\uFFFD"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		last = i + 1
	}
	b.WriteString(s[last:])
}
