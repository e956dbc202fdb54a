package server

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/gitwrite"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/template"
)

// newAppName is what an app's name may be (its directory under apps/).
var newAppName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// creatorTeams are the teams user may create an app for: those they are
// a developer, an approver or an admin of; every team for an admin.
func creatorTeams(repo *spec.Repo, user string) []string {
	admin := repo.Admin(user)
	var out []string
	for _, t := range repo.Teams.Teams {
		for _, m := range t.Members {
			if admin || m.User == user && m.Role != spec.RoleViewer {
				out = append(out, t.Name)
				break
			}
		}
	}
	return out
}

func teamNames(repo *spec.Repo) []string {
	var out []string
	for _, t := range repo.Teams.Teams {
		out = append(out, t.Name)
	}
	return out
}

// wireTemplate describes t as its parameters and a JSON Schema of them,
// the owner picker's values being teams.
func wireTemplate(name string, t *spec.Template, teams []string) api.Template {
	out := api.Template{Name: name, Description: t.Metadata.Description, Version: t.TemplateVersion(), Parameters: []api.TemplateParameter{}, Files: slices.Sorted(maps.Keys(t.Files)), Apps: []api.TemplateApp{}}
	props := map[string]any{}
	order := []string{}
	required := []string{}
	for _, p := range t.Parameters {
		wp := api.TemplateParameter{Name: p.Name, Description: p.Description, Type: cmpOr(p.Type, "string"), Required: p.Required, Default: p.Default, Pattern: p.Pattern, Enum: template.Choices(p, teams), Source: p.Source}
		out.Parameters = append(out.Parameters, wp)
		prop := map[string]any{"type": wp.Type}
		if wp.Description != "" {
			prop["description"] = wp.Description
		}
		if wp.Default != nil {
			prop["default"] = wp.Default
		}
		if wp.Pattern != "" {
			prop["pattern"] = "^(?:" + wp.Pattern + ")$"
		}
		if p.Enum != nil || p.Source == spec.SourceTeams {
			prop["enum"] = append([]string{}, wp.Enum...)
		}
		props[p.Name] = prop
		order = append(order, p.Name)
		if p.Required {
			required = append(required, p.Name)
		}
	}
	out.Schema = map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false, "x-order": order}
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	repo := s.inForceOr(w)
	if repo == nil {
		return
	}
	teams := creatorTeams(repo, callerOf(r).User)
	out := api.TemplateList{Revision: s.inForceSHA(), Items: []api.Template{}}
	at := map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(repo.Templates)) {
		at[name] = len(out.Items)
		out.Items = append(out.Items, wireTemplate(name, repo.Templates[name], teams))
	}
	for _, a := range repo.Apps {
		if a.Template == nil {
			continue
		}
		ta := api.TemplateApp{App: a.Name, Owner: a.Config.Owner, Version: a.Template.Version}
		i, ok := at[a.Template.Template]
		if !ok {
			out.Orphans = append(out.Orphans, ta)
			continue
		}
		ta.Behind = max(0, out.Items[i].Version-ta.Version)
		out.Items[i].Apps = append(out.Items[i].Apps, ta)
	}
	s.reply(w, r, out)
}

