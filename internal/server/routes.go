package server

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/trace"
	"github.com/socle-dev/socle/internal/web"
	"github.com/socle-dev/socle/internal/wiring"
)

// The API's default limits of a request's body and time; an operation may
// set its own (api.Operation.MaxBody, Timeout).
const (
	maxBody      = 1 << 20
	requestLimit = 30 * time.Second
)

// OperationHeader names the operation that answered: what the route test
// checks against the OpenAPI document.
const OperationHeader = "X-Socle-Operation"

// patterns records every pattern the API registers, for the route test.
type patterns struct {
	mu   sync.Mutex
	list []string
}

func (p *patterns) add(pattern string) {
	p.mu.Lock()
	p.list = append(p.list, pattern)
	p.mu.Unlock()
}

// Patterns returns the method and path patterns the server serves.
func (s *Server) Patterns() []string {
	s.patterns.mu.Lock()
	defer s.patterns.mu.Unlock()
	return append([]string(nil), s.patterns.list...)
}

// handlers binds each operation of api.Operations to its handler.
func (s *Server) handlers() map[string]http.HandlerFunc {
	h := map[string]http.HandlerFunc{
		"health": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		},
		"ready": func(w http.ResponseWriter, r *http.Request) {
			if err := s.ready(); err != nil {
				writeError(w, http.StatusServiceUnavailable, wiring.UnreadyReason(err), err.Error())
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		},
		"metrics": promhttp.HandlerFor(s.gatherer(), promhttp.HandlerOpts{}).ServeHTTP,
		"openapi": func(w http.ResponseWriter, r *http.Request) {
			b, err := api.OpenAPI()
			if err != nil {
				writeError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		},
		"me":       s.getMe,
		"status":   s.getStatus,
		"platform": s.getPlatform,
		"gitHook": func(w http.ResponseWriter, r *http.Request) {
			trace.Hand(r.Context(), trace.HookKey) // a CI pipeline's trace goes on in the revision
			s.Trigger()
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "fetch scheduled"})
		},
		"listApps":           s.listApps,
		"getApp":             s.getApp,
		"createApp":          s.createApp,
		"listTemplates":      s.listTemplates,
		"upgradeApp":         s.upgradeApp,
		"listReleases":       s.getReleases,
		"getRelease":         s.getRelease,
		"logs":               s.getLogs,
		"preview":            s.getPreview,
		"deploy":             s.postDeploy,
		"promote":            s.postPromote,
		"listApprovals":      s.getApprovals,
		"approve":            s.postApproval,
		"rollback":           s.postRollback,
		"registerArtifact":   s.postArtifact,
		"listSecrets":        s.listSecrets,
		"setSecret":          s.putSecret,
		"rotateSecrets":      s.rotateSecrets,
		"listRevisions":      s.getRevisions,
		"getRevision":        s.getRevision,
		"getPlan":            s.getPlan,
		"listEvents":         s.getEvents,
		"streamEvents":       s.streamEvents,
		"listAudit":          s.getAudit,
		"verifyAudit":        s.getAuditVerify,
		"dora":               s.getDORA,
		"doraSeries":         s.getDORASeries,
		"appSignals":         s.getAppSignals,
		"listSignals":        s.getSignals,
		"listResources":      s.listResources,
		"getResource":        s.getResource,
		"deleteResource":     s.deleteResource,
		"listStacks":         s.listStacks,
		"getStack":           s.getStack,
		"unlockStack":        s.unlockStack,
		"listStackLogs":      s.listStackLogs,
		"getStackLog":        s.getStackLog,
		"listStackApprovals": s.listStackApprovals,
		"approveStack":       s.approveStack,
		"listTokens":         s.listTokens,
		"createToken":        s.createToken,
		"revokeToken":        s.revokeToken,
		"listPauses":         s.listPauses,
		"pauseApp":           s.pauseApp,
		"resumeApp":          s.resumeApp,
		"pauseEnv":           s.pauseEnv,
		"resumeEnv":          s.resumeEnv,
	}
	for id, f := range CostHandlers(s.costs) {
		h[id] = f
	}
	return h
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	hs := s.handlers()
	for _, op := range api.Operations {
		h := hs[op.ID]
		if h == nil {
			panic("server: no handler for operation " + op.ID)
		}
		pattern := op.Method + " " + op.Path
		s.patterns.add(pattern)
		mux.Handle(pattern, s.guard(op, h))
	}
	// Anything else under /api/ is no route: 401 without a token, 404 with.
	s.patterns.add("/api/")
	mux.Handle("/api/", s.guard(api.Operation{ID: "noRoute", Access: api.AccessAuthenticated}, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s (see /api/v1/openapi.json)", r.Method, r.URL.Path))
	}))
	s.patterns.add("/v2/")
	mux.Handle("/v2/", s.guardRegistry(s.registry))
	portal := web.New(web.Config{API: mux, Auth: portalAuth{s}, Stacks: portalAuth{s}, Logger: s.log, Now: s.clock.Now})
	s.patterns.add("/")
	mux.Handle("/", s.guardPortal(portal))
	return mux
}

