package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
)

// redactor replaces the secret values of every unit socle runs with
// plan.Redacted: in API answers, streamed logs, events and socle's own log.
// A nil redactor replaces nothing.
type redactor struct{ r *strings.Replacer }

// minSecret is the shortest value redacted: shorter ones would mangle
// ordinary words and are no secret worth the name.
const minSecret = 6

func newRedactor(values []string) *redactor {
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, v := range slices.Compact(values) {
		if len(v) >= minSecret && !strings.Contains(v, "${") {
			pairs = append(pairs, v, plan.Redacted)
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	return &redactor{strings.NewReplacer(pairs...)}
}

// String returns s with every secret replaced.
func (r *redactor) String(s string) string {
	if r == nil {
		return s
	}
	return r.r.Replace(s)
}

// JSON returns a JSON document with every secret replaced; a secret is
// replaced inside strings only if the result still parses.
func (r *redactor) JSON(b []byte) []byte {
	if r == nil || len(b) == 0 {
		return b
	}
	out := []byte(r.r.Replace(string(b)))
	if !json.Valid(out) {
		return []byte(`"` + plan.Redacted + `"`)
	}
	return out
}

// secrets holds the redactor of the desired state, rebuilt when it changes.
type secrets struct {
	mu    sync.Mutex
	red   *redactor
	stale bool
}

// redactor returns the redactor of the units recorded now.
func (s *Server) redactor() *redactor {
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	if !s.secrets.stale && s.secrets.red != nil {
		return s.secrets.red
	}
	units, err := Applied(context.Background(), s.store)
	if err != nil {
		return s.secrets.red
	}
	var values []string
	for i := range units {
		values = append(values, reconcile.SecretValues(&units[i], s.secret)...)
	}
	s.secrets.red, s.secrets.stale = newRedactor(values), false
	return s.secrets.red
}

// secretsChanged marks the redactor stale: the desired state changed.
func (s *Server) secretsChanged() {
	s.secrets.mu.Lock()
	s.secrets.stale = true
	s.secrets.mu.Unlock()
}

// redactHandler is a slog handler that redacts secrets from messages and
// string attributes before they reach the log.
type redactHandler struct {
	slog.Handler
	s *Server
}

func (h redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	red := h.s.currentRedactor()
	if red == nil {
		return h.Handler.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, red.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(red, a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func redactAttr(red *redactor, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		return slog.String(a.Key, red.String(a.Value.String()))
	case slog.KindGroup:
		as := a.Value.Group()
		out := make([]any, len(as))
		for i, g := range as {
			out[i] = redactAttr(red, g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, red.String(err.Error()))
		}
		return slog.String(a.Key, red.String(a.Value.String()))
	}
	return a
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return redactHandler{h.Handler.WithAttrs(as), h.s}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name), h.s}
}

// currentRedactor is the redactor as last built, without rebuilding: a
// log call must not read the store.
func (s *Server) currentRedactor() *redactor {
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	return s.secrets.red
}
