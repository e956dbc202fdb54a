package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

// actionRoutes are the API's operator actions and the history they leave.
func (s *Server) actionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/apps/{app}/promote", s.postPromote)
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/approvals", s.postApproval)
	mux.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/approvals", s.getApprovals)
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/rollback", s.postRollback)
	mux.HandleFunc("GET /api/v1/audit", s.getAudit)
	mux.HandleFunc("GET /api/v1/audit/verify", s.getAuditVerify)
	mux.HandleFunc("GET /api/v1/dora", s.getDORA)
}

// actionRequest is the body of promote, approve and rollback. The user is
// whoever the caller says until authentication exists.
type actionRequest struct {
	To      string `json:"to"`      // promote: the environment
	Release int64  `json:"release"` // rollback: the release to restore (0: the previous one)
	User    string `json:"user"`
	Message string `json:"message"`
}

func readAction(w http.ResponseWriter, r *http.Request) (actionRequest, bool) {
	var req actionRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body must be JSON: "+err.Error())
		return req, false
	}
	if strings.TrimSpace(req.User) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "user is required")
		return req, false
	}
	return req, true
}

func (s *Server) postPromote(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	if req.To == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "to (the environment) is required")
		return
	}
	res, err := s.Promote(r.Context(), r.PathValue("app"), req.To, req.User, req.Message)
	writeResult(w, res, err)
}

func (s *Server) postRollback(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	res, err := s.Rollback(r.Context(), r.PathValue("app"), r.PathValue("env"), req.Release, req.User, req.Message)
	writeResult(w, res, err)
}

func (s *Server) postApproval(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	a, err := s.Approve(r.Context(), r.PathValue("app"), r.PathValue("env"), req.User, req.Message)
	writeResult(w, a, err)
}

func (s *Server) getApprovals(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	artifact := r.URL.Query().Get("artifact")
	if artifact == "" {
		if repo := s.repoInForce(); repo != nil {
			if e := repo.Environment(env); e != nil && e.Promotion != nil {
				if cur, err := s.store.CurrentRelease(r.Context(), app, e.Promotion.From); err == nil {
					artifact = cur.Artifact
				}
			}
		}
	}
	as, err := s.store.Approvals(r.Context(), app, env, artifact)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"artifact": artifact, "items": as})
}

// writeResult answers an action: 201 with the result, or the error's code.
func writeResult(w http.ResponseWriter, v any, err error) {
	var blocked *BlockedError
	switch {
	case err == nil:
		writeJSON(w, http.StatusCreated, v)
	case errors.As(err, &blocked):
		writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{"code": "blocked", "message": err.Error(), "details": blocked}})
	case errors.Is(err, ErrUnknown):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, ErrRefused):
		writeError(w, http.StatusConflict, "refused", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = store.DefaultLimit
	}
	recs, err := s.store.AuditRecords(r.Context(), after, limit)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": recs})
}

func (s *Server) getAuditVerify(w http.ResponseWriter, r *http.Request) {
	res, err := audit.Verify(store.AuditTrail(r.Context(), s.store, 0))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) getDORA(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DORAFilter{Env: q.Get("env")}
	if a := q.Get("app"); a != "" {
		f.Apps = []string{a}
	}
	if team := q.Get("team"); team != "" {
		repo := s.repoInForce()
		if repo == nil || repo.Team(team) == nil {
			writeError(w, http.StatusNotFound, "not_found", "no team "+team)
			return
		}
		for _, a := range repo.Apps {
			if a.Config.Owner == team {
				f.Apps = append(f.Apps, a.Name)
			}
		}
		if len(f.Apps) == 0 {
			f.Apps = []string{"\x00none"} // a team without apps deployed nothing
		}
	}
	if d, err := time.ParseDuration(q.Get("period")); err == nil && d > 0 {
		f.Until = time.Now()
		f.Since = f.Until.Add(-d)
	}
	figs, err := s.store.DORA(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, figs)
}
