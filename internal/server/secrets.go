package server

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/replicas"
)

// redactor replaces the secret values of every unit socle runs with
// plan.Redacted: in API answers, streamed logs, events and socle's own log.
// A nil redactor replaces nothing.
//
// A value of minSecret characters or more is replaced wherever it occurs,
// inside words too. A shorter one (a PIN, "abc", even "a") is replaced
// only where it stands as a whole word, not touching a letter or a digit:
// "pin=1234" and "said abc." are redacted, "abcdef" and "1234567" are not.
// Replacing "a" inside every word would make logs unreadable and JSON keys
// wrong, and a short value inside a longer word tells nothing of it; where
// socle knows a field is secret (the effective configuration), the whole
// field is redacted whatever its length. GitHub Actions masks every value
// everywhere, whatever its length; Airflow and Jenkins' proposals do as
// here, and socle warns in its log when a secret is that short.
type redactor struct {
	long *strings.Replacer // nil: no long secret
	// short are the values under minSecret characters, longest first.
	short []string
}

// minSecret is the shortest value replaced inside words.
const minSecret = 6

func newRedactor(values []string) *redactor {
	// Each long value as it is and as JSON escapes it (a secret with & < > "
	// \ is written \u0026… in a JSON document), longest first so that a
	// secret containing another is replaced whole.
	var long, short []string
	for _, v := range values {
		if v == "" || strings.Contains(v, "${") {
			continue
		}
		if utf8.RuneCountInString(v) < minSecret {
			short = append(short, v)
			continue
		}
		long = append(long, v)
		if b, err := json.Marshal(v); err == nil {
			if e := string(b[1 : len(b)-1]); e != v {
				long = append(long, e)
			}
		}
	}
	if len(long) == 0 && len(short) == 0 {
		return nil
	}
	red := &redactor{short: longestFirst(short)}
	if long = longestFirst(long); len(long) > 0 {
		pairs := make([]string, 0, 2*len(long))
		for _, v := range long {
			pairs = append(pairs, v, plan.Redacted)
		}
		red.long = strings.NewReplacer(pairs...)
	}
	return red
}

func longestFirst(vs []string) []string {
	slices.SortFunc(vs, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return slices.Compact(vs)
}

// String returns s with every secret replaced.
func (r *redactor) String(s string) string {
	if r == nil {
		return s
	}
	if r.long != nil {
		s = r.long.Replace(s)
	}
	return r.words(s)
}

// words replaces the short secrets that stand as whole words in s.
func (r *redactor) words(s string) string {
	if len(r.short) == 0 {
		return s
	}
	var b strings.Builder
	done := 0 // s[:done] is written to b
	for i := 0; i < len(s); {
		if i == 0 || !wordRune(lastRune(s[:i])) {
			if v := r.shortAt(s, i); v != "" {
				b.WriteString(s[done:i])
				b.WriteString(plan.Redacted)
				i += len(v)
				done = i
				continue
			}
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// shortAt returns the short secret that starts at s[i] and ends at a word's
// end, or "".
func (r *redactor) shortAt(s string, i int) string {
	for _, v := range r.short {
		if strings.HasPrefix(s[i:], v) {
			if rest := s[i+len(v):]; rest == "" || !wordRune(firstRune(rest)) {
				return v
			}
		}
	}
	return ""
}

func wordRune(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }

func firstRune(s string) rune { c, _ := utf8.DecodeRuneInString(s); return c }

func lastRune(s string) rune { c, _ := utf8.DecodeLastRuneInString(s); return c }

// JSON returns a JSON document with every secret replaced; a secret is
// replaced inside strings only if the result still parses. Short secrets
// are replaced in string values only, never in keys, so that an answer
// keeps its shape.
func (r *redactor) JSON(b []byte) []byte {
	if r == nil || len(b) == 0 {
		return b
	}
	out := b
	if r.long != nil {
		out = []byte(r.long.Replace(string(b)))
	}
	if len(r.short) > 0 {
		out = r.jsonWords(out)
	}
	if !json.Valid(out) {
		return []byte(`"` + plan.Redacted + `"`)
	}
	return out
}

// jsonWords replaces short secrets in the string values of a JSON
// document, decoded, so that a secret after an escape (\n) is seen. It
// walks the bytes rather than decoding the document: an answer keeps its
// keys' order, its numbers and its indentation. A document that does not
// scan is returned as it is, for JSON to judge.
func (r *redactor) jsonWords(b []byte) []byte {
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
			return b
		}
		lit := b[i : end+1]
		next := end + 1
		for next < len(b) && (b[next] == ' ' || b[next] == '\n' || b[next] == '\t' || b[next] == '\r') {
			next++
		}
		if next < len(b) && b[next] == ':' { // a key
			i = end
			continue
		}
		var v string
		if json.Unmarshal(lit, &v) == nil {
			if red := r.words(v); red != v {
				enc, _ := json.Marshal(red)
				out = append(append(out, b[done:i]...), enc...)
				done = end + 1
			}
		}
		i = end
	}
	if out == nil {
		return b
	}
	return append(out, b[done:]...)
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
	if s.secrets.values == nil {
		s.secrets.values = map[string]bool{}
	}
	grew, newShort := false, 0
	for _, v := range values {
		if !s.secrets.values[v] {
			s.secrets.values[v], grew = true, true
			if v != "" && utf8.RuneCountInString(v) < minSecret {
				newShort++
			}
		}
	}
	if grew {
		s.secrets.red = newRedactor(slices.Collect(maps.Keys(s.secrets.values)))
	}
	s.secrets.built = true
	red := s.secrets.red
	s.secrets.mu.Unlock()
	if newShort > 0 { // logged unlocked: the log's handler takes the redactor
		s.log.Warn("secret values shorter than 6 characters are redacted only where they stand as a whole word; use longer secrets",
			"count", newShort, "minLength", minSecret)
	}
	return red
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
