package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

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
	var expires time.Time // never
	if req.Expires != "" {
		d, err := spec.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("expires %q is not a duration such as 30d or 12h", req.Expires))
			return
		}
		expires = s.clock.Now().Add(time.Duration(d))
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

// AdminTokenFile is the file in the data directory where socle up keeps
// the first admin's token.
const AdminTokenFile = "admin.token"

// FirstAdminToken makes sure someone can log in to a new platform: when the
// store has no token yet, it creates one for the first admin that
// teams.yaml names at the repository's head and keeps it, mode 0600, in
// <data>/admin.token, as Argo CD keeps its initial admin secret. One admin
// is enough: they make the others' tokens. It returns the admin and the
// file's absolute path, or "" for both when tokens exist already or
// teams.yaml names no admin.
func (s *Server) FirstAdminToken(ctx context.Context) (user, file string, err error) {
	ts, err := s.store.Tokens(ctx, "")
	if err != nil || len(ts) > 0 {
		return "", "", err
	}
	if user = s.headAdmin(); user == "" {
		return "", "", nil
	}
	secret, _, err := auth.Create(ctx, s.store, user, "initial admin token, made by socle up", "socle", time.Time{})
	if err != nil {
		return "", "", err
	}
	if file, err = filepath.Abs(filepath.Join(s.cfg.Data, AdminTokenFile)); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("keeping the first admin token: %w", err)
	}
	s.log.Info("made the first admin token", "user", user, "file", file)
	return user, file, nil
}

// headAdmin names the first admin of teams.yaml at the repository's head,
// before socle has planned anything: teams.yaml is read even when another
// file of the revision does not validate.
func (s *Server) headAdmin() string {
	head, err := s.repo.Head()
	if err != nil {
		return ""
	}
	fsys, err := s.repo.Files(head.SHA)
	if err != nil {
		return ""
	}
	repo, _ := spec.Load(fsys)
	if repo == nil {
		return ""
	}
	for _, t := range repo.Teams.Teams {
		for _, m := range t.Members {
			if m.Role == spec.RoleAdmin {
				return m.User
			}
		}
	}
	return ""
}

// tokenHint is the details of a 401 for r: where the first admin's token
// is, to a caller on this machine (who could read the file anyway) while
// the file exists. Others learn nothing of socle's disk.
func (s *Server) tokenHint(r *http.Request) api.Unauthorized {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return api.Unauthorized{}
	}
	file, err := filepath.Abs(filepath.Join(s.cfg.Data, AdminTokenFile))
	if err != nil {
		return api.Unauthorized{}
	}
	if _, err := os.Stat(file); err != nil {
		return api.Unauthorized{}
	}
	return api.Unauthorized{AdminTokenFile: file}
}
