package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// actions are what a cell can offer, in the words of the API's routes.
var actions = []string{"deploy", "promote", "approve", "rollback"}

// confirmView is the confirmation of an action: what it would do, the
// gates and policies that judge it, and the form that does it.
type confirmView struct {
	App, Env, Action string
	Cell             api.AppEnv
	Preview          *api.Preview
	PreviewError     string
	Approvals        []api.Approval
	Releases         []api.Release
	// Error is the API's answer to the action just tried, with the gates
	// and verdicts that blocked it.
	Error    string
	Blocked  *blockedDetails
	Message  string
	Revision string
	// Manual is true when the environment runs what is pinned rather than
	// following Git: only there can a deploy name a revision.
	Manual bool
}

// blockedDetails are the details of a 409 blocked answer.
type blockedDetails struct {
	Gates    api.GateResult     `json:"gates"`
	Verdicts api.PolicyVerdicts `json:"verdicts"`
}

// CanSubmit reports whether to offer the button: the API lists the action
// for this user here and, except for an approval (which is how a closed
// approvals gate opens), the preview says nothing stops it now. The API
// decides again when the form is sent.
func (v confirmView) CanSubmit() bool {
	if !slices.Contains(v.Cell.Actions, v.Action) {
		return false
	}
	if v.Action == "approve" || v.Preview == nil {
		return true
	}
	return v.Preview.Allowed && !v.Preview.Blocked
}

// Verb is the button's words: "Deploy web to dev".
func (v confirmView) Verb() string {
	switch v.Action {
	case "deploy":
		return "Deploy " + v.App + " to " + v.Env
	case "promote":
		return "Promote " + v.App + " to " + v.Env
	case "approve":
		return "Approve " + v.App + " for " + v.Env
	case "rollback":
		return "Roll back " + v.App + " in " + v.Env
	}
	return v.Action
}

// blockers names what blocks an action, for a sentence whose details
// follow: "the approvals gate", "the soak and window gates and the policy
// no-debug-in-prod". It is empty when nothing is named.
func blockers(g api.GateResult, vs api.PolicyVerdicts) string {
	var gates, parts []string
	for _, b := range g.Blocks {
		gates = append(gates, string(b.Gate))
	}
	switch len(gates) {
	case 0:
	case 1:
		parts = append(parts, "the "+gates[0]+" gate")
	default:
		parts = append(parts, "the "+andList(gates)+" gates")
	}
	var policies []string
	for _, v := range vs.Denials() {
		policies = append(policies, v.Policy)
	}
	switch len(policies) {
	case 0:
	case 1:
		parts = append(parts, "the policy "+policies[0])
	default:
		parts = append(parts, "the policies "+andList(policies))
	}
	return andList(parts)
}

// andList joins words as a sentence does: "a", "a and b", "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func (p *portal) confirmPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := p.confirmation(r, s, r.URL.Query().Get("action"))
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	p.render(w, r, http.StatusOK, "confirm", s, v.Verb(), v)
}

// confirmation gathers what the confirmation page shows. An approval
// previews the promotion it lets through.
func (p *portal) confirmation(r *http.Request, s *session, action string) (confirmView, error) {
	ctx := r.Context()
	v := confirmView{App: r.PathValue("app"), Env: r.PathValue("env"), Action: action}
	if !slices.Contains(actions, action) {
		return v, pageError(http.StatusNotFound, "There is no action "+strconv.Quote(action)+".")
	}
	d, err := s.api.App(ctx, v.App)
	if err != nil {
		return v, err
	}
	i := slices.IndexFunc(d.Envs, func(c api.AppEnv) bool { return c.Env == v.Env })
	if i < 0 {
		return v, pageError(http.StatusNotFound, v.App+" has no environment "+v.Env+".")
	}
	v.Cell = d.Envs[i]
	if plat, err := s.api.Platform(ctx); err == nil {
		for _, e := range plat.Environments {
			v.Manual = v.Manual || (e.Name == v.Env && e.Sync == "manual")
		}
	}
	previewed := action
	if action == "approve" {
		previewed = "promote"
	}
	if pv, err := s.api.Preview(ctx, previewed, v.App, v.Env); err != nil {
		v.PreviewError = err.Error()
	} else {
		v.Preview = &pv
	}
	if action == "approve" || action == "promote" {
		var as struct{ Items []api.Approval }
		if s.api.Get(ctx, "/api/v1/apps/"+pathEscape(v.App)+"/envs/"+pathEscape(v.Env)+"/approvals", &as) == nil {
			v.Approvals = as.Items
		}
	}
	if action == "rollback" {
		if rels, err := s.api.Releases(ctx, v.App, v.Env, 20); err == nil {
			v.Releases = slices.DeleteFunc(rels, func(rel api.Release) bool { return rel.Status != "Succeeded" || rel.ID == v.Cell.Release })
		}
	}
	return v, nil
}

// actionPost does an action through the API and goes back to the app's
// page; a refusal shows the confirmation again with the API's reason.
func (p *portal) actionPost(w http.ResponseWriter, r *http.Request, s *session) {
	app, env, action := r.PathValue("app"), r.PathValue("env"), r.PathValue("action")
	if !slices.Contains(actions, action) {
		p.fail(w, r, s, pageError(http.StatusNotFound, "There is no action "+strconv.Quote(action)+"."))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ctx := r.Context()
	msg, revision := strings.TrimSpace(r.PostFormValue("message")), strings.TrimSpace(r.PostFormValue("revision"))
	release, _ := strconv.ParseInt(r.PostFormValue("release"), 10, 64)
	var err error
	switch action {
	case "deploy":
		_, err = s.api.Deploy(ctx, app, env, revision, msg)
	case "promote":
		_, err = s.api.Promote(ctx, app, env, msg)
	case "approve":
		_, err = s.api.Approve(ctx, app, env, msg)
	case "rollback":
		_, err = s.api.Rollback(ctx, app, env, release, msg)
	}
	if p.acted(w, r, s, err, "/apps/"+pathEscape(app)+"?"+url.Values{"done": {action}, "env": {env}}.Encode()+"#env-"+pathEscape(env), "action", action, "app", app, "env", env) {
		return
	}
	v, verr := p.confirmation(r, s, action)
	if verr != nil {
		p.fail(w, r, s, err)
		return
	}
	v.Error, v.Message, v.Revision = err.Error(), msg, revision
	var ae *client.Error
	if errors.As(err, &ae) && ae.Code == "blocked" && ae.Details != nil {
		// Details came back as generic JSON: read it again as what it is.
		var b blockedDetails
		if raw, jerr := json.Marshal(ae.Details); jerr == nil && json.Unmarshal(raw, &b) == nil {
			v.Blocked = &b
		}
	}
	p.render(w, r, statusOf(err), "confirm", s, v.Verb(), v)
}

// acted ends the post of an action the API was asked to do, whatever the
// action: done, it logs it (attrs say what it was) and sends the browser
// to next; refused for the token, it asks to sign in again. It reports
// whether it answered: if not, the caller shows the API's refusal on the
// page the form came from.
func (p *portal) acted(w http.ResponseWriter, r *http.Request, s *session, err error, next string, attrs ...any) bool {
	switch {
	case err == nil:
		p.log.Info("portal action", append([]any{"user", s.me.User}, attrs...)...)
		http.Redirect(w, r, next, http.StatusSeeOther)
	case isStatus(err, http.StatusUnauthorized):
		p.unauthorized(w, r, "")
	default:
		return false
	}
	return true
}