// paramError answers a parameter missing or refused.
func paramError(w http.ResponseWriter, err error) {
	var missing *template.MissingError
	var invalid *template.InvalidError
	switch {
	case errors.As(err, &missing):
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: err.Error(), Details: map[string]string{"field": "parameters." + missing.Missing[0].Name}}})
	case errors.As(err, &invalid):
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: err.Error(), Details: map[string]string{"field": "parameters." + invalid.Parameter}}})
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// withFiles is fsys with files written (a nil content removes the file):
// a copy in memory, for loading a repository as it would be.
func withFiles(fsys fs.FS, files map[string][]byte) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || p == "." {
			return err
		}
		if _, ok := files[p]; ok {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if e.Type()&fs.ModeSymlink != 0 {
			out[p] = &fstest.MapFile{Mode: info.Mode()}
			return nil
		}
		data, err := spec.ReadFile(fsys, p)
		if err != nil {
			return nil // the loader says what is wrong with it
		}
		out[p] = &fstest.MapFile{Data: data, Mode: info.Mode()}
		return nil
	})
	for p, data := range files {
		if data != nil {
			out[p] = &fstest.MapFile{Data: data}
		}
	}
	return out, err
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	var req api.NewApp
	if !readBody(w, r, &req) {
		return
	}
	switch {
	case req.App == "":
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: "app (the new app's name) is required", Details: map[string]string{"field": "app"}}})
		return
	case !newAppName.MatchString(req.App):
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: fmt.Sprintf("app %q: lowercase letters, digits and dashes, at most 63, not starting or ending with a dash", req.App), Details: map[string]string{"field": "app"}}})
		return
	case req.Template == "":
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: "template is required", Details: map[string]string{"field": "template"}}})
		return
	}
	repo := s.inForceOr(w)
	if repo == nil {
		return
	}
	user := callerOf(r).User
	mine := creatorTeams(repo, user)
	h, err := s.secretsHead(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	head, _ := s.load(h.fsys)
	t := head.Templates[req.Template]
	if t == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no template %q in templates/ (there are: %s)", req.Template, strings.Join(slices.Sorted(maps.Keys(head.Templates)), ", ")))
		return
	}
	if head.App(req.App) != nil || repo.App(req.App) != nil {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("app %q exists already (apps/%s/)", req.App, req.App))
		return
	}
	if len(mine) == 0 {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("%s is a developer, an approver or an admin of no team: only they create apps (a viewer does not)", user))
		return
	}
	values, err := template.Resolve(req.Template, t, req.Parameters, teamNames(head))
	if err != nil {
		paramError(w, err)
		return
	}
	if team := foreignTeam(t, values, mine); team != "" {
		writeError(w, http.StatusForbidden, "forbidden", notYourTeam(user, team, mine))
		return
	}
	rendered, err := template.Render(t, req.App, values)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", err.Error())
		return
	}
	dir := path.Join(spec.AppsDir, req.App)
	files := map[string][]byte{}
	for rel, data := range rendered {
		files[path.Join(dir, rel)] = data
	}
	files[path.Join(dir, spec.AppTemplateFile)] = template.Record(req.Template, t.TemplateVersion(), h.rev.SHA, values)
	out := api.NewAppResult{App: req.App, Template: req.Template, Version: t.TemplateVersion(), Parameters: values, Files: []api.RenderedFile{}, Problems: api.Problems{}, Changes: []api.PlanChange{}, Decisions: []api.PlanDecision{}}
	paths := slices.Sorted(maps.Keys(files))
	for _, p := range paths {
		out.Files = append(out.Files, api.RenderedFile{Path: p, Content: string(files[p])})
	}
	fsys, err := withFiles(h.fsys, files)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	next, problems := s.load(fsys)
	// The owner may come from the files rather than a picker: the rule
	// is the app's owner's, whatever set it.
	if team := foreignOwner(next, req.App, mine); team != "" {
		writeError(w, http.StatusForbidden, "forbidden", notYourTeam(user, team, mine))
		return
	}
	for _, p := range problems {
		if strings.HasPrefix(p.File, dir+"/") || p.File == dir || !p.Warning {
			out.Problems = append(out.Problems, wireProblems(spec.Problems{p})...)
		}
	}
	if problems.Errors() > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, api.Error{Error: api.ErrorBody{Code: "invalid",
			Message: fmt.Sprintf("the repository with apps/%s/ does not validate (%d problems): nothing is committed", req.App, problems.Errors()), Details: out}})
		return
	}
	var units []plan.Unit
	for _, u := range plan.Desired(next, "", nil) {
		if u.App == req.App {
			units = append(units, u)
		}
	}
	p := plan.RedactPlan(plan.Diff("", units, nil), nil)
	policies, _ := policy.Compile(next, fsys)
	decisions := pipeline.Judge(r.Context(), policies, &p, nil, s.store, s.clock.Now())
	out.Changes = each(p.Changes, wireChange)
	body := wirePlanBody(pipeline.PlanBody{Decisions: decisions})
	out.Decisions = body.Decisions
	out.Denied = len(pipeline.Denied(decisions))
	if out.Denied > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, api.Error{Error: api.ErrorBody{Code: "denied",
			Message: fmt.Sprintf("a policy denies %d of the new app's changes: nothing is committed", out.Denied), Details: out}})
		return
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, out)
		return
	}
	edits := make([]gitwrite.FileEdit, 0, len(paths))
	for _, p := range paths {
		data := files[p]
		edits = append(edits, gitwrite.FileEdit{Path: p, Edit: func(old []byte) ([]byte, error) {
			if old != nil {
				return nil, fmt.Errorf("%w: %s exists at the head", source.ErrConflict, p)
			}
			return data, nil
		}})
	}
	rev, err := s.commits.Write(r.Context(), gitwrite.Change{
		Path: edits[0].Path, Edit: edits[0].Edit, Also: edits[1:],
		Author: user, Email: promotion.EmailOf(head, user),
		Message: fmt.Sprintf("new app %s from template %s v%d\n\n%s", req.App, req.Template, t.TemplateVersion(), paramLines(values)),
		Audit:   store.AuditRecord{Actor: user, Action: "app.create", App: req.App},
		Detail:  map[string]any{"template": req.Template, "version": t.TemplateVersion(), "parameters": values},
	})
	if err != nil {
		secretFileError(w, err)
		return
	}
	s.announce.Record(r.Context(), store.Event{Kind: "app.create", App: req.App, Revision: rev.SHA,
		Message: fmt.Sprintf("%s created %s from template %s v%d", user, req.App, req.Template, t.TemplateVersion())})
	s.Trigger()
	c := wireCommit(rev)
	out.Commit = &c
	writeJSON(w, http.StatusOK, out)
}

