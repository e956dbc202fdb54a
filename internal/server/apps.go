package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) {
	user := callerOf(r).User
	me := api.Me{User: user, Teams: []api.Membership{}}
	if repo := s.repoInForce(); repo != nil {
		for _, t := range repo.Teams.Teams {
			for _, m := range t.Members {
				if m.User == user {
					me.Teams = append(me.Teams, api.Membership{Team: t.Name, Role: string(m.Role)})
					me.Email = cmp.Or(me.Email, m.Email)
				}
			}
		}
		me.Admin = repo.Admin(user)
	}
	s.reply(w, r, me)
}

func (s *Server) getPlatform(w http.ResponseWriter, r *http.Request) {
	repo := s.repoInForce()
	if repo == nil {
		writeError(w, http.StatusConflict, "refused", "no valid revision of the platform repository yet")
		return
	}
	p := api.Platform{Name: repo.Platform.Metadata.Name, Description: repo.Platform.Metadata.Description, Revision: s.inForceSHA(),
		Environments: s.wireEnvironments(repo), Zones: []api.Zone{}, Teams: []api.Team{}}
	for _, z := range repo.Platform.Zones {
		p.Zones = append(p.Zones, api.Zone{Name: z.Name, Kind: string(z.Kind), Provider: z.Provider, Account: z.Account, Description: z.Description})
	}
	for _, t := range repo.Teams.Teams {
		wt := api.Team{Name: t.Name, Description: t.Description, Members: []api.Member{}, Apps: []string{}}
		for _, m := range t.Members {
			wt.Members = append(wt.Members, api.Member{User: m.User, Email: m.Email, Role: string(m.Role)})
		}
		for _, a := range repo.Apps {
			if a.Config.Owner == t.Name {
				wt.Apps = append(wt.Apps, a.Name)
			}
		}
		p.Teams = append(p.Teams, wt)
	}
	s.reply(w, r, p)
}

func (s *Server) wireEnvironments(repo *spec.Repo) []api.Environment {
	kinds := map[string]string{}
	for _, z := range repo.Platform.Zones {
		kinds[z.Name] = string(z.Kind)
	}
	out := make([]api.Environment, 0, len(repo.Platform.Environments))
	for i := range repo.Platform.Environments {
		e := &repo.Platform.Environments[i]
		we := api.Environment{Name: e.Name, Zone: e.Zone, ZoneKind: kinds[e.Zone], Runtime: string(e.Runtime.Type), Sync: string(e.Sync),
			Production: repo.Production(e.Name), Prune: e.Prune == nil || *e.Prune, SelfHeal: e.SelfHeal == nil || *e.SelfHeal}
		for _, role := range repo.DeployRoles(e.Name) {
			we.DeployRoles = append(we.DeployRoles, string(role))
		}
		if p := e.Promotion; p != nil {
			we.Promotion = &api.Promotion{From: p.From, Approvals: p.Approvals}
			for _, win := range p.Windows {
				we.Promotion.Windows = append(we.Promotion.Windows, win.String())
			}
			if p.Soak > 0 {
				we.Promotion.Soak = p.Soak.String()
			}
		}
		we.Frozen = s.promo.Frozen(repo, e)
		out = append(out, we)
	}
	return out
}

// matrix is what a page of cells is computed from, read once per request.
type matrix struct {
	repo    *spec.Repo
	user    string
	units   map[plan.Key]reconcile.UnitStatus
	blocked map[plan.Key]BlockedUnit
	envs    []spec.Environment
	// proxyPort is where the local runtime's apps are reached.
	proxyPort string
	// authors caches the author of each revision a cell asks for: most
	// cells of a page share a few revisions, each a git read.
	authors map[string]string
}

// author is AuthorOf, once per revision and page.
func (m *matrix) author(s *Server, sha string) string {
	a, ok := m.authors[sha]
	if !ok {
		a = s.promo.AuthorOf(m.repo, sha)
		m.authors[sha] = a
	}
	return a
}

