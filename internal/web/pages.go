package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/socle-dev/socle/internal/api"
)

// logLines is how many recent lines the logs page keeps.
const logLines = 500

type logsView struct {
	App, Env string
	Lines    []string
	Cut      bool
}

// logsPage shows the recent lines of a unit's logs, for readers without
// JavaScript; the app page follows them live.
func (p *portal) logsPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := logsView{App: r.PathValue("app"), Env: r.PathValue("env")}
	resp, err := s.api.Request(r.Context(), http.MethodGet, "/api/v1/apps/"+pathEscape(v.App)+"/envs/"+pathEscape(v.Env)+"/logs", nil, nil)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	v.Lines = sseData(resp.Header.Get("Content-Type"), body)
	if len(v.Lines) > logLines {
		v.Lines, v.Cut = v.Lines[len(v.Lines)-logLines:], true
	}
	p.render(w, r, http.StatusOK, "logs", s, v.App+" logs in "+v.Env, v)
}

type revisionsView struct {
	Items []api.Revision
	Next  string
}

func (p *portal) revisionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{"limit": {"50"}, "cursor": {r.URL.Query().Get("cursor")}}
	var page api.Page[api.Revision]
	if err := s.api.Get(r.Context(), "/api/v1/revisions?"+nonEmpty(q).Encode(), &page); err != nil {
		p.fail(w, r, s, err)
		return
	}
	v := revisionsView{Items: page.Items}
	if page.Next != "" {
		v.Next = "/revisions?cursor=" + url.QueryEscape(page.Next)
	}
	p.render(w, r, http.StatusOK, "revisions", s, "Revisions", v)
}

type revisionView struct {
	Revision api.RevisionDetail
	Problems []api.Problem
	Plans    []planView
}

// planView is one recorded plan, its changes grouped by environment in
// promotion order.
type planView struct {
	Ref   api.PlanRef
	Error string
	Envs  []envChanges
}

type envChanges struct {
	Env     string
	Changes []changeView
	// Unchanged counts the units the plan leaves as they are.
	Unchanged int
}

// changeView is one change with what judged it.
type changeView struct {
	api.PlanChange
	Verdicts api.PolicyVerdicts
	// Gate says which closed gate holds the change, if one does.
	Gate string
}

// Held reports whether the change waits: a gate or a denying policy.
func (c changeView) Held() bool { return c.Gate != "" || c.Verdicts.Blocked() }

// Objections are the verdicts that deny or warn: what a reviewer reads
// first; the policies that allow the change are listed apart.
func (c changeView) Objections() api.PolicyVerdicts {
	return slices.DeleteFunc(slices.Clone(c.Verdicts), func(v api.PolicyVerdict) bool { return v.Allowed })
}

func (p *portal) revisionPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	var v revisionView
	if err := s.api.Get(ctx, "/api/v1/revisions/"+pathEscape(r.PathValue("sha")), &v.Revision); err != nil {
		p.fail(w, r, s, err)
		return
	}
	if len(v.Revision.Problems) > 0 {
		json.Unmarshal(v.Revision.Problems, &v.Problems)
	}
	plat, _ := s.api.Platform(ctx) // only for the order of environments
	order := map[string]int{}
	for i, e := range plat.Environments {
		order[e.Name] = i
	}
	for _, ref := range v.Revision.Plans {
		pv := planView{Ref: ref}
		var body api.PlanBody
		if err := s.api.Get(ctx, "/api/v1/plans/"+strconv.FormatInt(ref.ID, 10), &body); err != nil {
			pv.Error = err.Error()
		} else {
			pv.Envs = groupChanges(body, order)
		}
		v.Plans = append(v.Plans, pv)
	}
	p.render(w, r, http.StatusOK, "revision", s, "Revision "+shortSHA(v.Revision.SHA), v)
}

// groupChanges groups a plan's changes by environment, in promotion
// order, each with its policy verdicts and the gate that holds it.
func groupChanges(b api.PlanBody, order map[string]int) []envChanges {
	verdicts := map[[2]string]api.PolicyVerdicts{}
	for _, d := range b.Decisions {
		k := [2]string{d.App, d.Env}
		verdicts[k] = append(verdicts[k], d.Verdicts...)
	}
	var out []envChanges
	at := map[string]int{}
	for _, c := range b.Changes {
		i, ok := at[c.Env]
		if !ok {
			i = len(out)
			at[c.Env] = i
			out = append(out, envChanges{Env: c.Env})
		}
		if c.Action == "no-op" {
			out[i].Unchanged++
			continue
		}
		out[i].Changes = append(out[i].Changes, changeView{PlanChange: c, Verdicts: verdicts[[2]string{c.App, c.Env}], Gate: b.Gates[c.App+"@"+c.Env]})
	}
	slices.SortStableFunc(out, func(a, b envChanges) int {
		oa, ok := order[a.Env]
		if !ok {
			oa = len(order)
		}
		ob, ok := order[b.Env]
		if !ok {
			ob = len(order)
		}
		return oa - ob
	})
	return out
}

type activityView struct {
	Items                   []api.AuditRecord
	Actor, Action, App, Env string
	Next, NextText          string
	Verify                  *api.AuditVerifyResult
	VerifyError             string
}

// activityPage is how many audit records a page of the timeline shows.
const activityPage = 100

// activityPage is the audit timeline, filtered by who, what and where.
func (p *portal) activityPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	in := r.URL.Query()
	v := activityView{Actor: in.Get("actor"), Action: in.Get("action"), App: in.Get("app"), Env: in.Get("env")}
	q := nonEmpty(url.Values{"actor": {v.Actor}, "action": {v.Action}, "app": {v.App}, "env": {v.Env}})
	next := nonEmpty(q)
	var vr api.AuditVerifyResult
	if err := s.api.Get(ctx, "/api/v1/audit/verify", &vr); err != nil {
		v.VerifyError = err.Error()
	} else {
		v.Verify = &vr
	}
	// The API lists records oldest first from ?after=. Unfiltered, the
	// page starts activityPage records before the last one and pages back
	// in time; filtered, it reads forward from the first match.
	filtered := len(q) > 0
	after, err := strconv.ParseInt(in.Get("after"), 10, 64)
	if in.Get("after") == "" || err != nil {
		after = 0
		if !filtered && v.Verify != nil {
			after = max(0, v.Verify.LastSeq-activityPage)
		}
	}
	q.Set("limit", strconv.Itoa(activityPage))
	q.Set("after", strconv.FormatInt(after, 10))
	var page api.Page[api.AuditRecord]
	if err := s.api.Get(ctx, "/api/v1/audit?"+q.Encode(), &page); err != nil {
		p.fail(w, r, s, err)
		return
	}
	v.Items = page.Items
	slices.Reverse(v.Items) // newest first
	switch {
	case filtered && page.Next != "":
		next.Set("after", page.Next)
		v.Next, v.NextText = "/activity?"+next.Encode(), "Later records →"
	case !filtered && after > 0:
		next.Set("after", strconv.FormatInt(max(0, after-activityPage), 10))
		v.Next, v.NextText = "/activity?"+next.Encode(), "Earlier records →"
	}
	p.render(w, r, http.StatusOK, "activity", s, "Activity", v)
}
