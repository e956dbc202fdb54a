// Package web is socle's portal: server-rendered pages over the REST API,
// embedded in the binary, readable without JavaScript and live with a
// little. It holds no state and decides no permission of its own: every
// page calls the /api/v1 handler in-process with the signed-in user's
// token, shows what the API answers (the controls of a matrix cell are the
// cell's Actions; the approval of a stack's plan is offered by the
// server's rule, Config.Stacks), and forwards actions to the API after
// showing their preview. Templates, the style sheet, the script and the
// SVG charts are all rendered or embedded here, so the portal works with
// no network.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// Authenticator checks a token typed on the login page. It rate-limits
// failed attempts per client address and returns the token's user.
type Authenticator interface {
	Login(r *http.Request, token string) (user string, err error)
}

// StackAccess is the rule of the revision in force on who approves the
// plans of a stack instance (spec.MayApproveStack). why says the rule in
// words when user may not, as the API's 403 does.
type StackAccess interface {
	MayApproveStack(user, stack, instance string) (ok bool, why string)
}

// Config is what the portal needs from the server.
type Config struct {
	// API serves /api/v1; the portal calls it in-process with the user's
	// token, so the portal sees exactly what the API lets the user see.
	API  http.Handler
	Auth Authenticator
	// Stacks says who may approve a stack instance's plans, so that a
	// page offers the button only to who may press it; nil offers it to
	// everyone. The API decides again when the form is sent.
	Stacks StackAccess
	Logger *slog.Logger
	// Now is the clock that pages write relative times against ("in 58
	// min"); nil is time.Now. Tests set it.
	Now func() time.Time
}

// CookieName holds the user's API token in the browser. It is HttpOnly
// and SameSite=Strict; the API accepts it too, so that the browser's
// EventSource streams are authenticated.
const CookieName = "socle_token"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

type portal struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
}

// New returns the portal's handler for every path that is not /api/,
// /v2/, /metrics or /healthz.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &portal{cfg: cfg, log: cfg.Logger, pages: parsePages(cfg.Now)}
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(30*24*time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /login", p.loginPage)
	mux.HandleFunc("POST /login", p.loginPost)
	mux.HandleFunc("POST /logout", p.logout)
	mux.HandleFunc("GET /{$}", p.authed(p.home))
	mux.HandleFunc("GET /apps/{app}", p.authed(p.appPage))
	mux.HandleFunc("GET /apps/{app}/envs/{env}/logs", p.authed(p.logsPage))
	mux.HandleFunc("GET /apps/{app}/envs/{env}/confirm", p.authed(p.confirmPage))
	mux.HandleFunc("POST /apps/{app}/envs/{env}/{action}", p.authed(p.actionPost))
	mux.HandleFunc("GET /stacks", p.authed(p.stacksPage))
	mux.HandleFunc("GET /stacks/{stack}/{instance}", p.authed(p.stackPage))
	mux.HandleFunc("POST /stacks/{stack}/{instance}/approve", p.authed(p.stackApprovePost))
	mux.HandleFunc("GET /stacks/{stack}/{instance}/unlock", p.authed(p.stackUnlockPage))
	mux.HandleFunc("GET /stacks/{stack}/{instance}/logs/{log}", p.authed(p.stackLogPage))
	mux.HandleFunc("POST /stacks/{stack}/{instance}/unlock", p.authed(p.stackUnlockPost))
	mux.HandleFunc("GET /revisions", p.authed(p.revisionsPage))
	mux.HandleFunc("GET /revisions/{sha}", p.authed(p.revisionPage))
	mux.HandleFunc("GET /activity", p.authed(p.activityPage))
	mux.HandleFunc("GET /dora", p.authed(p.doraPage))
	mux.HandleFunc("GET /costs", p.authed(p.costsPage))
	mux.HandleFunc("/", p.authed(func(w http.ResponseWriter, r *http.Request, s *session) {
		p.fail(w, r, s, pageError(http.StatusNotFound, "There is no page at "+r.URL.Path+"."))
	}))
	return securityHeaders(mux)
}

// securityHeaders keeps the pages from being framed or sniffed, and lets
// them load nothing but their own scripts and styles.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// assetVersions are a hash of each embedded asset: pages link to
// /static/<name>?v=<hash>, so that browsers may keep an asset for long and
// still fetch the new one when socle is upgraded.
var assetVersions = func() map[string]string {
	out := map[string]string{}
	fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			sum := sha256.Sum256(b)
			out[strings.TrimPrefix(p, "static/")] = hex.EncodeToString(sum[:6])
		}
		return nil
	})
	return out
}()

