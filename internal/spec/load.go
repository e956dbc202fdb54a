package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/score-spec/score-go/loader"
	scoreschema "github.com/score-spec/score-go/schema"
	"github.com/score-spec/score-go/types"
	"gopkg.in/yaml.v3"
)

// Repo is the whole desired state read from one revision of a platform
// repository.
type Repo struct {
	Platform Platform
	Teams    Teams
	// Apps sorted by name.
	Apps []*App
	// Releases by environment name.
	Releases map[string]*Releases
	// Budgets is nil when the repository has no budgets.yaml.
	Budgets *Budgets
	// Policies, one set per policies/*.yaml file, sorted by file name.
	Policies []PolicySet
	// Templates by name.
	Templates map[string]*Template
	// Stacks sorted by name.
	Stacks []*Stack
	// Provisioners from provisioners/*.yaml, in file order then the order
	// of each file; see ProvisionerFor.
	Provisioners []*Provisioner
}

// App returns the app with that name, or nil.
func (r *Repo) App(name string) *App {
	i, ok := slices.BinarySearchFunc(r.Apps, name, func(a *App, n string) int { return strings.Compare(a.Name, n) })
	if !ok {
		return nil
	}
	return r.Apps[i]
}

// Environment returns the environment with that name, or nil.
func (r *Repo) Environment(name string) *Environment {
	for i := range r.Platform.Environments {
		if r.Platform.Environments[i].Name == name {
			return &r.Platform.Environments[i]
		}
	}
	return nil
}

// Team returns the team with that name, or nil.
func (r *Repo) Team(name string) *Team {
	for i := range r.Teams.Teams {
		if r.Teams.Teams[i].Name == name {
			return &r.Teams.Teams[i]
		}
	}
	return nil
}

// The well-known paths of a platform repository.
const (
	PlatformFile = "socle.yaml"
	TeamsFile    = "teams.yaml"
	BudgetsFile  = "budgets.yaml"
	AppsDir      = "apps"
	ReleasesDir  = "releases"
	PoliciesDir  = "policies"
	TemplatesDir = "templates"
	ScoreFile    = "score.yaml"
	AppFile      = "socle.yaml"
	TemplateFile = "template.yaml"
)

// Load reads and validates a platform repository. It always returns the Repo
// it could build, with every problem found; the Repo is only safe to act on
// when problems.Err() is nil. What it reads is bounded (see limits): a
// repository over the bounds is invalid, with a problem that says where.
//
// Load knows no runtime type: it takes every environment's runtime block as
// written (Runtime.Fields), and leaves Runtime.Config nil. That serves the
// readers that only plan or judge; whatever validates a repository for
// socle to run, or runs it, loads with LoadWith and socle's runtime types.
func Load(fsys fs.FS) (*Repo, Problems) {
	return load(fsys, defaultLimits, nil)
}

func load(fsys fs.FS, lim limits, rt Runtimes) (*Repo, Problems) {
	l := &loading{fsys: fsys, repo: &Repo{Releases: map[string]*Releases{}, Templates: map[string]*Template{}}, st: newDecodeState(), budget: newBudget(lim), runtimes: rt, tfModules: map[string]*tfModule{}}
	l.docs = map[string]*document{}
	r := l.repo

	if d := l.read(PlatformFile, true, "platform"); d != nil {
		l.decode(d, &r.Platform)
	}
	if d := l.read(TeamsFile, true, "teams"); d != nil {
		l.decode(d, &r.Teams)
	}
	if d := l.read(BudgetsFile, false, "budgets"); d != nil {
		r.Budgets = &Budgets{}
		l.decode(d, r.Budgets)
	}
	for _, f := range l.yamlFiles(ReleasesDir) {
		if d := l.read(f, true, "releases"); d != nil {
			var rel Releases
			l.decode(d, &rel)
			env := strings.TrimSuffix(path.Base(f), path.Ext(f))
			if rel.Environment != "" && rel.Environment != env {
				l.add(d.problem(fmt.Sprintf("file pins environment %q but is named for %q: name it releases/%s.yaml", rel.Environment, env, rel.Environment), "environment"))
			}
			r.Releases[env] = &rel
		}
	}
	for _, f := range l.yamlFiles(PoliciesDir) {
		if d := l.read(f, true, "policies"); d != nil {
			var ps PolicySet
			l.decode(d, &ps)
			ps.File = f // after decoding: a zero value decodes fastest (File is not in the file: json:"-")
			r.Policies = append(r.Policies, ps)
		}
	}
	for _, name := range l.dirs(TemplatesDir) {
		l.loadTemplate(name)
	}
	l.loadProvisioners() // before the apps: their resources are checked against them
	l.collectNames()
	l.loadApps()
	l.loadStacks()
	applyDefaults(r)
	l.check()
	l.checkRouteClaims()
	l.problems.sort()
	return r, l.problems
}

