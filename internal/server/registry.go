package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/artifact/registry"
)

// registryChallenge is the challenge of a 401 under /v2/. Registry clients
// (docker, podman and skopeo, containerd, go-containerregistry's crane and
// ko) read a Bearer challenge as "fetch a token from the realm URL", and
// "socle" is no URL: they failed before sending any credentials. Basic is
// what socle accepts already (any user name, a socle token as the
// password), every client follows it, and socle's tokens are long-lived
// secrets of their own, so a token service in front of them would add a
// round trip and a second kind of token without adding any protection:
// the token crosses the wire either way, and TLS is what keeps it.
const registryChallenge = `Basic realm="socle"`

// pullPrefix starts the user name of a registry pull token, which socle
// makes for a cluster to pull one app's images (pull:<app>): a name that no
// member of teams.yaml can have (user names match ^[a-z0-9][a-z0-9._-]*$),
// so it holds no role, and verify keeps it out of everything but /v2/.
const pullPrefix = "pull:"

// pullApp returns the app whose images user, a pull token's user, may read.
func pullApp(user string) (string, bool) { return strings.CutPrefix(user, pullPrefix) }

var errPullOnly = errors.New("a pull token reads images under /v2/ and nothing else")

// underRegistry says whether path is the registry's.
func underRegistry(path string) bool { return path == "/v2" || strings.HasPrefix(path, "/v2/") }

// guardRegistry lets members pull and developers and above of an app's
// team push to apps/<app>, and a pull token read its app's repositories
// only. It answers as a registry: a Basic challenge with each 401, and the
// distribution spec's error shape ({"errors":[{code,message,detail}]}),
// which registry clients print.
func (s *Server) guardRegistry(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, err := s.verify(r)
		if err != nil {
			registryDenied(w, r, authFailure(err))
			return
		}
		if d := s.registryAccess(r); d != nil {
			registryDenied(w, r, d)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// registryAccess is the verdict on an authenticated registry request.
func (s *Server) registryAccess(r *http.Request) *denial {
	rest, inApps := strings.CutPrefix(r.URL.Path, "/v2/apps/")
	app, _, _ := strings.Cut(rest, "/")
	if pulls, ok := pullApp(callerOf(r).User); ok {
		switch {
		case !safeMethod(r.Method):
			return deny(http.StatusForbidden, "forbidden", "a pull token only reads images")
		case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
			return nil // the version check every client makes first
		case !inApps || app != pulls:
			return deny(http.StatusForbidden, "forbidden", "a pull token of "+pulls+" reads /v2/apps/"+pulls+"/ only")
		}
		return nil
	}
	if safeMethod(r.Method) {
		return s.permit(r, api.AccessMember)
	}
	// The repository names the app: /v2/apps/<app>/blobs/uploads/…
	if !inApps || app == "" {
		return deny(http.StatusForbidden, "forbidden", "images are pushed to /v2/apps/<app>/")
	}
	r.SetPathValue("app", app)
	return s.permit(r, api.AccessTeam)
}

// registryDenied answers d as a registry does.
func registryDenied(w http.ResponseWriter, r *http.Request, d *denial) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	code := registry.CodeDenied
	var detail any
	switch d.status {
	case http.StatusUnauthorized:
		code = registry.CodeUnauthorized
		w.Header().Set("WWW-Authenticate", registryChallenge)
		detail = map[string]string{"login": "any user name, and a socle token (socle token create) as the password"}
	case http.StatusNotFound:
		code = registry.CodeNameUnknown
	case http.StatusTooManyRequests:
		code = registry.CodeTooManyRequests
		w.Header().Set("Retry-After", d.retryAfter())
	case http.StatusInternalServerError:
		code = registry.CodeUnknown
	}
	registry.WriteError(w, r, d.status, code, d.msg, detail)
}
