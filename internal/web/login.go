package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/socle-dev/socle/internal/auth"
)

// loginView is the login page's body.
type loginView struct {
	Next  string
	Error string
}

func (p *portal) loginPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "login", nil, "Sign in", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

// loginPost checks the token with the Authenticator (which rate-limits
// failed attempts) and keeps it in an HttpOnly cookie: scripts never see it.
func (p *portal) loginPost(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		p.render(w, r, http.StatusForbidden, "error", nil, "Forbidden", errorView{Title: "Forbidden", Message: "This form was sent from another site."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	if token == "" || p.cfg.Auth == nil {
		p.render(w, r, http.StatusUnauthorized, "login", nil, "Sign in", loginView{Next: next, Error: "Type your socle token."})
		return
	}
	user, err := p.cfg.Auth.Login(r, token)
	if err != nil {
		p.log.Info("portal login refused", "remote", r.RemoteAddr, "err", err)
		status, msg := http.StatusUnauthorized, "That token was not accepted: "+err.Error()+"."
		if errors.Is(err, auth.ErrTooMany) {
			status, msg = http.StatusTooManyRequests, "Too many failed attempts from this address: wait a minute, then try again."
			w.Header().Set("Retry-After", "60")
		}
		p.render(w, r, status, "login", nil, "Sign in", loginView{Next: next, Error: msg})
		return
	}
	p.log.Info("portal login", "user", user)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (p *portal) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		p.render(w, r, http.StatusForbidden, "error", nil, "Forbidden", errorView{Title: "Forbidden", Message: "This form was sent from another site."})
		return
	}
	clearCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// safeNext keeps a redirect after login on the portal: a local path, never
// another site ("//host" or "/\host" are other sites to a browser).
//
// Browsers drop tabs and newlines from a URL and read a backslash as a
// slash, so any control character or backslash is refused outright, and
// what is kept is rebuilt from the parsed path and query alone.
func safeNext(next string) string {
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(u.Path, "/api/") {
		return "/"
	}
	out := (&url.URL{Path: u.Path, RawQuery: u.RawQuery}).String()
	if strings.HasPrefix(out, "//") {
		return "/"
	}
	return out
}