type loading struct {
	fsys     fs.FS
	repo     *Repo
	names    names
	mu       sync.Mutex
	problems Problems
	docs     map[string]*document // by file, for locating semantic problems
	// report, when set, receives problems instead (an app's own loading,
	// whose documents live only as long as its checks).
	report *loading
	st     *decodeState // this goroutine's
	budget *YAMLBudget  // the revision's, shared
	// runtimes check the environments' runtime blocks; nil: none is.
	runtimes Runtimes
	// tfModules are the Terraform module directories read, by path.
	tfModules map[string]*tfModule
	// routeClaims are the hosts and prefixes the apps' routes take (under
	// mu), checked once every app is read.
	routeClaims []routeClaim
}

func (l *loading) add(ps ...Problem) {
	if l.report != nil {
		l.report.add(ps...)
		return
	}
	l.mu.Lock()
	l.problems = append(l.problems, ps...)
	l.mu.Unlock()
}

// read parses and schema-checks one file; nil when it is missing or unreadable
// as YAML (the problem is recorded).
func (l *loading) read(file string, required bool, schema string) *document {
	data, err := readFile(l.fsys, file, l.budget.limits())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if required {
				l.add(Problem{File: file, Message: "missing: every platform repository needs " + file})
			}
			return nil
		}
		l.add(FileProblem(file, err))
		return nil
	}
	return l.parse(file, data, schema)
}

func (l *loading) parse(file string, data []byte, schema string) *document {
	var pool *mapPool
	if l.report != nil { // an app's file: loadApp recycles its values
		pool = &l.st.maps
	}
	d, p := parseYAMLWith(pool, l.budget, file, data)
	if p != nil {
		l.add(*p)
		return nil
	}
	if d == nil {
		return nil // the revision is over its budget, and says so once
	}
	if _, ok := d.value.(map[string]any); !ok {
		l.add(Problem{File: file, Line: 1, Column: 1, Message: "expected a mapping of fields (apiVersion, kind, …), found " + describeNode(d.node())})
		return nil
	}
	if schema != "" {
		l.add(d.validate(schema)...)
	}
	l.mu.Lock()
	l.docs[file] = d
	l.mu.Unlock()
	return d
}