// asset is the URL of an embedded asset.
func asset(name string) string { return "/static/" + name + "?v=" + assetVersions[name] }

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// session is a signed-in page request: the user as the API sees them and
// a caller that acts as them.
type session struct {
	api *client.Client
	me  api.Me
}

// Role summarises the user's roles for the header: "developer (bookings)".
func (s *session) Role() string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, m := range s.me.Teams {
		parts = append(parts, m.Role+" ("+m.Team+")")
	}
	return strings.Join(parts, ", ")
}

// authed runs h for a request with a valid token cookie, and answers 401
// with a link to the login page otherwise.
func (p *portal) authed(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value == "" || p.cfg.API == nil {
			p.unauthorized(w, r, "")
			return
		}
		if r.Method == http.MethodPost && !sameOrigin(r) {
			// SameSite=Strict already keeps the cookie off cross-site
			// posts; the Origin check also covers old browsers.
			p.render(w, r, http.StatusForbidden, "error", nil, "Forbidden", errorView{Title: "Forbidden", Message: "This form was sent from another site."})
			return
		}
		s := &session{api: p.apiFor(r, c.Value)}
		me, err := s.api.Me(r.Context())
		if err != nil {
			if isStatus(err, http.StatusUnauthorized) {
				clearCookie(w, r)
				p.unauthorized(w, r, "Your session has ended or its token is no longer valid.")
				return
			}
			p.fail(w, r, nil, err)
			return
		}
		s.me = me
		h(w, r, s)
	}
}

// sameOrigin reports whether a form post comes from the portal itself. A
// browser that sends no Origin (an old one) is let through: the cookie is
// SameSite=Strict.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (p *portal) unauthorized(w http.ResponseWriter, r *http.Request, why string) {
	if why == "" {
		why = "Sign in with your socle token to see this page."
	}
	p.render(w, r, http.StatusUnauthorized, "error", nil, "Sign in", errorView{Title: "Sign in", Message: why, Login: loginURL(r)})
}

func loginURL(r *http.Request) string {
	if r.Method != http.MethodGet || r.URL.Path == "/" {
		return "/login"
	}
	return "/login?next=" + url.QueryEscape(r.URL.RequestURI())
}

// errorView is the body of an error page.
type errorView struct {
	Title, Message string
	Code           string
	Login          string // a link to the login page, for 401
}

// fail answers a page whose API call failed with the API's status and
// reason: a 403 stays a 403, a 404 a 404.
func (p *portal) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status := statusOf(err)
	if status == http.StatusUnauthorized {
		p.unauthorized(w, r, "")
		return
	}
	v := errorView{Title: http.StatusText(status), Message: err.Error()}
	var ae *client.Error
	if errors.As(err, &ae) {
		v.Code = ae.Code
	} else {
		p.log.Error("portal page", "path", r.URL.Path, "err", err)
	}
	p.render(w, r, status, "error", s, v.Title, v)
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	Session *session
	Data    any
}

// render writes a page. It renders into memory first, so that a template
// error answers 500 rather than half a page.
func (p *portal) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, title string, data any) {
	t := p.pages[name]
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", view{Title: title, Nav: name, Session: s, Data: data}); err != nil {
		p.log.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write([]byte(b.String()))
	}
}

// parsePages parses every page with the layout it shares with the others.
// Times are written against now: "at" an event that happened, "until" a
// deadline such as the opening of a gate; "now" is the page's own time,
// from which the script tells how far the browser's clock is off.
func parsePages(now func() time.Time) map[string]*template.Template {
	clock := template.FuncMap{
		"at":    func(t time.Time) template.HTML { return timeTag(t, now(), false) },
		"until": func(t time.Time) template.HTML { return timeTag(t, now(), true) },
		"now":   func() string { return now().UTC().Format(time.RFC3339) },
		// Cells are written by hand (cell.go), against the same clock.
		"cellBody":   func(c api.AppEnv) template.HTML { return cellBody(c, now()) },
		"cellPhase":  cellPhase,
		"matrixBody": func(rows []matrixRow) template.HTML { return matrixBody(rows, now()) },
	}
	base := template.Must(template.New("").Funcs(funcs).Funcs(clock).ParseFS(templateFS, "templates/layout.html", "templates/parts.html"))
	names, _ := fs.Glob(templateFS, "templates/*.html")
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "parts" {
			continue
		}
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return pages
}

// User is the signed-in user's name.
func (s *session) User() string { return s.me.User }
