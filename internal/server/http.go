package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/store"
)

// The wire types of the status, kept under their old names.
type (
	Status      = api.Status
	BlockedUnit = api.BlockedUnit
	Failing     = api.Failing
	PlanRef     = api.PlanRef
	UnitRef     = api.UnitRef
)

// wireStatus is the pipeline's state, for the API.
func (s *Server) wireStatus() Status {
	ps := s.pipeline.State()
	return Status{Repository: s.cfg.Repo, Head: opt(ps.Head, wireSourceRevision), LastGood: opt(ps.LastGood, wireSourceRevision),
		FetchError: ps.FetchError, Blocked: each(ps.Blocked, wireBlocked),
		Failing: opt(ps.Failing, func(f pipeline.Failing) Failing {
			return Failing{Revision: wireSourceRevision(f.Revision), Problems: wireProblems(f.Problems)}
		}),
		LastPlan: opt(ps.LastPlan, func(p pipeline.PlanRef) PlanRef { return PlanRef{ID: p.ID, Summary: wireSummary(p.Summary)} })}
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	st := s.wireStatus()
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
	st.Runtime = each(s.appStatus(), wireUnitStatus)
	st.ProxyAddr = s.ProxyAddr()
	st.Sandbox = &api.SandboxStatus{Mode: string(s.sandbox.Mode()), Message: s.sandbox.Message(), Limits: s.sandbox.Limits()}
	if st.Pauses, err = s.pausesOf(r.Context(), ""); err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) getReleases(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := pageOf(r)
	var before int64
	if err == nil && cursor != "" {
		before, err = strconv.ParseInt(cursor, 10, 64)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	rels, err := s.store.Releases(r.Context(), store.ReleaseFilter{App: r.PathValue("app"), Env: r.PathValue("env"), Before: before, Limit: limit + 1})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	rels, more := cut(rels, limit)
	page := api.Page[api.Release]{Items: make([]api.Release, len(rels))}
	for i, rel := range rels {
		page.Items[i] = wireRelease(rel)
	}
	if more {
		page.Next = strconv.FormatInt(rels[len(rels)-1].ID, 10)
	}
	s.reply(w, r, page)
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "release id must be a number")
		return
	}
	rel, err := s.store.Release(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no release "+r.PathValue("id"))
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	s.reply(w, r, wireRelease(rel))
}

func (s *Server) getRevisions(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := pageOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	revs, err := s.store.Revisions(r.Context(), limit+1, cursor)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	revs, more := cut(revs, limit)
	page := api.Page[api.Revision]{Items: make([]api.Revision, len(revs))}
	for i, v := range revs {
		page.Items[i] = wireRevision(v)
	}
	if more {
		page.Next = revs[len(revs)-1].SHA
	}
	s.reply(w, r, page)
}

func (s *Server) getRevision(w http.ResponseWriter, r *http.Request) {
	v, err := s.store.Revision(r.Context(), r.PathValue("sha"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no revision "+r.PathValue("sha"))
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	ps, err := s.store.Plans(r.Context(), v.SHA, store.MaxLimit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	d := api.RevisionDetail{Revision: wireRevision(v), Plans: make([]api.PlanRef, len(ps))}
	for i, p := range ps {
		d.Plans[i] = api.PlanRef{ID: p.ID, Revision: p.Revision, Created: p.CreatedAt,
			Summary: api.PlanSummary{Create: p.Create, Update: p.Update, Delete: p.Delete, Unchanged: p.Unchanged}}
	}
	s.reply(w, r, d)
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
	var body pipeline.PlanBody
	if err := json.Unmarshal(p.Body, &body); err != nil {
		writeError(w, http.StatusInternalServerError, "store", "reading plan: "+err.Error())
		return
	}
	body.Plan = plan.RedactPlan(body.Plan, nil) // stored redacted; again, for plans stored before
	s.reply(w, r, wirePlanBody(body))
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit, err := afterCursor(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	evs, err := s.store.Events(r.Context(), store.EventFilter{AfterID: after, Kind: q.Get("kind"), App: q.Get("app"), Env: q.Get("env"), Limit: limit + 1})
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	evs, more := cut(evs, limit)
	page := api.Page[api.Event]{Items: make([]api.Event, len(evs))}
	for i, e := range evs {
		page.Items[i] = wireEvent(e, nil) // reply redacts the whole answer
	}
	if more {
		page.Next = strconv.FormatInt(evs[len(evs)-1].ID, 10)
	}
	s.reply(w, r, page)
}

// wireEvent is e for the API, its secrets replaced by red (nil: none).
func wireEvent(e store.Event, red *redactor) api.Event {
	ev := api.Event{ID: e.ID, Time: e.Time, Kind: e.Kind, App: e.App, Env: e.Env, Revision: e.Revision, Message: red.String(e.Message)}
	if len(e.Data) > 0 {
		ev.Data = json.RawMessage(red.JSON(e.Data))
	}
	return ev
}

// readBody decodes the JSON body of an operation into v, strictly: the
// body is checked against v's schema in the served OpenAPI document first,
// so that an unknown field, a value of the wrong type or a missing required
// field is a 400 that names the field, and the document is what the server
// enforces. An empty body is {}. It answers the error itself and returns
// false when the body does not do.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is over %d bytes", tooBig.Limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	}
	c, err := api.LoadContract()
	if err == nil {
		err = c.CheckBody(v, b)
	}
	if err == nil {
		// The schema said yes; the decoder is strict too, for what a
		// schema cannot say (an integer too large for its Go type).
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			err = &api.BodyError{Field: te.Field, Message: fmt.Sprintf("field %q must be %s, not the %s given", te.Field, te.Type, te.Value)}
		}
	}
	var be *api.BodyError
	switch {
	case errors.As(err, &be):
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: be.Message, Details: map[string]string{"field": be.Field}}})
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_request", "the body must be JSON: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, api.Error{Error: api.ErrorBody{Code: kind, Message: msg}})
}

// cut keeps the first limit items of a list read with limit+1, and says
// whether there were more. A store that gives no more than limit (at its
// maximum) may have more: the page says so, and the next may be empty.
func cut[T any](items []T, limit int) ([]T, bool) {
	if len(items) > limit {
		return items[:limit], true
	}
	return items, len(items) == limit && limit == store.MaxLimit
}