// foreignTeam is the first team a parameter of source teams is set to
// that is not one of mine, or "".
func foreignTeam(t *spec.Template, values template.Values, mine []string) string {
	for _, p := range t.Parameters {
		if v, ok := values[p.Name].(string); ok && p.Source == spec.SourceTeams && !slices.Contains(mine, v) {
			return v
		}
	}
	return ""
}

// foreignOwner is app's owner in repo if it is not one of mine, or "":
// the owner may come from the files rather than a picker, and the rule
// is the app's owner's, whatever set it.
func foreignOwner(repo *spec.Repo, app string, mine []string) string {
	if a := repo.App(app); a != nil && a.Config.Owner != "" && !slices.Contains(mine, a.Config.Owner) {
		return a.Config.Owner
	}
	return ""
}

// unchangedSince is an edit that writes result if the file is still
// what the upgrade was computed from (want, nil for no file), else
// refuses with source.ErrConflict: a commit between the read and the
// write is not overwritten.
func unchangedSince(p string, want, result []byte) func([]byte) ([]byte, error) {
	return func(old []byte) ([]byte, error) {
		if (old == nil) != (want == nil) || !bytes.Equal(old, want) {
			return nil, fmt.Errorf("%w: %s changed at the head since the upgrade was computed", source.ErrConflict, p)
		}
		return result, nil
	}
}

// notYourTeam says why user may not create an app for team.
func notYourTeam(user, team string, mine []string) string {
	return fmt.Sprintf("%s may not create an app for team %s: only its developers, approvers and admins may (%s creates apps for %s)", user, team, user, strings.Join(mine, ", "))
}

// paramLines are a commit message's lines of parameters.
func paramLines(v template.Values) string {
	var b strings.Builder
	b.WriteString("Parameters:")
	for _, k := range slices.Sorted(maps.Keys(v)) {
		fmt.Fprintf(&b, "\n- %s: %v", k, v[k])
	}
	return b.String()
}