// guard authenticates and authorizes a request for op, then bounds its
// body and time unless op streams.
func (s *Server) guard(op api.Operation, h http.HandlerFunc) http.Handler {
	var next http.Handler = h
	if op.Stream == "" {
		limit, timeout := cmp.Or(op.MaxBody, maxBody), cmp.Or(op.Timeout, requestLimit)
		next = http.MaxBytesHandler(http.TimeoutHandler(h, timeout,
			`{"error":{"code":"timeout","message":"the request took too long"}}`), limit)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = trace.Extract(r) // the caller's traceparent: the work it starts goes on in its trace
		w.Header().Set(OperationHeader, op.ID)
		if op.Stream == "" {
			// The time limit's 503 is JSON like every error; a handler's
			// answer sets its own type over it.
			w.Header().Set("Content-Type", "application/json")
		}
		if op.Signed && s.signedHook(w, r) {
			next.ServeHTTP(w, r)
			return
		}
		if op.Access != api.AccessPublic {
			var ok bool
			if r, ok = s.authenticate(w, r); !ok {
				return
			}
			if !s.authorize(w, r, op.Access) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// guardPortal lets everyone reach the login page and its assets, and
// nobody else without a valid token: 401 with a link to the login page (and,
// for a cookie that no longer works, the cookie cleared).
func (s *Server) guardPortal(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" || strings.HasPrefix(r.URL.Path, "/static/") {
			h.ServeHTTP(w, r)
			return
		}
		r, err := s.verify(r)
		switch {
		case err == nil:
			h.ServeHTTP(w, r)
			return
		case badToken(err):
			if _, cookie := presented(r); cookie {
				http.SetCookie(w, &http.Cookie{Name: TokenCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>socle: log in</title></head>`+
				`<body><p>You are not logged in, or your token no longer works. <a href="/login">Log in with a token</a>.</p></body></html>`)
		default:
			s.authenticate(w, r) // limited, cross-site or a store fault: the API's answer
		}
	})
}

// portalAuth is the login page's check of a typed token.
type portalAuth struct{ s *Server }

func (p portalAuth) Login(r *http.Request, token string) (string, error) {
	t, err := p.s.auth.Authenticate(r.Context(), clientIP(r), token)
	if err != nil {
		return "", err
	}
	return t.User, nil
}

// MayApproveStack is the rule of the revision in force on who approves
// the plans of a stack instance, the one approveStack applies.
func (p portalAuth) MayApproveStack(user, name, instance string) (bool, string) {
	repo, _ := p.s.pipeline.InForce()
	if repo == nil {
		return false, "no valid revision of the platform repository yet"
	}
	st := repo.Stack(name)
	if st == nil {
		return false, fmt.Sprintf("no stack %q in the revision in force", name)
	}
	if repo.MayApproveStack(user, st, instance) {
		return true, ""
	}
	return false, stackApproveDenial(repo, user, stack.Target{Stack: st, Instance: instance})
}

// reply answers a GET with v as JSON and a weak ETag of it; a client that
// has that version already gets 304.
// Every answer goes through the redactor of secret values, whatever
// handler made it: what a handler forgot to redact is caught here.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	body := s.redactor().JSON(buf.Bytes())
	buf.Reset()
	buf.Write(body)
	sum := sha256.Sum256(buf.Bytes())
	etag := `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	w.Header().Set("ETag", etag)
	if m := r.Header.Get("If-None-Match"); m != "" && strings.Contains(m, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes())
}

// pageOf reads ?limit= and ?cursor=: limit 0 means the default.
func pageOf(r *http.Request) (limit int, cursor string, err error) {
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 || limit > store.MaxLimit {
			return 0, "", fmt.Errorf("limit %q must be a number from 1 to %d", v, store.MaxLimit)
		}
	}
	if limit == 0 {
		limit = store.DefaultLimit
	}
	return limit, r.URL.Query().Get("cursor"), nil
}

// intParam reads an integer query parameter, 0 when absent.
func intParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", name, v)
	}
	return n, nil
}

// signedHook reports whether r is a git host's webhook signed with the
// webhook secret: GitHub's and Gitea's X-Hub-Signature-256 (HMAC-SHA256 of
// the body) or GitLab's X-Gitlab-Token. Any other request, a wrongly signed
// one included, goes on to token authentication (401 without a token).
func (s *Server) signedHook(w http.ResponseWriter, r *http.Request) bool {
	secret := s.cfg.WebhookSecret
	sig, token := r.Header.Get("X-Hub-Signature-256"), r.Header.Get("X-Gitlab-Token")
	if secret == "" || (sig == "" && token == "") {
		return false
	}
	if token != "" {
		return hmac.Equal([]byte(token), []byte(secret))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(sig), []byte(want))
}

// afterCursor reads where an ascending list starts: ?after=, or the cursor
// of the previous page; and the page's size.
func afterCursor(r *http.Request) (after int64, limit int, err error) {
	after, err = intParam(r, "after")
	if err != nil {
		return 0, 0, err
	}
	limit, cursor, err := pageOf(r)
	if err == nil && cursor != "" {
		after, err = strconv.ParseInt(cursor, 10, 64)
	}
	return after, limit, err
}
