package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/gitwrite"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/sopsfile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// maxSecretValue is the largest secret value socle sets (the body of a
// set is bounded a little above it).
const maxSecretValue = 32 << 10

// secretName is what a secret's name may be: a variable's name.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretFile is one secret file an app may have: its path, the
// environment or zone it is for, and the environments it gives values in
// (those whose spec.SecretFiles list it).
type secretFile struct {
	app, path, of, scope string
	envs                 []string
}

// secretFilesOf returns every secret file app may have in repo: one per
// environment and one per zone, in the platform's order.
func secretFilesOf(repo *spec.Repo, app string) []secretFile {
	var out []secretFile
	at := map[string]int{}
	for i := range repo.Platform.Environments {
		e := &repo.Platform.Environments[i]
		for _, p := range spec.SecretFiles(app, e) {
			j, ok := at[p]
			if !ok {
				of, scope := e.Name, "env"
				if p != spec.SecretFile(app, e.Name) {
					of, scope = e.Zone, "zone"
				}
				j, at[p] = len(out), len(out)
				out = append(out, secretFile{app: app, path: p, of: of, scope: scope})
			}
			out[j].envs = append(out[j].envs, e.Name)
		}
	}
	return out
}

// secretDenial says why user may not set app's secrets in env: the rule
// of deploys (the environment's deployRoles), and production needs an
// approver or an admin whatever they say.
func secretDenial(repo *spec.Repo, user, app, env string) *denial {
	if d := deployDenial(repo, user, app, env); d != nil {
		return d
	}
	if repo.Production(env) && !repo.MayApprove(user, app) {
		return deny(http.StatusForbidden, "forbidden", fmt.Sprintf("%s is production: its secrets are set by an approver of %s's team or an admin, and %s has %s", env, app, user, repo.RoleFor(user, app)))
	}
	return nil
}

// fileDenial is secretDenial in every environment f gives values in.
func fileDenial(repo *spec.Repo, user string, f secretFile) *denial {
	for _, e := range f.envs {
		if d := secretDenial(repo, user, f.app, e); d != nil {
			if len(f.envs) > 1 {
				d.msg = fmt.Sprintf("%s gives values in %s: %s", f.path, strings.Join(f.envs, ", "), d.msg)
			}
			return d
		}
	}
	return nil
}

// secretsHead is the head of the platform repository and its files, which
// secret changes are made on.
type secretsHead struct {
	rev   source.Revision
	fsys  fs.FS
	rules sopsfile.Rules
}

func (s *Server) secretsHead(ctx context.Context) (secretsHead, error) {
	// The head socle has seen may be behind the origin's (its watcher
	// polls): a change made on a stale one would be refused. A fetch that
	// fails leaves the head seen; a commit on it says what failed.
	s.repo.Fetch(ctx)
	rev, err := s.repo.Head()
	if err != nil {
		return secretsHead{}, err
	}
	fsys, err := s.repo.Files(rev.SHA)
	if err != nil {
		return secretsHead{}, err
	}
	h := secretsHead{rev: rev, fsys: fsys}
	b, err := spec.ReadFile(fsys, sopsfile.ConfigFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return h, fmt.Errorf("%s: %w", sopsfile.ConfigFile, err)
	default:
		if h.rules, err = sopsfile.ParseRules(b); err != nil {
			return h, err
		}
	}
	return h, nil
}

