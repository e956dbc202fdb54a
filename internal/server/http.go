package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime"
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
	// Runtime is what runs, unit by unit, as the reconciler sees it.
	Runtime []reconcile.UnitStatus `json:"runtime"`
	// ProxyAddr is where the apps are reached: http://<app>.<env>.localhost:<port>.
	ProxyAddr string `json:"proxyAddr,omitempty"`
	// Blocked are the units whose change in the revision in force a
	// policy denied.
	Blocked []BlockedUnit `json:"blocked,omitempty"`
}

// BlockedUnit is a unit whose desired change waits, and why.
type BlockedUnit struct {
	App    string `json:"app"`
	Env    string `json:"env"`
	Reason string `json:"reason"`
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
	mux.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/logs", s.getLogs)
	mux.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/releases", s.getReleases)
	api.CostRoutes(mux, s.costs)
	s.actionRoutes(mux)
	limited := http.MaxBytesHandler(http.TimeoutHandler(mux, 30*time.Second, `{"error":{"code":"timeout","message":"the request took too long"}}`), 1<<20)
	root := http.NewServeMux()
	root.Handle("/", limited)
	// Streams and the registry's large uploads are not bound by the API's
	// time and size limits.
	root.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/logs", s.getLogs)
	root.Handle("/v2/", s.registry)
	root.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	return root
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.status
	st.Blocked = slices.Clone(st.Blocked)
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
	st.Runtime = s.engine.Status()
	st.ProxyAddr = s.ProxyAddr()
	writeJSON(w, http.StatusOK, st)
}

// getLogs streams the output of a unit's replicas, each line prefixed with
// its replica; with follow=true it goes on until the client leaves.
func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	follow := r.URL.Query().Get("follow") == "true"
	all, err := s.driver.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "runtime", err.Error())
		return
	}
	var found []runtime.Status
	for _, st := range all {
		if st.Ref.App == app && st.Ref.Env == env {
			found = append(found, st)
		}
	}
	if len(found) == 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no replica of %s runs in %s", app, env))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, st := range found {
		rc, err := s.driver.Logs(r.Context(), st.Handle, follow)
		if err != nil {
			continue
		}
		wg.Go(func() {
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				mu.Lock()
				fmt.Fprintf(w, "[%s] %s\n", st.Ref, sc.Text())
				if flusher != nil {
					flusher.Flush()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func (s *Server) getReleases(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	rels, err := s.store.Releases(r.Context(), store.ReleaseFilter{App: r.PathValue("app"), Env: r.PathValue("env"), Before: before, Limit: limit})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": rels})
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
