// Package web is socle's portal: server-rendered pages over the REST API,
// embedded in the binary, readable without JavaScript and live with a little.
package web

import (
	"log/slog"
	"net/http"
)

// Authenticator checks a token typed on the login page. It rate-limits
// failed attempts per client address and returns the token's user.
type Authenticator interface {
	Login(r *http.Request, token string) (user string, err error)
}

// Config is what the portal needs from the server.
type Config struct {
	// API serves /api/v1; the portal calls it in-process with the user's
	// token, so the portal sees exactly what the API lets the user see.
	API    http.Handler
	Auth   Authenticator
	Logger *slog.Logger
}

// New returns the portal's handler for every path that is not /api/,
// /v2/, /metrics or /healthz. The pages come with the portal's issue.
func New(cfg Config) http.Handler {
	return http.NotFoundHandler()
}
