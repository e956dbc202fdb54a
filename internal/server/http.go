package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// Status is what /api/v1/status reports: which revision is in force, which
// one failed and why, and the last plan.
type Status struct {
	Repository string           `json:"repository"`
	Head       *source.Revision `json:"head,omitempty"`
	LastGood   *source.Revision `json:"lastGood,omitempty"`
	// Failing is set while the newest revision does not validate.
	Failing    *Failing  `json:"failing,omitempty"`
	FetchError string    `json:"fetchError,omitempty"`
	LastPlan   *PlanRef  `json:"lastPlan,omitempty"`
	Units      []UnitRef `json:"units"`
}

// Failing is a revision that does not validate.
type Failing struct {
	Revision source.Revision `json:"revision"`
	Problems spec.Problems   `json:"problems"`
}

// PlanRef names a recorded plan.
type PlanRef struct {
	ID      int64        `json:"id"`
	Summary plan.Summary `json:"summary"`
}

// UnitRef is one unit's recorded desired state.
type UnitRef struct {
	App       string    `json:"app"`
	Env       string    `json:"env"`
	Revision  string    `json:"revision"`
	Source    string    `json:"source"`
	Artifact  string    `json:"artifact,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/v1/status", s.getStatus)
	mux.HandleFunc("POST /api/v1/hooks/git", func(w http.ResponseWriter, r *http.Request) {
		s.Trigger()
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "fetch scheduled"})
	})
	mux.HandleFunc("GET /api/v1/revisions", s.getRevisions)
	mux.HandleFunc("GET /api/v1/plans/{id}", s.getPlan)
	mux.HandleFunc("GET /api/v1/events", s.getEvents)
	return http.MaxBytesHandler(http.TimeoutHandler(mux, 30*time.Second, `{"error":{"code":"timeout","message":"the request took too long"}}`), 1<<20)
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	rows, err := s.store.Desired(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	st.Units = make([]UnitRef, 0, len(rows))
	for _, d := range rows {
		var u plan.Unit
		if err := json.Unmarshal(d.Spec, &u); err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		st.Units = append(st.Units, UnitRef{App: d.App, Env: d.Env, Revision: d.Revision, Source: u.Source, Artifact: u.Artifact, UpdatedAt: d.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) getRevisions(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	revs, err := s.store.Revisions(r.Context(), limit, r.URL.Query().Get("before"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	type rev struct {
		SHA      string          `json:"sha"`
		Author   string          `json:"author"`
		Time     time.Time       `json:"time"`
		Message  string          `json:"message"`
		Valid    bool            `json:"valid"`
		Problems json.RawMessage `json:"problems,omitempty"`
		SeenAt   time.Time       `json:"seenAt"`
	}
	out := make([]rev, len(revs))
	for i, v := range revs {
		out[i] = rev{v.SHA, v.Author, v.Time, v.Message, v.Valid, v.Problems, v.SeenAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (s *Server) getPlan(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "plan id must be a number")
		return
	}
	p, err := s.store.Plan(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no plan "+r.PathValue("id"))
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(p.Body)
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	evs, err := s.store.Events(r.Context(), store.EventFilter{AfterID: after, Kind: q.Get("kind"), App: q.Get("app"), Env: q.Get("env"), Limit: limit})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": evs})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": kind, "message": msg}})
}