func describeNode(n *yaml.Node) string {
	switch {
	case n == nil:
		return "an empty file"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// decode fills out; type errors were already reported by the schema, so a
// field that does not decode is left at its zero value.
func (l *loading) decode(d *document, out any) {
	if jsonDecoder.decode(l.st, d.value, out) {
		return
	}
	if err := d.decode(out); err != nil {
		// Re-decode field by field is not worth it: the schema problem
		// already names the field. Record only errors the schema missed.
		if !l.hasProblemIn(d.file) {
			l.add(Problem{File: d.file, Message: err.Error()})
		}
	}
}

func (l *loading) hasProblemIn(file string) bool {
	if l.report != nil {
		return l.report.hasProblemIn(file)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		if p.File == file && !p.Warning {
			return true
		}
	}
	return false
}

// list lists a directory of the repository: nothing if it is missing (or
// a symbolic link, a problem).
func (l *loading) list(dir string) []fs.DirEntry {
	entries, err := readDir(l.fsys, dir)
	var le *LinkError
	if errors.As(err, &le) {
		l.add(le.Problem())
	}
	return entries
}

// link reports an entry of dir that is a symbolic link.
func (l *loading) link(dir string, e fs.DirEntry) bool {
	if e.Type() != fs.ModeSymlink {
		return false
	}
	l.add(linkError(l.fsys, path.Join(dir, e.Name())).Problem())
	return true
}

func (l *loading) yamlFiles(dir string) []string {
	var out []string
	for _, e := range l.list(dir) {
		if e.IsDir() {
			continue
		}
		switch path.Ext(e.Name()) {
		case ".yaml":
			if l.link(dir, e) {
				continue
			}
			out = append(out, path.Join(dir, e.Name()))
		case ".yml":
			l.add(Problem{File: path.Join(dir, e.Name()), Warning: true, Message: "ignored: socle reads files ending in .yaml"})
		}
	}
	return out
}

// dirs lists the directories of dir but hidden ones; a symbolic link there
// is a problem.
func (l *loading) dirs(dir string) []string {
	var out []string
	for _, e := range l.list(dir) {
		if strings.HasPrefix(e.Name(), ".") || l.link(dir, e) {
			continue
		}
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// loadApps reads apps/* in parallel: with thousands of apps, reading and
// hashing their files is most of the loader's work.
//
// Workers take the next app from a counter. There are twice as many as
// processors: a third of their time goes into system calls (open, read,
// close, directory reads), and the extra ones keep the processors busy
// meanwhile (10,000 apps on 2 cores: load −17% against one per processor;
// three per processor were no better).
func (l *loading) loadApps() {
	names := l.dirs(AppsDir)
	apps := make([]*App, len(names))
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(len(names), 2*max(1, runtime.GOMAXPROCS(0))) {
		wg.Go(func() {
			st := newDecodeState()
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				apps[i] = l.loadApp(names[i], st)
			}
		})
	}
	wg.Wait()
	for _, a := range apps {
		if a != nil {
			l.repo.Apps = append(l.repo.Apps, a)
		}
	}
}

var appName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (l *loading) loadApp(name string, st *decodeState) *App {
	// The app's documents stay in its own loading, not the repository's.
	l = &loading{fsys: l.fsys, repo: l.repo, names: l.names, docs: map[string]*document{}, report: l, st: st, budget: l.budget}
	dir := path.Join(AppsDir, name)
	app := &App{Name: name}
	if !appName.MatchString(name) {
		l.add(Problem{File: dir, Message: fmt.Sprintf("app directory %q is not a valid app name: lowercase letters, digits and dashes, at most 63", name)})
	}
	// Hash every file of the app, so that any change to its definition or
	// source makes it a new version, and nothing else does. (The worker's
	// hash and buffer serve app after app.)
	h := l.st.hash()
	prefix := dir + "/"
	var score, conf, tmpl []byte
	var scoreLink bool
	var secretFiles map[string][]byte
	err := fs.WalkDir(l.fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if e.Type() == fs.ModeSymlink {
			// Neither hashed nor read: the app is invalid, and says why.
			l.add(linkError(l.fsys, p).Problem())
			scoreLink = scoreLink || p == path.Join(dir, ScoreFile)
			return nil
		}
		data, err := fs.ReadFile(l.fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, prefix)
		// The header is "<rel>\x00<len>\x00", as fmt.Fprintf wrote it.
		b := append(append(l.st.buf[:0], rel...), 0)
		b = append(strconv.AppendInt(b, int64(len(data)), 10), 0)
		l.st.buf = b
		h.Write(b)
		h.Write(data)
		switch rel {
		case ScoreFile:
			score = data
		case AppFile:
			conf = data
		case AppTemplateFile:
			tmpl = data
		default:
			if isSecretFile(rel) {
				if secretFiles == nil {
					secretFiles = map[string][]byte{}
				}
				secretFiles[rel] = data
			}
		}
		return nil
	})
	if err != nil {
		l.add(Problem{File: dir, Message: err.Error()})
		return nil
	}
	var sum [sha256.Size]byte
	var text [len("sha256:") + 2*sha256.Size]byte
	copy(text[:], "sha256:")
	hex.Encode(text[len("sha256:"):], h.Sum(sum[:0]))
	app.Source = string(text[:])
	if score == nil && !scoreLink {
		l.add(Problem{File: path.Join(dir, ScoreFile), Message: "missing: every app needs a Score file (score.dev/v1b1) describing its workload"})
	} else if score != nil {
		app.Workload = l.loadScore(path.Join(dir, ScoreFile), name, score)
	}
	if conf != nil {
		if d := l.parse(path.Join(dir, AppFile), conf, "app"); d != nil {
			l.decode(d, &app.Config)
		}
	}
	if tmpl != nil {
		if d := l.parse(path.Join(dir, AppTemplateFile), tmpl, "app-template"); d != nil {
			app.Template = &AppTemplate{}
			l.decode(d, app.Template)
		}
	}
	l.checkApp(app, l.docs)
	l.checkSecretValues(app, secretFiles)
	// Nothing holds the values of the app's files now (the decoders copy
	// what they keep): their maps serve the next app's files.
	for _, d := range l.docs {
		if !d.shared {
			l.st.maps.recycle(d.value)
			d.value = nil
		}
	}
	return app
}

var placeholderRef = regexp.MustCompile(`\$\{([^}]*)\}`)

// loadScore reads a Score file the way the Score project's tools do: its
// upgrade transforms, its JSON Schema, its mapping into types.Workload and its
// placeholder checks.
func (l *loading) loadScore(file, app string, data []byte) *types.Workload {
	d := l.parse(file, data, "")
	if d == nil {
		return nil
	}
	raw, _ := d.value.(map[string]any)
	changes, err := scoreschema.ApplyCommonUpgradeTransforms(raw)
	if err != nil {
		l.add(Problem{File: file, Message: "score: " + err.Error()})
		return nil
	}
	for _, c := range changes {
		l.add(Problem{File: file, Warning: true, Message: "deprecated Score form upgraded: " + c})
	}
	if ps := d.validate("score"); len(ps) > 0 {
		l.add(ps...)
		return nil
	}
	var w types.Workload
	shared, err := mapWorkload(l.st, &w, raw)
	d.shared = shared
	if err != nil {
		l.add(Problem{File: file, Message: "score: " + err.Error()})
		return nil
	}
	if err := loader.Validate(&w); err != nil {
		var ve *loader.ValidationError
		if errors.As(err, &ve) {
			for _, m := range ve.Messages {
				l.add(d.findProblem(m))
			}
		} else {
			l.add(Problem{File: file, Message: "score: " + err.Error()})
		}
	}
	if n, _ := w.Metadata["name"].(string); n != app {
		l.add(d.problem(fmt.Sprintf("expected the app's directory name %q, found %q", app, n), "metadata", "name"))
	}
	for cname, c := range w.Containers {
		for fname, f := range c.Files {
			if f.Source == nil {
				continue
			}
			src := path.Join(path.Dir(file), *f.Source)
			if _, err := fs.Stat(l.fsys, src); err != nil {
				l.add(d.problem(fmt.Sprintf("file source %q does not exist in the repository", *f.Source), "containers", cname, "files", fname, "source"))
			}
		}
	}
	return &w
}

// findProblem locates a Score placeholder message at the first scalar that
// holds the placeholder it names.
func (d *document) findProblem(msg string) Problem {
	p := Problem{File: d.file, Message: "score: " + msg}
	m := placeholderRef.FindString(msg)
	if m == "" {
		return p
	}
	var find func(n *yaml.Node, path []string) bool
	find = func(n *yaml.Node, path []string) bool {
		switch n.Kind {
		case yaml.ScalarNode:
			if strings.Contains(n.Value, m) {
				p.Line, p.Column = n.Line, n.Column
				_, p.Field = d.locate(path...)
				return true
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if find(n.Content[i+1], append(path, n.Content[i].Value)) {
					return true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if find(c, append(path, fmt.Sprint(i))) {
					return true
				}
			}
		}
		return false
	}
	if root := d.node(); root != nil {
		find(root, nil)
	}
	return p
}