func (s *Server) upgradeApp(w http.ResponseWriter, r *http.Request) {
	var req api.TemplateUpgradeRequest
	if !readBody(w, r, &req) {
		return
	}
	repo := s.inForceOr(w)
	if repo == nil {
		return
	}
	name, user := r.PathValue("app"), callerOf(r).User
	mine := creatorTeams(repo, user)
	h, err := s.secretsHead(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	head, _ := s.load(h.fsys)
	app := head.App(name)
	switch {
	case app == nil:
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no app %q at the head of the platform repository", name))
		return
	case app.Template == nil:
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s was not made from a template: apps/%s/%s is missing", name, name, spec.AppTemplateFile))
		return
	}
	rec := app.Template
	t := head.Templates[rec.Template]
	if t == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s was made from template %s, which templates/ no longer has", name, rec.Template))
		return
	}
	oldFS, err := s.repo.Files(rec.Revision)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("apps/%s/%s: revision %s: %v", name, spec.AppTemplateFile, rec.Revision, err))
		return
	}
	oldRepo, _ := s.load(oldFS)
	old := oldRepo.Templates[rec.Template]
	if old == nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", fmt.Sprintf("apps/%s/%s: revision %s has no template %s", name, spec.AppTemplateFile, shortSHA(rec.Revision), rec.Template))
		return
	}
	recorded := template.Values{}
	for _, p := range old.Parameters {
		if v, ok := rec.Parameters[p.Name]; ok {
			if x, err := spec.CheckParameter(p, v, nil); err == nil {
				recorded[p.Name] = x
			}
		}
	}
	given := map[string]any{}
	for _, p := range t.Parameters { // what the new version still has keeps its value
		if v, ok := recorded[p.Name]; ok {
			given[p.Name] = v
		}
	}
	maps.Copy(given, req.Parameters)
	values, err := template.Resolve(rec.Template, t, given, teamNames(head))
	if err != nil {
		paramError(w, err)
		return
	}
	if team := foreignTeam(t, values, mine); team != "" {
		writeError(w, http.StatusForbidden, "forbidden", notYourTeam(user, team, mine))
		return
	}
	base, err := template.Render(old, name, recorded)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", err.Error())
		return
	}
	theirs, err := template.Render(t, name, values)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid", err.Error())
		return
	}
	dir := path.Join(spec.AppsDir, name)
	ours := map[string][]byte{}
	for _, m := range []map[string][]byte{base, theirs} {
		for rel := range m {
			if b, err := h.read(path.Join(dir, rel)); err != nil {
				writeError(w, http.StatusInternalServerError, "internal", err.Error())
				return
			} else if b != nil {
				ours[rel] = b
			}
		}
	}
	merged, err := template.Merge(r.Context(), base, theirs, ours, [3]string{"app " + name, fmt.Sprintf("template %s v%d", rec.Template, rec.Version), fmt.Sprintf("template %s v%d", rec.Template, t.TemplateVersion())})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	recPath := path.Join(dir, spec.AppTemplateFile)
	newRec := template.Record(rec.Template, t.TemplateVersion(), h.rev.SHA, values)
	oldRec, err := h.read(recPath)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	out := api.TemplateUpgrade{App: name, Template: rec.Template, From: rec.Version, To: t.TemplateVersion(), Files: []api.UpgradeFile{}}
	var edits []gitwrite.FileEdit
	for _, f := range merged {
		if !f.Changed {
			continue
		}
		p := path.Join(dir, f.Path)
		old := ours[f.Path]
		d, err := template.Diff(r.Context(), p, old, f.Result)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		action := "update"
		switch {
		case old == nil:
			action = "create"
		case f.Result == nil:
			action = "delete"
		}
		out.Files = append(out.Files, api.UpgradeFile{Path: p, Action: action, Diff: d, Conflicts: f.Conflicts})
		out.Conflicts += f.Conflicts
		result := f.Result
		edits = append(edits, gitwrite.FileEdit{Path: p, Edit: unchangedSince(p, old, result)})
	}
	if out.Conflicts > 0 {
		var where []string
		for _, f := range out.Files {
			if f.Conflicts > 0 {
				where = append(where, fmt.Sprintf("%s (%d)", f.Path, f.Conflicts))
			}
		}
		writeJSON(w, http.StatusConflict, api.Error{Error: api.ErrorBody{Code: "conflict",
			Message: fmt.Sprintf("the app and template %s v%d changed the same lines of %s: nothing is committed; make the app's edits agree with the template's (the conflicts are marked in the diff), then upgrade again", rec.Template, t.TemplateVersion(), strings.Join(where, ", ")),
			Details: out}})
		return
	}
	// The upgraded app must validate, as a new one must.
	changed := map[string][]byte{recPath: newRec}
	for _, f := range merged {
		if f.Changed {
			changed[path.Join(dir, f.Path)] = f.Result
		}
	}
	fsys, err := withFiles(h.fsys, changed)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	next, problems := s.load(fsys)
	if team := foreignOwner(next, name, mine); team != "" {
		writeError(w, http.StatusForbidden, "forbidden", notYourTeam(user, team, mine))
		return
	}
	if problems.Errors() > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, api.Error{Error: api.ErrorBody{Code: "invalid",
			Message: fmt.Sprintf("%s upgraded to template %s v%d does not validate: nothing is committed: %s", name, rec.Template, t.TemplateVersion(), problems.Err()),
			Details: out}})
		return
	}
	if len(edits) == 0 && rec.Version == t.TemplateVersion() {
		writeJSON(w, http.StatusOK, out) // up to date, nothing to do
		return
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, out)
		return
	}
	rev, err := s.commits.Write(r.Context(), gitwrite.Change{
		Path: recPath, Edit: unchangedSince(recPath, oldRec, newRec), Also: edits,
		Author: user, Email: promotion.EmailOf(head, user),
		Message: fmt.Sprintf("template upgrade %s to %s v%d\n\nFrom v%d, merged into the app's files:\n- %s", name, rec.Template, t.TemplateVersion(), rec.Version, strings.Join(each(out.Files, func(f api.UpgradeFile) string { return f.Path }), "\n- ")),
		Audit:   store.AuditRecord{Actor: user, Action: "app.template-upgrade", App: name},
		Detail:  map[string]any{"template": rec.Template, "from": rec.Version, "to": t.TemplateVersion()},
	})
	if err != nil {
		secretFileError(w, err)
		return
	}
	s.announce.Record(r.Context(), store.Event{Kind: "app.template-upgrade", App: name, Revision: rev.SHA,
		Message: fmt.Sprintf("%s upgraded %s to template %s v%d (from v%d)", user, name, rec.Template, t.TemplateVersion(), rec.Version)})
	s.Trigger()
	c := wireCommit(rev)
	out.Commit = &c
	writeJSON(w, http.StatusOK, out)
}

func shortSHA(sha string) string { return sha[:min(len(sha), 12)] }

// templateSubject reads back the subject of the commits templates make.
var templateSubject = regexp.MustCompile(`^(?:new app (\S+) from template (\S+) v(\d+)|template upgrade (\S+) to (\S+) v(\d+))$`)

// recognizeTemplate knows the commits of socle new and template upgrade,
// for the writer's recovery of an audit record lost in a crash.
func recognizeTemplate(rev source.Revision) (store.AuditRecord, map[string]any, bool) {
	m := templateSubject.FindStringSubmatch(rev.Subject())
	switch {
	case m == nil:
		return store.AuditRecord{}, nil, false
	case m[1] != "":
		return store.AuditRecord{Actor: rev.Author, Action: "app.create", App: m[1]}, map[string]any{"template": m[2]}, true
	}
	return store.AuditRecord{Actor: rev.Author, Action: "app.template-upgrade", App: m[4]}, map[string]any{"template": m[5]}, true
}
