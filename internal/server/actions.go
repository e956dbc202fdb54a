package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/stack"

	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/store"
)

// readAction decodes the body of an action. The user is the caller's: a
// body's "user" field, which older clients send, is ignored. An emergency
// needs a reason: an empty one is refused here, before anything is judged.
func readAction(w http.ResponseWriter, r *http.Request) (api.ActionRequest, bool) {
	var req api.ActionRequest
	if !readBody(w, r, &req) {
		return req, false
	}
	if req.Emergency != nil && strings.TrimSpace(req.Emergency.Reason) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "emergency.reason is required: say why, such as an incident number")
		return req, false
	}
	return req, true
}

// emergencyReason is the reason of the emergency change req declares, ""
// for none.
func emergencyReason(req api.ActionRequest) string {
	if req.Emergency == nil {
		return ""
	}
	return req.Emergency.Reason
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
	user, app := callerOf(r).User, r.PathValue("app")
	if repo := s.repoInForce(); repo != nil && !s.mayDeploy(w, repo, user, app, req.To) {
		return
	}
	res, err := s.promo.Promote(r.Context(), app, req.To, user, req.Message, emergencyReason(req))
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	writeResult(w, wireResult(res), nil)
}

func (s *Server) postRollback(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	res, err := s.promo.Rollback(r.Context(), r.PathValue("app"), r.PathValue("env"), req.Release, callerOf(r).User, req.Message, emergencyReason(req))
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	writeResult(w, wireResult(res), nil)
}

func (s *Server) postApproval(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	a, err := s.promo.Approve(r.Context(), r.PathValue("app"), r.PathValue("env"), callerOf(r).User, req.Message)
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	writeResult(w, wireApproval(a), nil)
}

func (s *Server) getApprovals(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	artifact, as, err := s.promo.Approvals(r.Context(), app, env, r.URL.Query().Get("artifact"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	out := api.ApprovalList{Artifact: artifact, Items: make([]api.Approval, len(as))}
	for i, a := range as {
		out.Items[i] = wireApproval(a)
	}
	s.reply(w, r, out)
}

// writeResult answers an action: 201 with the result, or the error's code.
func writeResult(w http.ResponseWriter, v any, err error) {
	var blocked *promotion.BlockedError
	switch {
	case err == nil:
		writeJSON(w, http.StatusCreated, v)
	case errors.As(err, &blocked):
		writeJSON(w, http.StatusConflict, api.Error{Error: api.ErrorBody{Code: "blocked", Message: err.Error(), Details: blocked}})
	case errors.Is(err, promotion.ErrUnknown):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, promotion.ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, promotion.ErrInvalid):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, promotion.ErrRefused):
		writeError(w, http.StatusConflict, "refused", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// getAudit lists the audit trail, filtered: a filtered page reads on
// through the trail until it has limit records or the trail ends.
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit, err := afterCursor(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	keep := func(rec store.AuditRecord) bool {
		return (q.Get("actor") == "" || rec.Actor == q.Get("actor")) && (q.Get("action") == "" || rec.Action == q.Get("action")) &&
			(q.Get("app") == "" || rec.App == q.Get("app")) && (q.Get("env") == "" || rec.Env == q.Get("env"))
	}
	page := api.Page[api.AuditRecord]{Items: []api.AuditRecord{}}
	for rec, err := range store.AuditTrail(r.Context(), s.store, after) {
		if err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		if !keep(rec) {
			continue
		}
		if len(page.Items) == limit { // one more matches: there is a next page
			page.Next = strconv.FormatInt(page.Items[limit-1].Seq, 10)
			break
		}
		// The detail is redacted with the whole answer, by reply.
		page.Items = append(page.Items, api.AuditRecord{Seq: rec.Seq, At: rec.At, Actor: rec.Actor, Action: rec.Action, App: rec.App, Env: rec.Env,
			Revision: rec.Revision, Detail: rec.Detail, PrevHash: rec.PrevHash, Hash: rec.Hash})
	}
	s.reply(w, r, page)
}

func (s *Server) getAuditVerify(w http.ResponseWriter, r *http.Request) {
	res, err := audit.Verify(store.AuditTrail(r.Context(), s.store, 0))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, wireAuditVerify(res))
}

// doraFilter reads the apps, team, environment and period of a DORA query.
func (s *Server) doraFilter(r *http.Request) (store.DORAFilter, error) {
	q := r.URL.Query()
	f := store.DORAFilter{Env: q.Get("env")}
	if a := q.Get("app"); a != "" {
		f.Apps = []string{a}
	}
	if team := q.Get("team"); team != "" {
		repo := s.repoInForce()
		if repo == nil || repo.Team(team) == nil {
			return f, fmt.Errorf("%w: no team %s", promotion.ErrUnknown, team)
		}
		for _, a := range repo.Apps {
			if a.Config.Owner == team {
				f.Apps = append(f.Apps, a.Name)
			}
		}
		// The applies of the stacks the team owns are its deployments too.
		for _, st := range repo.Stacks {
			if st.Config.Owner == team {
				f.Apps = append(f.Apps, stack.StoreApp(st.Name))
			}
		}
		if len(f.Apps) == 0 {
			f.Apps = []string{"\x00none"} // a team without apps nor stacks deployed nothing
		}
	}
	if p := q.Get("period"); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil || d <= 0 {
			return f, fmt.Errorf("%w: period %q is not a duration such as 720h", promotion.ErrInvalid, p)
		}
		f.Until = s.clock.Now()
		f.Since = f.Until.Add(-d)
	}
	return f, nil
}

func (s *Server) getDORA(w http.ResponseWriter, r *http.Request) {
	f, err := s.doraFilter(r)
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	figs, err := s.store.DORA(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	s.reply(w, r, wireDORA(figs))
}

// getDORASeries computes the DORA figures per week (or day) over the
// period, 12 weeks by default, for the portal's charts.
func (s *Server) getDORASeries(w http.ResponseWriter, r *http.Request) {
	f, err := s.doraFilter(r)
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	bucket, step := "week", 7*24*time.Hour
	switch r.URL.Query().Get("bucket") {
	case "", "week":
	case "day":
		bucket, step = "day", 24*time.Hour
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "bucket must be week or day")
		return
	}
	if f.Since.IsZero() {
		f.Until = s.clock.Now()
		f.Since = f.Until.Add(-12 * 7 * 24 * time.Hour)
	}
	if f.Until.Sub(f.Since)/step > 366 {
		writeError(w, http.StatusBadRequest, "bad_request", "at most 366 buckets: shorten the period or use weeks")
		return
	}
	start := f.Since.UTC().Truncate(24 * time.Hour)
	if bucket == "week" { // weeks start on Monday
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7))
	}
	out := api.DORASeries{Bucket: bucket, Points: []api.DORAPoint{}}
	for t := start; t.Before(f.Until); t = t.Add(step) {
		g := f
		g.Since, g.Until = t, t.Add(step)
		figs, err := s.store.DORA(r.Context(), g)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		out.Points = append(out.Points, api.DORAPoint{Start: t, DORAFigureSet: figureSet(figs)})
	}
	total, err := s.store.DORA(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	out.Total = figureSet(total)
	s.reply(w, r, out)
}
