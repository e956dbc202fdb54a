package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

func wireToken(t store.Token) api.Token {
	return api.Token{ID: t.ID, User: t.User, Description: t.Description, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
		ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

// isAdmin reports whether user is an admin of the platform in force.
func (s *Server) isAdmin(user string) bool {
	repo := s.repoInForce()
	return repo != nil && repo.Admin(user)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	user := callerOf(r).User
	of := user
	if s.isAdmin(user) {
		of = r.URL.Query().Get("user")
	}
	ts, err := s.store.Tokens(r.Context(), of)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	page := api.Page[api.Token]{Items: make([]api.Token, len(ts))}
	for i, t := range ts {
		page.Items[i] = wireToken(t)
	}
	s.reply(w, r, page)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req api.NewToken
	if !readBody(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.User) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "user is required")
		return
	}
	var expires time.Duration
	if req.Expires != "" {
		d, err := spec.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("expires %q is not a duration such as 30d or 12h", req.Expires))
			return
		}
		expires = time.Duration(d)
	}
	if repo := s.repoInForce(); repo != nil && !repo.Member(req.User) {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s is not a member of any team in teams.yaml", req.User))
		return
	}
	secret, t, err := auth.Create(r.Context(), s.store, req.User, req.Description, callerOf(r).User, expires)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, api.CreatedToken{Token: wireToken(t), Secret: secret})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	user, id := callerOf(r).User, r.PathValue("id")
	t, err := s.store.Token(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.User != user && !s.isAdmin(user)) {
		// Someone else's token is as unknown as a missing one.
		writeError(w, http.StatusNotFound, "not_found", "no token "+id)
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	detail, _ := json.Marshal(map[string]string{"token": id, "user": t.User})
	t, err = s.store.RevokeToken(r.Context(), id, &store.AuditRecord{Actor: user, Action: "token.revoked", Detail: detail})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	s.reply(w, r, wireToken(t))
}