// read returns the file at the head, nil when there is none.
func (h secretsHead) read(path string) ([]byte, error) {
	b, err := spec.ReadFile(h.fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// recipients are those a file is encrypted for when socle writes it: the
// first creation rule's that matches its path, else the file's own.
func (h secretsHead) recipients(path string, old []byte) ([]string, error) {
	if rs, ok := h.rules.For(path); ok {
		return rs, nil
	}
	if old != nil {
		if rs, err := sopsfile.Recipients(old); err == nil && len(rs) > 0 {
			return rs, nil
		}
	}
	return nil, fmt.Errorf("%s: no creation rule of %s matches it: add one with its age recipients", path, sopsfile.ConfigFile)
}

// wire describes f as its content data says (nil: not there).
func (s *Server) wireSecretFile(ctx context.Context, h secretsHead, f secretFile, data []byte) api.SecretFile {
	out := api.SecretFile{App: f.app, Path: f.path, For: f.of, Scope: f.scope, Environments: f.envs, Names: []string{}, Recipients: []string{}}
	if names, err := sopsfile.Names(data); err == nil {
		out.Names = names
	}
	if rs, err := sopsfile.Recipients(data); err == nil {
		out.Recipients = rs
	}
	out.Held = s.keyring.Holds(out.Recipients)
	out.Rules, _ = h.rules.For(f.path)
	if log, err := s.repo.Log(ctx, "", h.rev.SHA, f.path); err == nil && len(log) > 0 {
		c := log[0]
		out.LastChange = &api.Commit{SHA: c.SHA, Author: c.Author, Time: c.Time, Message: c.Subject()}
	}
	return out
}

// existingSecretFiles are the secret files at the head of the apps of
// repo (or of app), that give values in env when env is set.
func existingSecretFiles(repo *spec.Repo, h secretsHead, app, env string) ([]secretFile, map[string][]byte, error) {
	var files []secretFile
	data := map[string][]byte{}
	for _, a := range repo.Apps {
		if app != "" && a.Name != app {
			continue
		}
		for _, f := range secretFilesOf(repo, a.Name) {
			if env != "" && !slices.Contains(f.envs, env) {
				continue
			}
			b, err := h.read(f.path)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", f.path, err)
			}
			if b != nil {
				files, data[f.path] = append(files, f), b
			}
		}
	}
	return files, data, nil
}

// secretScope checks the app and environment a secret request names.
func secretScope(w http.ResponseWriter, repo *spec.Repo, app, env string) bool {
	if app != "" && repo.App(app) == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no app %q", app))
		return false
	}
	if env != "" && repo.Environment(env) == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no environment %q", env))
		return false
	}
	return true
}

