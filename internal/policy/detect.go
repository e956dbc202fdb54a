package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/socle-dev/socle/internal/plan"
)

// Words that make a variable name secret-looking anywhere in the name
// (DB_PASSWORD, dbPassword, CLIENT_SECRET, AWS_CREDENTIALS)…
var secretWords = []string{"PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "CREDENTIAL", "PRIVATEKEY"}

// …or as its last word (API_TOKEN, STRIPE_KEY, SMTP_PASS)…
var secretLastWords = []string{"TOKEN", "KEY", "APIKEY", "PWD", "PASS"}

// …unless its last word says the value only points at or describes a
// secret (DB_PASSWORD_FILE, SECRET_NAME, AWS_ACCESS_KEY_ID, TOKEN_TTL).
var pointerLastWords = []string{"FILE", "PATH", "DIR", "NAME", "REF", "ID", "TTL", "URL", "URI", "HOST", "PORT",
	"ENDPOINT", "ENABLED", "LENGTH", "TIMEOUT", "VERSION", "TYPE", "HEADER", "REGION", "ROTATION", "PREFIX"}

// credentialPatterns are values that are credentials whatever the variable
// is called. A regular expression runs only on a value that contains one of
// its hints: most values contain none, and this check runs on every
// variable of every change.
var credentialPatterns = []struct {
	hints []string
	re    *regexp.Regexp
	what  string
}{
	{[]string{"-----BEGIN "}, regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----`), "a private key"},
	{[]string{"AKIA", "ASIA"}, regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`), "an AWS access key"},
	{[]string{"gh", "github_pat_"}, regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})`), "a GitHub token"},
	{[]string{"glpat-"}, regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}`), "a GitLab token"},
	{[]string{"xox"}, regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`), "a Slack token"},
	{[]string{"AIza"}, regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`), "a Google API key"},
	{[]string{"k_live_"}, regexp.MustCompile(`\b[rs]k_live_[0-9A-Za-z]{16,}`), "a Stripe key"},
	{[]string{"eyJ"}, regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`), "a JSON Web Token"},
}

const resourcePlaceholder = "${resources."

// secretIn says why a variable holds a secret in plain text, or "": a
// secret-looking name (see the word lists) with a value that takes nothing
// from a resource, or a value that looks like a credential: a known token
// format, a private key, or a URL with a literal password.
func secretIn(name, value string) string {
	if value != "" && !strings.Contains(value, resourcePlaceholder) && secretName(name) {
		return "secret-looking name with a literal value"
	}
	if len(value) < 10 {
		return "" // shorter than any credential format, or than scheme://u:p@h
	}
	for _, p := range credentialPatterns {
		if slices.ContainsFunc(p.hints, func(h string) bool { return strings.Contains(value, h) }) && p.re.MatchString(value) {
			return "holds " + p.what
		}
	}
	if urlPassword(value) {
		return "a URL with a literal password"
	}
	return ""
}

// secretHints are in every secret-looking name: most names have none, and
// are cleared without splitting them into words.
var secretHints = []string{"PASS", "PWD", "SECRET", "CREDENTIAL", "TOKEN", "KEY"}

// urlPassword reports whether a value holds a URL with a literal password:
// scheme://user:password@host, the password not a ${…} placeholder.
func urlPassword(value string) bool {
	for rest := value; ; {
		i := strings.Index(rest, "://")
		if i < 0 {
			return false
		}
		rest = rest[i+3:]
		authority := rest
		if j := strings.IndexAny(authority, "/ \t\n"); j >= 0 {
			authority = authority[:j]
		}
		at := strings.LastIndex(authority, "@")
		if at < 0 {
			continue
		}
		_, password, ok := strings.Cut(authority[:at], ":")
		if ok && password != "" && !strings.Contains(password, "${") {
			return true
		}
	}
}

func secretName(name string) bool {
	if !slices.ContainsFunc(secretHints, func(h string) bool { return containsFold(name, h) }) {
		return false
	}
	words := nameWords(name)
	if len(words) == 0 {
		return false
	}
	last := words[len(words)-1]
	if slices.Contains(pointerLastWords, last) {
		return false
	}
	if slices.Contains(secretLastWords, last) {
		return true
	}
	for _, w := range words {
		for _, s := range secretWords {
			if strings.Contains(w, s) {
				return true
			}
		}
	}
	return false
}

// containsFold reports whether s contains the upper-case ASCII word,
// ignoring case, without allocating.
func containsFold(s, upper string) bool {
	for i := 0; i+len(upper) <= len(s); i++ {
		j := 0
		for ; j < len(upper); j++ {
			c := s[i+j]
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != upper[j] {
				break
			}
		}
		if j == len(upper) {
			return true
		}
	}
	return false
}

// nameWords splits a variable name into upper-case words at non-letters
// and digits and at camelCase humps: dbPassword_file → DB PASSWORD FILE.
func nameWords(name string) []string {
	var words []string
	var w strings.Builder
	var prev rune
	flush := func() {
		if w.Len() > 0 {
			words = append(words, strings.ToUpper(w.String()))
			w.Reset()
		}
	}
	for _, r := range name {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush()
			w.WriteRune(r)
		default:
			w.WriteRune(r)
		}
		prev = r
	}
	flush()
	return words
}

// placeholderRef is a Score placeholder, ${…}; its literal surroundings are
// what a sandbox app was written with.
var placeholderRef = regexp.MustCompile(`\$\{[^}]*\}`)

// reachesProd lists what in a unit names production: a resource's id,
// class or any string in its params (at any depth), or the literal part of
// a container variable (placeholders removed), containing one of prodNames
// as a whole word (bounded by anything but a letter or a digit, so
// "db.prod.internal" and "alpenrose-apps-prod" name prod, "preprod" and
// "production-like" do not). Matching ignores case.
func reachesProd(u *plan.Unit, prodNames []string) []string {
	if len(prodNames) == 0 {
		return nil
	}
	var bad []string
	note := func(where, value string) {
		if name := namesAny(value, prodNames); name != "" { // where is built only then
			bad = append(bad, fmt.Sprintf("%s names %q", where, name))
		}
	}
	for rname, r := range u.Resources {
		note("resource "+rname+" id", deref(r.Id))
		note("resource "+rname+" class", deref(r.Class))
		if len(r.Params) > 0 {
			walkStrings("resource "+rname+" params", map[string]any(r.Params), note)
		}
	}
	for cname, c := range u.Containers {
		for name, value := range c.Variables {
			if strings.Contains(value, "${") {
				value = placeholderRef.ReplaceAllString(value, " ")
			}
			note("container "+cname+" variable "+name, value)
		}
	}
	slices.Sort(bad)
	return bad
}

// walkStrings calls f with every string in a YAML value, and its path.
func walkStrings(path string, v any, f func(where, value string)) {
	switch t := v.(type) {
	case string:
		f(path, t)
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(t)) {
			walkStrings(path+"."+k, t[k], f)
		}
	case []any:
		for i, c := range t {
			walkStrings(fmt.Sprintf("%s[%d]", path, i), c, f)
		}
	}
}

// namesAny returns the first of names that s contains as a whole word.
func namesAny(s string, names []string) string {
	if s == "" {
		return ""
	}
	lower := strings.ToLower(s)
	for _, n := range names {
		for i := 0; ; {
			j := strings.Index(lower[i:], n)
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(n)
			if (start == 0 || !isWordByte(lower[start-1])) && (end == len(lower) || !isWordByte(lower[end])) {
				return n
			}
			i = start + 1
		}
	}
	return ""
}

func isWordByte(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 0x80 }