func (s *Server) matrixFor(user string) (*matrix, error) {
	repo := s.repoInForce()
	if repo == nil {
		return nil, fmt.Errorf("%w: no valid revision of the platform repository yet", promotion.ErrRefused)
	}
	m := &matrix{repo: repo, user: user, units: map[plan.Key]reconcile.UnitStatus{}, blocked: map[plan.Key]BlockedUnit{}, envs: repo.Platform.Environments, authors: map[string]string{}}
	if _, port, err := net.SplitHostPort(s.ProxyAddr()); err == nil {
		m.proxyPort = port
	}
	for _, u := range s.appStatus() {
		m.units[plan.Key{App: u.App, Env: u.Env}] = u
	}
	for _, b := range s.pipeline.State().Blocked {
		m.blocked[plan.Key{App: b.App, Env: b.Env}] = wireBlocked(b)
	}
	return m, nil
}

// row returns an app's cells in promotion order.
func (s *Server) row(r *http.Request, m *matrix, a *spec.App) api.App {
	row := api.App{Name: a.Name, Owner: a.Config.Owner, Description: a.Config.Description, Envs: make([]api.AppEnv, 0, len(m.envs))}
	if a.Config.Rollout != nil {
		row.Strategy = string(a.Config.Rollout.Strategy)
	}
	for i := range m.envs {
		row.Envs = append(row.Envs, s.cell(r, m, a, &m.envs[i]))
	}
	return row
}

// cell is one app in one environment, in words.
func (s *Server) cell(r *http.Request, m *matrix, a *spec.App, e *spec.Environment) api.AppEnv {
	k := plan.Key{App: a.Name, Env: e.Name}
	c := api.AppEnv{Env: e.Name, Actions: actions(m.repo, m.user, a.Name, e.Name)}
	if u, ok := m.units[k]; ok {
		c.Phase, c.Reason, c.ReasonCode = api.Phase(u.Phase), u.Message, api.ReasonCode(u.Reason)
		c.Since, c.LogTail, c.RetryAt = u.Since, u.LogTail, u.RetryAt
		c.Revision, c.Artifact, c.Release = u.Revision, u.Artifact, u.Release
		c.Ready, c.Desired, c.URL, c.Updated = u.Ready, u.Desired, u.URL, u.UpdatedAt
		if strings.HasPrefix(c.URL, "http://") && strings.HasSuffix(c.URL, ".localhost") && m.proxyPort != "" {
			c.URL += ":" + m.proxyPort // the proxy serves <app>.<env>.localhost on its own port
		}
	} else {
		c.Phase = "Absent"
		switch {
		case a.Config.Environments[e.Name].Disabled:
			c.Reason = "disabled here in socle.yaml"
		case e.Sync == spec.SyncManual && e.Promotion != nil && e.Promotion.From != "":
			c.Reason = "not promoted here yet: promote from " + e.Promotion.From
		case e.Sync == spec.SyncManual:
			c.Reason = "nothing pinned in releases/" + e.Name + ".yaml yet"
		default:
			c.Reason = "not deployed yet"
		}
	}
	if b, ok := m.blocked[k]; ok {
		c.Phase, c.Reason, c.ReasonCode = api.PhaseBlocked, b.Reason, b.ReasonCode
		c.LogTail, c.RetryAt = "", time.Time{}
	}
	if c.Phase == "Absent" { // nothing runs: nothing to roll back, no logs
		c.Actions = slices.DeleteFunc(c.Actions, func(a string) bool { return a == "rollback" || a == "logs" })
	}
	if e.Promotion != nil {
		var from *reconcile.UnitStatus
		if u, ok := m.units[plan.Key{App: a.Name, Env: e.Promotion.From}]; ok {
			from = &u
		}
		if in := s.promo.Incoming(r.Context(), m.repo, e, a.Name, from, c.Artifact, func(sha string) string { return m.author(s, sha) }); in != nil {
			c.Incoming = &api.Incoming{From: in.From, Revision: in.Revision, Artifact: in.Artifact, Needed: in.Needed, Approvals: in.Approvals,
				Blocked: in.Blocked, Reason: in.Reason, Blocks: wireBlocks(in.Blocks)}
		}
	}
	return c
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := pageOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m, err := s.matrixFor(callerOf(r).User)
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	q := r.URL.Query()
	team, zone := q.Get("team"), q.Get("zone")
	if team != "" && m.repo.Team(team) == nil {
		writeError(w, http.StatusNotFound, "not_found", "no team "+team)
		return
	}
	if zone != "" {
		m.envs = slices.DeleteFunc(slices.Clone(m.envs), func(e spec.Environment) bool { return e.Zone != zone })
	}
	page := api.Page[api.App]{Items: []api.App{}}
	start, _ := slices.BinarySearchFunc(m.repo.Apps, cursor, func(a *spec.App, c string) int { return strings.Compare(a.Name, c) })
	for _, a := range m.repo.Apps[start:] {
		if a.Name == cursor || (team != "" && a.Config.Owner != team) {
			continue
		}
		if len(page.Items) == limit {
			page.Next = page.Items[len(page.Items)-1].Name
			break
		}
		page.Items = append(page.Items, s.row(r, m, a))
	}
	s.reply(w, r, page)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	m, err := s.matrixFor(callerOf(r).User)
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	a := m.repo.App(r.PathValue("app"))
	if a == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no app %q", r.PathValue("app")))
		return
	}
	d := api.AppDetail{App: s.row(r, m, a), Repository: s.cfg.Repo, Config: map[string]api.Unit{}}
	secret := map[string]bool{}
	for _, e := range m.envs {
		row, err := s.store.DesiredUnit(r.Context(), store.Unit{App: a.Name, Env: e.Name})
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		var u plan.Unit
		if err := json.Unmarshal(row.Spec, &u); err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		for _, n := range u.SecretVariables() {
			secret[n] = true
		}
		d.Config[e.Name] = wireUnit(u.Redact())
	}
	for n := range secret {
		d.Secrets = append(d.Secrets, n)
	}
	slices.Sort(d.Secrets)
	if d.Pauses, err = s.pausesOf(r.Context(), a.Name); err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	s.reply(w, r, d)
}

