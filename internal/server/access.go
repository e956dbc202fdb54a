package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/spec"
)

// TokenCookie is the cookie the portal keeps the user's token in.
const TokenCookie = "socle_token"

// caller is who makes a request.
type caller struct {
	User    string
	TokenID string
	// Cookie is true when the token came from the portal's cookie: such a
	// request must come from socle's own pages.
	Cookie bool
}

type callerKey struct{}

// callerOf returns the authenticated caller of r.
func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// clientIP is the address failed attempts are counted against.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// presented returns the token r carries: a bearer token, the password of
// basic authentication (what registry clients send), or the portal's cookie.
func presented(r *http.Request) (token string, cookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t), false
		}
		if _, pw, ok := r.BasicAuth(); ok {
			return pw, false
		}
		return h, false // malformed: fails as a bad token
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return c.Value, true
	}
	return "", false
}

// errCrossSite is a cookie-authenticated write from another site.
var errCrossSite = errors.New("a request authenticated by the portal's cookie must come from the portal (Origin mismatch)")

// verify returns r with its caller, or why it has none. A registry pull
// token (see pullPrincipal) is no caller outside the registry.
func (s *Server) verify(r *http.Request) (*http.Request, error) {
	token, cookie := presented(r)
	t, err := s.auth.Authenticate(r.Context(), clientIP(r), token)
	if err != nil {
		return r, err
	}
	if cookie && !safeMethod(r.Method) && !sameOrigin(r) {
		return r, errCrossSite
	}
	if _, pull := pullApp(t.User); pull && !underRegistry(r.URL.Path) {
		return r, errPullOnly
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, caller{User: t.User, TokenID: t.ID, Cookie: cookie})), nil
}

// badToken reports whether err means the caller has no valid token (as
// opposed to being limited, or the store failing).
func badToken(err error) bool {
	return errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrBadToken) || errors.Is(err, auth.ErrExpired) || errors.Is(err, auth.ErrRevoked)
}

// denial is why a request is refused: its status, socle's error code and
// the words. The API and the registry each answer it in their own shape.
type denial struct {
	status    int
	code, msg string
	retry     time.Duration // when to try again, for a 429
}

func deny(status int, code, msg string) *denial {
	return &denial{status: status, code: code, msg: msg}
}

// retryAfter is the Retry-After header of a 429: whole seconds, at least 1.
func (d *denial) retryAfter() string {
	return strconv.Itoa(max(1, int((d.retry+time.Second-1)/time.Second)))
}

// authFailure is the denial of a request that verify refused.
func authFailure(err error) *denial {
	switch {
	case errors.Is(err, auth.ErrTooMany):
		d := deny(http.StatusTooManyRequests, "too_many_requests", err.Error())
		d.retry = auth.RetryAfter(err)
		return d
	case badToken(err):
		msg := err.Error()
		if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrBadToken) {
			msg = "a valid token is required (Authorization: Bearer TOKEN); an admin makes tokens with socle token create"
		}
		return deny(http.StatusUnauthorized, "unauthorized", msg)
	case errors.Is(err, errCrossSite), errors.Is(err, errPullOnly):
		return deny(http.StatusForbidden, "forbidden", err.Error())
	}
	return deny(http.StatusInternalServerError, "internal", "checking the token: "+err.Error())
}

