package web

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/socle-dev/socle/internal/api"
)

// appView is an app's page: one section per environment.
type appView struct {
	App    api.AppDetail
	Envs   []appEnvView
	Notice string
	// Signals are the app's golden signals by environment; SignalsError
	// says why there are none.
	Signals      map[string]*signalsView
	SignalsError string
}

// appEnvView is the app in one environment.
type appEnvView struct {
	Env      api.Environment
	Cell     api.AppEnv
	Releases []releaseView
	// ReleasesError says why the history could not be read.
	ReleasesError string
	Config        *api.Unit
	// Promotion is the preview of promoting the incoming release here:
	// whether the gates let it in now, and if not, why.
	Promotion *api.Preview
	// Resources are what socle provisions for the app here (its
	// databases), with the engine's status of each.
	Resources []resourceItem
	// ResourcesError says why they could not be read.
	ResourcesError string
	// Pause holds the app in maintenance mode here: its own, or its
	// environment's; nil when it serves.
	Pause *api.Pause
}

// pauseOf returns the pause that holds app in env: its own before its
// environment's.
func pauseOf(ps []api.Pause, app, env string) *api.Pause {
	var out *api.Pause
	for i, p := range ps {
		switch {
		case p.Env != env:
		case p.App == app:
			return &ps[i]
		case p.App == "":
			out = &ps[i]
		}
	}
	return out
}

// resourceItem is a resource as the app page shows it.
type resourceItem struct {
	api.Resource
}

// Phase is the engine's phase of the resource; Unknown before the engine
// reports one.
func (r resourceItem) Phase() string { return unitPhase(r.Unit) }

// Message is the engine's words on the resource, when it is not Synced:
// a Synced resource's message only repeats the row.
func (r resourceItem) Message() string {
	if r.Unit == nil || r.Unit.Phase == "Synced" {
		return ""
	}
	return r.Unit.Message
}

// Removed says the resource is no longer in Git: no app uses it, and
// it is kept (retained) or deprovisioned.
func (r resourceItem) Removed() bool { return len(r.Apps) == 0 && len(r.FormerApps) > 0 }

// appResources groups by environment the resources that app uses, or
// used before they were removed from Git (a database retained in
// production holds the app's data still).
func appResources(l api.ResourceList, app string) map[string][]resourceItem {
	out := map[string][]resourceItem{}
	for _, r := range l.Items {
		if slices.Contains(r.Apps, app) || slices.Contains(r.FormerApps, app) {
			out[r.Env] = append(out[r.Env], resourceItem{r})
		}
	}
	return out
}

// Buttons are the cell's actions that open a confirmation; logs has a
// panel of its own.
func (e appEnvView) Buttons() []string {
	return slices.DeleteFunc(slices.Clone(e.Cell.Actions), func(a string) bool { return a == "logs" })
}

// Next is the button that takes the incoming release its next step, the
// one drawn as primary: approve while the approvals gate holds it (and
// the user may approve), promote once nothing holds it. With nothing
// waiting there is no next step, and no button stands out.
func (e appEnvView) Next() string {
	if e.Cell.Incoming == nil {
		return ""
	}
	needsApproval := e.Cell.Incoming.Needed > len(e.Cell.Incoming.Approvals)
	if e.Promotion != nil {
		needsApproval = slices.ContainsFunc(e.Promotion.Gates.Blocks, func(b api.GateBlock) bool { return b.Gate == api.GateApprovals })
	}
	switch {
	case needsApproval && slices.Contains(e.Cell.Actions, "approve"):
		return "approve"
	case e.Promotion != nil && !e.Promotion.Blocked && slices.Contains(e.Cell.Actions, "promote"):
		return "promote"
	}
	return ""
}

// Logs reports whether there are logs to read here and the user may.
func (e appEnvView) Logs() bool {
	return e.Cell.Phase != "Absent" && slices.Contains(e.Cell.Actions, "logs")
}

// releaseView is a release with its notes read.
type releaseView struct {
	api.Release
	Commits []noteCommit
}

// noteCommit is one commit of a release's notes: what changed in the app
// since the release before.
type noteCommit struct {
	SHA     string `json:"sha"`
	Author  string `json:"author"`
	Subject string `json:"subject"`
}

func (p *portal) appPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	name := r.PathValue("app")
	d, err := s.api.App(ctx, name)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	plat, err := s.api.Platform(ctx)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	envs := map[string]api.Environment{}
	for _, e := range plat.Environments {
		envs[e.Name] = e
	}
	v := appView{App: d}
	if env := r.URL.Query().Get("env"); slices.ContainsFunc(d.Envs, func(c api.AppEnv) bool { return c.Env == env }) {
		v.Notice = notice(r.URL.Query().Get("done"), env)
	}
	// Members may list resources; a user who may not, or a socle that
	// provisions none, sees no resource section rather than an error.
	var resources map[string][]resourceItem
	resErr := ""
	if l, err := s.api.Resources(ctx, "", name); err == nil {
		resources = appResources(l, name)
	} else if !isStatus(err, http.StatusForbidden) {
		resErr = err.Error()
	}
	for _, c := range d.Envs {
		ev := appEnvView{Env: envs[c.Env], Cell: c, Resources: resources[c.Env], ResourcesError: resErr, Pause: pauseOf(d.Pauses, name, c.Env)}
		if ev.Env.Name == "" {
			ev.Env.Name = c.Env
		}
		if u, ok := d.Config[c.Env]; ok {
			ev.Config = &u
		}
		if c.Incoming != nil {
			if pv, err := s.api.Preview(ctx, "promote", name, c.Env); err == nil {
				ev.Promotion = &pv
			}
		}
		rels, err := s.api.Releases(ctx, name, c.Env, 10)
		if err != nil {
			ev.ReleasesError = err.Error()
		}
		for _, rel := range rels {
			rv := releaseView{Release: rel}
			var notes struct{ Commits []noteCommit }
			if json.Unmarshal(rel.Notes, &notes) == nil {
				rv.Commits = notes.Commits
			}
			ev.Releases = append(ev.Releases, rv)
		}
		v.Envs = append(v.Envs, ev)
	}
	v.Signals, v.SignalsError = appSignals(ctx, s, name)
	p.render(w, r, http.StatusOK, "app", s, name, v)
}

// notice words what an action just did, after the redirect that follows
// it. Only known actions and environments are worded: a crafted link
// cannot put text of its own on the page.
func notice(done, env string) string {
	switch done {
	case "deploy":
		return "Deploy to " + env + " started."
	case "promote":
		return "Promotion to " + env + " committed; the rollout follows."
	case "approve":
		return "Approval for " + env + " recorded."
	case "rollback":
		return "Rollback in " + env + " committed; the rollout follows."
	}
	return ""
}
