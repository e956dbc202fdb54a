package proxy

import (
	"context"
	"fmt"
	"html"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Pause puts the routes of an app, or of a whole environment, in
// maintenance mode: the proxy answers their requests itself with 503
// Service Unavailable, a short HTML page with Message, and Retry-After,
// without sending them to the backends. Backends stay routed and
// health-checked, so that resuming is immediate.
type Pause struct {
	// Scope is "<app>.<env>" for every route of an app in an environment
	// (its primary and other ports), or "<env>" for every route of the
	// environment.
	Scope string `json:"scope"`
	// Message is shown on the page, escaped; a default one when empty.
	Message string `json:"message,omitempty"`
	// RetryAfter is the Retry-After header in seconds; 0: none.
	RetryAfter int `json:"retryAfterSeconds,omitempty"`
}

// DefaultPauseMessage is the page's text of a pause without a message.
const DefaultPauseMessage = "This service is down for maintenance. Please come back soon."

// maxPauseMessage bounds a pause's message, in bytes.
const maxPauseMessage = 4 << 10

// Validate reports what is wrong with p, naming the field.
func (p Pause) Validate() error {
	labels := strings.Split(p.Scope, ".")
	if len(labels) > 2 {
		return fmt.Errorf("pause scope %q: want <app>.<env> or <env>", p.Scope)
	}
	if err := validRouteName(p.Scope); err != nil {
		return fmt.Errorf("pause scope %q: %w", p.Scope, err)
	}
	if len(p.Message) > maxPauseMessage {
		return fmt.Errorf("pause %s: message of %d bytes, at most %d", p.Scope, len(p.Message), maxPauseMessage)
	}
	if p.RetryAfter < 0 {
		return fmt.Errorf("pause %s: retryAfterSeconds %d is negative", p.Scope, p.RetryAfter)
	}
	return nil
}

// pausePage is a pause's answer, written once.
type pausePage struct {
	Pause
	head []byte // status line and headers, up to and without the empty line
	body []byte
}

func newPausePage(p Pause) *pausePage {
	msg := p.Message
	if msg == "" {
		msg = DefaultPauseMessage
	}
	body := `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
		`<title>Down for maintenance</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}</style></head>` +
		`<body><h1>Down for maintenance</h1><p>` + html.EscapeString(msg) + "</p></body></html>\n"
	head := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
	if p.RetryAfter > 0 {
		head += "Retry-After: " + strconv.Itoa(p.RetryAfter) + "\r\n"
	}
	head += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
	return &pausePage{Pause: p, head: []byte(head), body: []byte(body)}
}

// serve answers a request of a paused route through a ResponseWriter
// (HTTP/2).
func (pg *pausePage) serve(w http.ResponseWriter, head bool) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if pg.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(pg.RetryAfter))
	}
	h.Set("Content-Length", strconv.Itoa(len(pg.body)))
	w.WriteHeader(http.StatusServiceUnavailable)
	if !head {
		w.Write(pg.body)
	}
}

// pausedFor returns the pause of route name ("<app>.<env>" or
// "<port>.<app>.<env>"), nil when it serves: the app's pause wins over its
// environment's.
func (t *table) pausedFor(name string) *pausePage {
	if len(t.pauses) == 0 {
		return nil
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return nil
	}
	appEnv := name
	if j := strings.LastIndexByte(name[:i], '.'); j >= 0 {
		appEnv = name[j+1:]
	}
	if pg := t.pauses[appEnv]; pg != nil {
		return pg
	}
	return t.pauses[name[i+1:]]
}

// writePause answers a request of a paused route. The connection is kept.
func (c *clientConn) writePause(pg *pausePage, head bool) {
	c.bw.Write(pg.head)
	c.bw.WriteString("\r\n")
	if !head {
		c.bw.Write(pg.body)
	}
}

// SetPauses makes pauses the routes in maintenance mode, replacing those
// set before, and saves them with the route table. It takes effect at
// once for new requests; requests in flight go on.
func (p *Proxy) SetPauses(_ context.Context, pauses []Pause) error {
	next := make(map[string]*pausePage, len(pauses))
	for _, pa := range pauses {
		if err := pa.Validate(); err != nil {
			return err
		}
		if next[pa.Scope] != nil {
			return fmt.Errorf("pause scope %s appears twice", pa.Scope)
		}
		next[pa.Scope] = newPausePage(pa)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.table.Load()
	if samePauses(cur.pauses, next) {
		return nil
	}
	p.table.Store(&table{routes: cur.routes, pauses: next, hosts: cur.hosts})
	p.log.Info("pauses changed", "paused", slices.Sorted(maps.Keys(next)))
	return p.saveLocked()
}

func samePauses(a, b map[string]*pausePage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, pa := range a {
		if pb := b[k]; pb == nil || pb.Pause != pa.Pause {
			return false
		}
	}
	return true
}

// Pauses returns the pauses in force, sorted by scope.
func (p *Proxy) Pauses() []Pause {
	t := p.table.Load()
	out := make([]Pause, 0, len(t.pauses))
	for _, k := range slices.Sorted(maps.Keys(t.pauses)) {
		out = append(out, t.pauses[k].Pause)
	}
	return out
}
