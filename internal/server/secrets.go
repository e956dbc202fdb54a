package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/spec"
)

// redactor replaces the secret values of every unit socle runs with
// plan.Redacted: in API answers, streamed logs, events and socle's own log.
// A nil redactor replaces nothing.
//
// Every value is replaced wherever it occurs, whatever its length: a PIN
// of 4 digits, "abc", even "a", inside words too (GitHub Actions masks the
// same way). A value of one or two characters makes the text read oddly;
// socle warns in its log of values under minSecret characters. In a JSON
// document, values are replaced in strings, decoded, so that an escaped
// secret (\n, \u0026) is seen; short values (under minSecret) are not
// replaced in keys, so that an answer keeps its fields' names.
type redactor struct {
	all  *strings.Replacer // every value
	long *strings.Replacer // the values of minSecret characters or more; nil: none
}

// minSecret is the length under which socle warns that a secret is short,
// and under which a value is left in JSON keys.
const minSecret = 6

// placeholderOnly is a value that is a placeholder and nothing else: the
// text of a variable not resolved, not a secret.
var placeholderOnly = regexp.MustCompile(`^\$\{[^}]*\}$`)

// isReference reports whether a value is a reference to a secret
// manager (ref+vault://…): not a secret, and what a status names when it
// does not resolve.
func isReference(v string) bool {
	_, ok, err := spec.ParseSecretRef(v)
	return ok && err == nil
}

func newRedactor(values []string) *redactor {
	var all, long []string
	for _, v := range values {
		if v == "" || placeholderOnly.MatchString(v) || isReference(v) {
			continue
		}
		all = append(all, v)
		if utf8.RuneCountInString(v) >= minSecret {
			long = append(long, v)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return &redactor{all: replacer(all), long: replacer(long)}
}

// replacer replaces the values, longest first so that a secret containing
// another is replaced whole; nil for none.
func replacer(vs []string) *strings.Replacer {
	if len(vs) == 0 {
		return nil
	}
	slices.SortFunc(vs, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	vs = slices.Compact(vs)
	pairs := make([]string, 0, 2*len(vs))
	for _, v := range vs {
		pairs = append(pairs, v, plan.Redacted)
	}
	return strings.NewReplacer(pairs...)
}

// String returns s with every secret replaced.
func (r *redactor) String(s string) string {
	if r == nil {
		return s
	}
	return r.all.Replace(s)
}

// JSON returns a JSON document with every secret replaced in its strings
// (keys: the long ones only). A document that does not scan, or would not
// parse once redacted, is replaced whole.
func (r *redactor) JSON(b []byte) []byte {
	if r == nil || len(b) == 0 {
		return b
	}
	out, ok := r.jsonStrings(b)
	if !ok || !json.Valid(out) {
		return []byte(`"` + plan.Redacted + `"`)
	}
	return out
}

// jsonStrings replaces secrets in the strings of a JSON document, each
// decoded and encoded again if it changed. It walks the bytes rather than
// decoding the document: an answer keeps its keys' order, its numbers and
// its indentation. false: the document does not scan.
func (r *redactor) jsonStrings(b []byte) ([]byte, bool) {
	var out []byte
	done := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		end := i + 1
		for end < len(b) && b[end] != '"' {
			if b[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(b) {
			return nil, false
		}
		lit := b[i : end+1]
		next := end + 1
		for next < len(b) && (b[next] == ' ' || b[next] == '\n' || b[next] == '\t' || b[next] == '\r') {
			next++
		}
		rep := r.all
		if next < len(b) && b[next] == ':' { // a key
			rep = r.long
		}
		v, plain := string(lit[1:len(lit)-1]), !bytes.ContainsRune(lit, '\\')
		if rep != nil && (plain || json.Unmarshal(lit, &v) == nil) {
			if red := rep.Replace(v); red != v {
				enc, _ := json.Marshal(red)
				out = append(append(out, b[done:i]...), enc...)
				done = end + 1
			}
		}
		i = end
	}
	if out == nil {
		return b, true
	}
	return append(out, b[done:]...), true
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
	units, err := pipeline.Applied(context.Background(), s.store)
	values := s.resourceSecrets()
	for i := range units {
		values = append(values, replicas.SecretValues(&units[i], s.secret, s.resourceOutputs())...)
	}
	s.secrets.mu.Lock()
	if err != nil {
		defer s.secrets.mu.Unlock()
		return s.secrets.red // the store failed: keep what is known, try again next time
	}
	newShort := s.secrets.addLocked(values)
	s.secrets.built = true
	red := s.secrets.red
	s.secrets.mu.Unlock()
	s.warnShort(newShort) // unlocked: the log's handler takes the redactor
	return red
}

// warnShort warns of n new secret values shorter than minSecret.
func (s *Server) warnShort(n int) {
	if n > 0 {
		s.log.Warn("secret values shorter than 6 characters are redacted wherever they occur, inside words too, which makes logs read oddly; use longer secrets",
			"count", n, "minLength", minSecret)
	}
}

// addLocked adds values to the redactor, and returns how many of the
// new ones are short (under minSecret characters).
func (sec *secrets) addLocked(values []string) (short int) {
	if sec.values == nil {
		sec.values = map[string]bool{}
	}
	grew := false
	for _, v := range values {
		if !sec.values[v] {
			sec.values[v], grew = true, true
			if v != "" && utf8.RuneCountInString(v) < minSecret {
				short++
			}
		}
	}
	if grew {
		sec.red = newRedactor(slices.Collect(maps.Keys(sec.values)))
	}
	return short
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