// inForceOr answers 409 before the first valid revision: no apps, no roles.
func (s *Server) inForceOr(w http.ResponseWriter) *spec.Repo {
	repo := s.repoInForce()
	if repo == nil {
		writeError(w, http.StatusConflict, "refused", "no valid revision of the platform repository yet")
	}
	return repo
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	repo := s.inForceOr(w)
	if repo == nil {
		return
	}
	app, env := r.URL.Query().Get("app"), r.URL.Query().Get("env")
	if !secretScope(w, repo, app, env) {
		return
	}
	h, err := s.secretsHead(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	files, data, err := existingSecretFiles(repo, h, app, env)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	out := api.SecretList{Revision: h.rev.SHA, Items: []api.SecretFile{}}
	for _, f := range files {
		out.Items = append(out.Items, s.wireSecretFile(r.Context(), h, f, data[f.path]))
	}
	s.reply(w, r, out)
}

// chooseSecretFile is the file a set of name in env writes: the one name's
// value comes from there now (the environment's, then its zone's, as the
// pipeline reads them, whose last wins), else the environment's file if
// it is there, else its zone's if that is, else a new environment's file.
// envOnly asks for the environment's own file.
func chooseSecretFile(repo *spec.Repo, h secretsHead, app, env, name string, envOnly bool) (secretFile, error) {
	files := secretFilesOf(repo, app)
	byPath := func(p string) secretFile {
		return files[slices.IndexFunc(files, func(f secretFile) bool { return f.path == p })]
	}
	paths := spec.SecretFiles(app, repo.Environment(env))
	own := paths[len(paths)-1]
	if envOnly {
		return byPath(own), nil
	}
	var there []string
	for i := len(paths) - 1; i >= 0; i-- {
		b, err := h.read(paths[i])
		if err != nil {
			return secretFile{}, fmt.Errorf("%s: %w", paths[i], err)
		}
		if b == nil {
			continue
		}
		there = append(there, paths[i])
		if names, err := sopsfile.Names(b); err == nil && slices.Contains(names, name) {
			return byPath(paths[i]), nil
		}
	}
	if len(there) > 0 {
		return byPath(there[0]), nil
	}
	return byPath(own), nil
}

// secretFileError answers a secret change that failed.
func secretFileError(w http.ResponseWriter, err error) {
	var noRule *noRuleError
	switch {
	case errors.Is(err, sopsfile.ErrNoIdentity), errors.As(err, &noRule):
		writeError(w, http.StatusUnprocessableEntity, "secret_file", err.Error())
	case errors.Is(err, source.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "the platform repository moved while socle wrote the file: try again ("+err.Error()+")")
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// noRuleError is a file socle cannot tell the recipients of.
type noRuleError struct{ err error }

func (e *noRuleError) Error() string { return e.err.Error() }

// encryptFor edits a secret file at the head: the rule's recipients, a
// new data key, change applied to its values.
func (s *Server) encryptFor(h secretsHead, path string, change func(map[string]string)) func(old []byte) ([]byte, error) {
	return func(old []byte) ([]byte, error) {
		rs, err := h.recipients(path, old)
		if err != nil {
			return nil, &noRuleError{err}
		}
		if old == nil {
			values := map[string]string{}
			change(values)
			return sopsfile.Encrypt(values, rs)
		}
		return s.keyring.Reencrypt(old, rs, change)
	}
}

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	var req api.SecretValue
	if !readBody(w, r, &req) {
		return
	}
	repo := s.inForceOr(w)
	if repo == nil {
		return
	}
	user, app, name := callerOf(r).User, r.PathValue("app"), r.PathValue("name")
	q := r.URL.Query()
	env, scope := q.Get("env"), q.Get("scope")
	switch {
	case env == "":
		writeError(w, http.StatusBadRequest, "bad_request", "env (the environment) is required")
		return
	case scope != "" && scope != "env":
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("scope %q: only env (the environment's own file)", scope))
		return
	case !secretScope(w, repo, app, env):
		return
	case !secretName.MatchString(name):
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name %q: a variable's name (letters, digits and _, not starting with a digit)", name))
		return
	case !slices.Contains(repo.App(app).Config.Secrets, name):
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s is not listed under secrets in apps/%s/socle.yaml: list it there first, or the app never receives it", name, app))
		return
	case req.Value == "":
		writeError(w, http.StatusBadRequest, "bad_request", "value is empty")
		return
	case len(req.Value) > maxSecretValue:
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the value is over %d bytes", maxSecretValue))
		return
	}
	h, err := s.secretsHead(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	f, err := chooseSecretFile(repo, h, app, env, name, scope == "env")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if d := fileDenial(repo, user, f); d != nil {
		writeError(w, d.status, d.code, d.msg)
		return
	}
	created := false
	var written []byte
	edit := s.encryptFor(h, f.path, func(values map[string]string) {
		_, had := values[name]
		created, values[name] = !had, req.Value
	})
	rev, err := s.commits.Write(r.Context(), gitwrite.Change{
		Path: f.path,
		Edit: func(old []byte) ([]byte, error) {
			b, err := edit(old)
			written = b
			return b, err
		},
		Author: user, Email: promotion.EmailOf(repo, user),
		Message: fmt.Sprintf("secret set %s %s in %s\n\n%s, for %s.", app, name, env, f.path, strings.Join(f.envs, ", ")),
		Audit:   store.AuditRecord{Actor: user, Action: "secret.set", App: app, Env: env},
		Detail:  map[string]any{"name": name, "file": f.path, "environments": f.envs},
	})
	if err != nil {
		secretFileError(w, err)
		return
	}
	s.announce.Record(r.Context(), store.Event{Kind: "secret.set", App: app, Env: env, Revision: rev.SHA,
		Message: fmt.Sprintf("%s set %s of %s in %s (for %s)", user, name, app, f.path, strings.Join(f.envs, ", "))})
	s.Trigger()
	h.rev = rev
	out := api.SecretChange{Commit: wireCommit(rev), Name: name, Created: created,
		Files: []api.SecretFile{s.wireSecretFile(r.Context(), h, f, written)}}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) rotateSecrets(w http.ResponseWriter, r *http.Request) {
	var req api.SecretRotateRequest
	if !readBody(w, r, &req) {
		return
	}
	repo := s.inForceOr(w)
	if repo == nil || !secretScope(w, repo, req.App, req.Env) {
		return
	}
	user := callerOf(r).User
	h, err := s.secretsHead(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	files, data, err := existingSecretFiles(repo, h, req.App, req.Env)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if len(files) == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no secret file to rotate"+scopeWords(req))
		return
	}
	var undecryptable []string
	for _, f := range files {
		if d := fileDenial(repo, user, f); d != nil {
			writeError(w, d.status, d.code, fmt.Sprintf("%s: %s", f.path, d.msg))
			return
		}
		if rs, err := sopsfile.Recipients(data[f.path]); err != nil || !s.keyring.Holds(rs) {
			undecryptable = append(undecryptable, fmt.Sprintf("%s (encrypted for %s)", f.path, strings.Join(rs, ", ")))
		}
	}
	if len(undecryptable) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "secret_file", fmt.Sprintf("socle holds no age identity of %s (it holds: %s): nothing rotated; narrow the rotation to the files it can decrypt, or give it their identity",
			strings.Join(undecryptable, "; "), strings.Join(s.keyring.Recipients(), ", ")))
		return
	}
	written := make([][]byte, len(files))
	edits := make([]gitwrite.FileEdit, len(files))
	var paths []string
	for i, f := range files {
		edit := s.encryptFor(h, f.path, nil)
		edits[i] = gitwrite.FileEdit{Path: f.path, Edit: func(old []byte) ([]byte, error) {
			b, err := edit(old)
			written[i] = b
			return b, err
		}}
		paths = append(paths, f.path)
	}
	rev, err := s.commits.Write(r.Context(), gitwrite.Change{
		Path: edits[0].Path, Edit: edits[0].Edit, Also: edits[1:],
		Author: user, Email: promotion.EmailOf(repo, user),
		Message: fmt.Sprintf("secret rotate %s%s\n\nRe-encrypted for their recipients with a new data key:\n- %s", countFiles(len(files)), scopeWords(req), strings.Join(paths, "\n- ")),
		Audit:   store.AuditRecord{Actor: user, Action: "secret.rotate", App: req.App, Env: req.Env},
		Detail:  map[string]any{"files": paths},
	})
	if err != nil {
		secretFileError(w, err)
		return
	}
	s.announce.Record(r.Context(), store.Event{Kind: "secret.rotate", App: req.App, Env: req.Env, Revision: rev.SHA,
		Message: fmt.Sprintf("%s rotated the data key of %s", user, strings.Join(paths, ", "))})
	s.Trigger()
	h.rev = rev
	out := api.SecretChange{Commit: wireCommit(rev), Files: make([]api.SecretFile, len(files))}
	for i, f := range files {
		out.Files[i] = s.wireSecretFile(r.Context(), h, f, written[i])
	}
	writeJSON(w, http.StatusCreated, out)
}

