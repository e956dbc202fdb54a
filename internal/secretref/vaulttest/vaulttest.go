// Package vaulttest is a STAND-IN for HashiCorp Vault, for tests: no
// Vault or OpenBao server can be built here (the Go module proxy refuses
// `go install` of both: their modules have replace directives, and
// OpenBao's is not served), so this loopback HTTP server speaks the part
// of Vault's real HTTP API that socle uses, as Vault answers it: KV v2
// reads (GET /v1/<mount>/data/<path> with X-Vault-Token, answering
// {"data":{"data":{…},"metadata":{…}}}, 403 {"errors":["permission
// denied"]}, 404 {"errors":[]}), AppRole logins (POST or PUT
// /v1/auth/<mount>/login with role_id and secret_id, answering
// auth.client_token and auth.lease_duration) and namespaces
// (X-Vault-Namespace). Tokens carry the paths they may read and an expiry,
// as a policy and a TTL would.
package vaulttest

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is the stand-in.
type Server struct {
	URL string
	// Namespace, when set, is the only namespace that holds secrets: a
	// request with another X-Vault-Namespace finds nothing (403 for a
	// token of the namespace, as Vault answers).
	Namespace string

	srv *httptest.Server
	now func() time.Time

	mu      sync.Mutex
	secrets map[string]map[string]any // by mount/path
	tokens  map[string]token
	roles   map[string]role // by role ID
	reads   int
	logins  int
}

type token struct {
	paths   []string // mount/path prefixes it may read
	expires time.Time
}

type role struct {
	secretID string
	ttl      time.Duration
	paths    []string
}

// Start starts a stand-in on loopback, stopped when the test ends.
func Start(t testing.TB) *Server {
	s := &Server{now: time.Now, secrets: map[string]map[string]any{}, tokens: map[string]token{}, roles: map[string]role{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Stop stops the server: Vault is down.
func (s *Server) Stop() { s.srv.Close() }

// Put writes a secret's data at mount/path.
func (s *Server) Put(mount, path string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[mount+"/"+path] = data
}

// AddToken makes a token that may read under the given mount/path
// prefixes ("secret/apps/web").
func (s *Server) AddToken(tok string, paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = token{paths: paths}
}

// Revoke revokes tok.
func (s *Server) Revoke(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tok)
}

// AddAppRole makes an AppRole whose logins give tokens of lease ttl that
// may read under paths; a ttl of 0 is Vault's default, 768 hours.
func (s *Server) AddAppRole(roleID, secretID string, ttl time.Duration, paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl <= 0 {
		ttl = 768 * time.Hour
	}
	s.roles[roleID] = role{secretID: secretID, ttl: ttl, paths: paths}
}

// Logins counts the successful AppRole logins; Reads the KV reads
// answered 200.
func (s *Server) Logins() int { s.mu.Lock(); defer s.mu.Unlock(); return s.logins }
func (s *Server) Reads() int  { s.mu.Lock(); defer s.mu.Unlock(); return s.reads }

// Expire makes every token given by an AppRole login expire now.
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tokens {
		if !t.expires.IsZero() {
			t.expires = s.now().Add(-time.Second)
			s.tokens[k] = t
		}
	}
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

func errs(w http.ResponseWriter, code int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	reply(w, code, map[string]any{"errors": msgs})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		errs(w, http.StatusNotFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("X-Vault-Request") != "true" { // Vault's SSRF guard, which its clients send
		errs(w, http.StatusPreconditionFailed, "missing X-Vault-Request header")
		return
	}
	if strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") && (r.Method == http.MethodPost || r.Method == http.MethodPut) { // Vault takes PUT as POST; its client sends PUT
		s.login(w, r)
		return
	}
	mount, rest, ok := strings.Cut(p, "/data/")
	if !ok || r.Method != http.MethodGet {
		errs(w, http.StatusNotFound)
		return
	}
	tok, ok := s.tokens[r.Header.Get("X-Vault-Token")]
	if !ok || !tok.expires.IsZero() && !s.now().Before(tok.expires) || r.Header.Get("X-Vault-Namespace") != s.Namespace {
		errs(w, http.StatusForbidden, "permission denied")
		return
	}
	full := mount + "/" + rest
	allowed := false
	for _, pre := range tok.paths {
		allowed = allowed || full == pre || strings.HasPrefix(full, strings.TrimSuffix(pre, "/")+"/")
	}
	if !allowed {
		errs(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	data, ok := s.secrets[full]
	if !ok {
		errs(w, http.StatusNotFound)
		return
	}
	s.reads++
	reply(w, http.StatusOK, map[string]any{
		"request_id": rand.Text(), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": map[string]any{
			"data":     data,
			"metadata": map[string]any{"created_time": s.now().UTC().Format(time.RFC3339Nano), "custom_metadata": nil, "deletion_time": "", "destroyed": false, "version": 1},
		},
		"wrap_info": nil, "warnings": nil, "auth": nil,
	})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		errs(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	ro, ok := s.roles[body.RoleID]
	if !ok {
		errs(w, http.StatusBadRequest, "invalid role ID")
		return
	}
	if ro.secretID != body.SecretID {
		errs(w, http.StatusBadRequest, "invalid secret id")
		return
	}
	tok := "hvs." + rand.Text()
	s.tokens[tok] = token{paths: ro.paths, expires: s.now().Add(ro.ttl)}
	s.logins++
	reply(w, http.StatusOK, map[string]any{
		"request_id": rand.Text(), "data": nil, "wrap_info": nil, "warnings": nil,
		"auth": map[string]any{"client_token": tok, "accessor": rand.Text(), "policies": []string{"default"}, "token_policies": []string{"default"},
			"lease_duration": int(ro.ttl / time.Second), "renewable": true, "entity_id": "", "token_type": "service", "orphan": true},
	})
}
