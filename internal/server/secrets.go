package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
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
	// Each value as it is and as JSON escapes it (a secret with & < > " \
	// is written \u0026… in a JSON document), longest first so that a secret
	// containing another is replaced whole.
	var all []string
	for _, v := range values {
		if len(v) < minSecret || strings.Contains(v, "${") {
			continue
		}
		all = append(all, v)
		if b, err := json.Marshal(v); err == nil {
			if e := string(b[1 : len(b)-1]); e != v {
				all = append(all, e)
			}
		}
	}
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	all = slices.Compact(all)
	if len(all) == 0 {
		return nil
	}
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, plan.Redacted)
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

// secrets holds the redactor: every secret value of every unit recorded
// since socle started, so that a rotated or removed secret stays redacted in
// old events, audit records and logs.
type secrets struct {
	mu     sync.Mutex
	red    *redactor
	values map[string]bool
	built  bool // red is up to date with the desired state
}

// redactor returns the redactor, built from the recorded units if they
// changed since.
func (s *Server) redactor() *redactor {
	s.secrets.mu.Lock()
	built, red := s.secrets.built, s.secrets.red
	s.secrets.mu.Unlock()
	if built {
		return red
	}
	return s.rebuildRedactor()
}

// rebuildRedactor reads the recorded units and adds their secret values.
func (s *Server) rebuildRedactor() *redactor {
	units, err := Applied(context.Background(), s.store)
	var values []string
	for i := range units {
		values = append(values, reconcile.SecretValues(&units[i], s.secret)...)
	}
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	if err != nil {
		return s.secrets.red // the store failed: keep what is known, try again next time
	}
	if s.secrets.values == nil {
		s.secrets.values = map[string]bool{}
	}
	grew := false
	for _, v := range values {
		if !s.secrets.values[v] {
			s.secrets.values[v], grew = true, true
		}
	}
	if grew {
		s.secrets.red = newRedactor(slices.Collect(maps.Keys(s.secrets.values)))
	}
	s.secrets.built = true
	return s.secrets.red
}

// secretsChanged marks the redactor stale: the desired state changed.
func (s *Server) secretsChanged() {
	s.secrets.mu.Lock()
	s.secrets.built = false
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