// countFiles says n files in words.
func countFiles(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

// scopeWords say what a rotation is of, for its commit and errors.
func scopeWords(req api.SecretRotateRequest) string {
	var w []string
	if req.App != "" {
		w = append(w, "of "+req.App)
	}
	if req.Env != "" {
		w = append(w, "for "+req.Env)
	}
	if len(w) == 0 {
		return ""
	}
	return " " + strings.Join(w, " ")
}

func wireCommit(rev source.Revision) api.Commit {
	return api.Commit{SHA: rev.SHA, Author: rev.Author, Time: rev.Time, Message: rev.Subject()}
}

// secretSubject reads back the subject of the commits secrets make.
var secretSubject = regexp.MustCompile(`^secret (?:set (\S+) (\S+) in (\S+)$|rotate \d+ files?(?: of (\S+))?(?: for (\S+))?$)`)

// recognizeSecret knows the commits of secret set and rotate, for the
// writer's recovery of an audit record lost in a crash.
func recognizeSecret(rev source.Revision) (store.AuditRecord, map[string]any, bool) {
	m := secretSubject.FindStringSubmatch(rev.Subject())
	switch {
	case m == nil:
		return store.AuditRecord{}, nil, false
	case m[1] != "":
		return store.AuditRecord{Actor: rev.Author, Action: "secret.set", App: m[1], Env: m[3]}, map[string]any{"name": m[2]}, true
	}
	return store.AuditRecord{Actor: rev.Author, Action: "secret.rotate", App: m[4], Env: m[5]}, nil, true
}

// recognize knows every commit socle makes: promotions', secrets' and
// templates'.
func recognize(rev source.Revision) (store.AuditRecord, map[string]any, bool) {
	if rec, d, ok := promotion.Recognize(rev); ok {
		return rec, d, ok
	}
	if rec, d, ok := recognizeTemplate(rev); ok {
		return rec, d, ok
	}
	return recognizeSecret(rev)
}