// authenticate answers 401, 403 or 429 itself and returns false when r
// carries no valid token.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	r, err := s.verify(r)
	if err == nil {
		return r, true
	}
	d := authFailure(err)
	switch d.status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", d.retryAfter())
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="socle"`)
		body := api.ErrorBody{Code: d.code, Message: d.msg}
		if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrBadToken) {
			if hint := s.tokenHint(r); hint.AdminTokenFile != "" {
				body.Message += fmt.Sprintf("; socle up keeps the first admin's token in %s: export SOCLE_TOKEN=$(cat %s), or socle login", hint.AdminTokenFile, hint.AdminTokenFile)
				body.Details = hint
			}
		}
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": body})
		return r, false
	}
	writeError(w, d.status, d.code, d.msg)
	return r, false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a browser request comes from socle's own
// pages: its Origin (or, without one, its Referer) names this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	u, err := url.Parse(o)
	return err == nil && o != "" && u.Host == r.Host
}

// authorize checks what the operation's access level demands of the caller
// and answers 403 or 404 itself when it is not met. Rules that depend on
// the body (the environment a promotion goes to) are checked by the
// handler with mayDeploy.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, access api.Access) bool {
	if d := s.permit(r, access); d != nil {
		writeError(w, d.status, d.code, d.msg)
		return false
	}
	return true
}

// permit is authorize's verdict: nil when the caller may.
func (s *Server) permit(r *http.Request, access api.Access) *denial {
	user := callerOf(r).User
	if access == api.AccessAuthenticated || access == api.AccessPublic {
		return nil
	}
	repo := s.repoInForce()
	if repo == nil {
		// No teams.yaml in force yet: tokens (made by an admin) may read,
		// nobody may act.
		switch access {
		case api.AccessMember, api.AccessSelf:
			return nil
		}
		return deny(http.StatusForbidden, "forbidden", "no valid revision of the platform repository yet, so no roles: only reading is possible")
	}
	if !repo.Member(user) {
		return deny(http.StatusForbidden, "forbidden", fmt.Sprintf("%s is not a member of any team in teams.yaml", user))
	}
	app := r.PathValue("app")
	if app != "" && access != api.AccessMember && repo.App(app) == nil {
		return deny(http.StatusNotFound, "not_found", fmt.Sprintf("no app %q", app))
	}
	var ok bool
	var why string
	switch access {
	case api.AccessMember, api.AccessSelf:
		ok = true
	case api.AccessAdmin:
		ok, why = repo.Admin(user), "only an admin may do this"
	case api.AccessTeam:
		ok, why = repo.MayReadLogs(user, app), fmt.Sprintf("only a developer or above of %s's team %s, or an admin, may do this", app, repo.App(app).Config.Owner)
	case api.AccessApprove:
		ok, why = repo.MayApprove(user, app), fmt.Sprintf("%s is not an approver of %s's team %s, nor an admin", user, app, repo.App(app).Config.Owner)
	case api.AccessDeploy:
		env := r.PathValue("env")
		if env == "" {
			return nil // promote: the handler checks the environment of the body
		}
		return deployDenial(repo, user, app, env)
	}
	if !ok {
		return deny(http.StatusForbidden, "forbidden", why)
	}
	return nil
}

// mayDeploy answers 403 or 404 itself unless user may deploy app in env.
func (s *Server) mayDeploy(w http.ResponseWriter, repo *spec.Repo, user, app, env string) bool {
	if d := deployDenial(repo, user, app, env); d != nil {
		writeError(w, d.status, d.code, d.msg)
		return false
	}
	return true
}

func deployDenial(repo *spec.Repo, user, app, env string) *denial {
	if repo.Environment(env) == nil {
		return deny(http.StatusNotFound, "not_found", fmt.Sprintf("no environment %q", env))
	}
	if repo.MayDeploy(user, app, env) {
		return nil
	}
	role := repo.RoleFor(user, app)
	if role == "" {
		role = "no role"
	}
	return deny(http.StatusForbidden, "forbidden", fmt.Sprintf("%s has %s for %s; %s allows %s to deploy",
		user, role, app, env, joinRoles(repo.DeployRoles(env))))
}

func joinRoles(rs []spec.Role) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return strings.Join(out, ", ")
}

// actions returns what user may do with app in env, for the matrix.
func actions(repo *spec.Repo, user, app, env string) []string {
	out := []string{}
	e := repo.Environment(env)
	if e == nil {
		return out
	}
	gated := e.Promotion != nil && e.Promotion.From != ""
	if a := repo.App(app); a != nil && a.Config.Environments[env].Disabled {
		if repo.MayReadLogs(user, app) {
			out = append(out, "logs")
		}
		return out // the app does not run here: nothing to deploy
	}
	if repo.MayDeploy(user, app, env) {
		if !gated {
			out = append(out, "deploy")
		} else {
			out = append(out, "promote")
		}
		if e.Sync != spec.SyncAuto {
			out = append(out, "rollback")
		}
	}
	if gated && e.Promotion.Approvals > 0 && repo.MayApprove(user, app) {
		out = append(out, "approve")
	}
	if repo.MayReadLogs(user, app) {
		out = append(out, "logs")
	}
	return out
}