func (s *Server) getPreview(w http.ResponseWriter, r *http.Request) {
	app, env, user := r.PathValue("app"), r.PathValue("env"), callerOf(r).User
	action := cmp.Or(r.URL.Query().Get("action"), "deploy")
	release, err := intParam(r, "release")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	p, err := s.promo.Preview(r.Context(), action, app, env, r.URL.Query().Get("revision"), release, user)
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	s.reply(w, r, wirePreview(p))
}

func (s *Server) postDeploy(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	res, err := s.promo.Deploy(r.Context(), r.PathValue("app"), r.PathValue("env"), req.Revision, callerOf(r).User, req.Message, emergencyReason(req))
	if err != nil {
		writeResult(w, nil, err)
		return
	}
	writeResult(w, wireResult(res), nil)
}

func (s *Server) postArtifact(w http.ResponseWriter, r *http.Request) {
	var req api.ArtifactRequest
	if !readBody(w, r, &req) {
		return
	}
	app := r.PathValue("app")
	if req.Revision == "" { // the schema requires it; "" is no revision either
		writeError(w, http.StatusBadRequest, "bad_request", "revision (the commit the image was built from) is required")
		return
	}
	rev, err := s.repo.Revision(req.Revision)
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no revision %s of the platform repository", req.Revision))
		return
	}
	a := s.pipeline.AppAt(app, rev.SHA)
	if a == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s does not exist at %s", app, promotion.Short(rev.SHA)))
		return
	}
	user := callerOf(r).User
	out := api.Artifact{App: app, Revision: rev.SHA}
	if req.Digest != "" {
		art, err := s.images.builder.Register(a, rev, req.Digest)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		out.Digest, out.Image = art.Digest, art.Ref
	} else {
		digest, err := s.images.Build(r.Context(), plan.Unit{App: app, Revision: rev.SHA}, nil)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "build_failed", err.Error())
			return
		}
		out.Digest, out.Built = digest, true
		out.Image = s.Addr() + "/apps/" + app + "@" + digest
	}
	detail, _ := json.Marshal(map[string]any{"digest": out.Digest, "built": out.Built})
	if _, err := s.store.AppendAudit(r.Context(), store.AuditRecord{Actor: user, Action: "artifact.registered", App: app, Revision: rev.SHA, Detail: detail}); err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, out)
}
