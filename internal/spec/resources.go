package spec

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/score-spec/score-go/framework"
	"github.com/score-spec/score-go/types"
)

// unprovisioned are the Score resource types socle has no provisioner of
// its own for yet, and why: a workload that uses one is refused, unless a
// provisioner of the platform serves it, rather than validate and then
// fail to deploy.
var unprovisioned = map[string]string{
	"volume": "the local runtime runs a replica as a process of this machine, with nothing mounted in it",
	"route":  "declare the app's hosts and path prefixes under routes in its socle.yaml instead",
}

// Unprovisioned says why socle has no provisioner of its own for Score
// resource type t ("": it has one, or t is the platform's to serve).
func Unprovisioned(t string) string { return unprovisioned[t] }

// placeholder is a ${…} of a Score file where Score substitutes it.
type placeholder struct {
	ref  string // between ${ and }
	path []string
	// resource is the resource whose params hold it, "" elsewhere.
	resource string
}

// checkResources holds a workload to its resources' contract, in every
// environment the app is enabled in: each resource has a provisioner, and
// each ${resources.<name>.<output>} names an output that provisioner
// declares. Resources whose params read one another in a cycle are
// refused too.
func (l *loading) checkResources(a *App) {
	file := path.Join(AppsDir, a.Name, ScoreFile)
	d, w := l.docs[file], a.Workload
	if d == nil || w == nil || len(w.Resources) == 0 {
		return
	}
	var envs []*Environment
	for i := range l.repo.Platform.Environments {
		if e := &l.repo.Platform.Environments[i]; a.EnabledIn(e.Name) {
			envs = append(envs, e)
		}
	}
	// The provisioner of each resource in each environment (nil: none).
	names := slices.Sorted(maps.Keys(w.Resources))
	serving := make(map[string][]*Provisioner, len(names))
	for _, name := range names {
		res := w.Resources[name]
		ps := make([]*Provisioner, len(envs))
		var missing []*Environment
		for i, e := range envs {
			ps[i] = l.repo.ProvisionerFor(res.Type, deref(res.Class), deref(res.Id), e.Name)
			if ps[i] == nil {
				missing = append(missing, e)
			}
		}
		serving[name] = ps
		switch {
		case len(missing) == 0:
		case unprovisioned[res.Type] != "":
			l.at(file, fmt.Sprintf("resource %s: not supported yet by socle: %s (no provisioner serves it in %s: %s)", name, res.Type, envList(missing), unprovisioned[res.Type]), "resources", name, "type")
		default:
			l.at(file, fmt.Sprintf("resource %s (%s): no provisioner serves it in %s: add one under %s/", name, res.Type, envList(missing), ProvisionersDir), "resources", name, "type")
		}
	}

	phs := scorePlaceholders(d.value)
	reported := map[string]bool{}
	deps := map[string][]placeholder{} // the placeholders of a resource's params that read another
	for _, ph := range phs {
		parts := framework.SplitRefParts(ph.ref)
		if len(parts) < 2 || parts[0] != "resources" {
			continue
		}
		name, keys := parts[1], parts[2:]
		res, ok := w.Resources[name]
		if !ok {
			continue // score-go's checks report it
		}
		if ph.resource != "" && !slices.ContainsFunc(deps[ph.resource], func(o placeholder) bool { return framework.SplitRefParts(o.ref)[1] == name }) {
			deps[ph.resource] = append(deps[ph.resource], ph)
		}
		if len(keys) == 0 {
			continue // the whole resource: its outputs, whichever they are
		}
		// The environments each provisioner serves the resource in.
		// (The built-in provisioner of environment resources has the
		// outputs of each environment: environments are told apart by
		// them too.)
		var order []*Provisioner
		in := map[string][]*Environment{}
		for i, p := range serving[name] {
			if p == nil {
				continue
			}
			pk := p.Name + "\x00" + outputNames(p)
			if in[pk] == nil {
				order = append(order, p)
			}
			in[pk] = append(in[pk], envs[i])
		}
		for _, p := range order {
			pk := p.Name + "\x00" + outputNames(p)
			key := ph.ref + "\x00" + pk
			if reported[key] {
				continue
			}
			var msg string
			switch {
			case p.Output(keys[0]) == nil && p.Builtin() && res.Type == TypeEnvironment:
				msg = fmt.Sprintf("resource %s (environment) in %s has no output %q: its outputs are the environment's variables, %s; declare %s under the environment's variables in %s",
					name, envList(in[pk]), keys[0], declared(p), keys[0], PlatformFile)
			case p.Output(keys[0]) == nil:
				msg = fmt.Sprintf("resource %s (%s) in %s is provisioned by %s (%s), which has no output %q; it has %s", name, res.Type, envList(in[pk]), p.Name, provisionerWhere(p), keys[0], outputNames(p))
			case len(keys) > 1:
				msg = fmt.Sprintf("${%s}: output %q of resource %s is a string, with nothing to read inside it", ph.ref, keys[0], name)
			default:
				continue
			}
			reported[key] = true
			l.add(d.problem(msg, ph.path...))
		}
	}
	l.checkResourceCycles(d, names, deps)
}

// checkServicePorts checks the service-port resources that socle's
// built-in provisioner serves, once every app is loaded: their params
// name a workload enabled wherever the resource is served, and one of
// that workload's service ports.
func (l *loading) checkServicePorts() {
	for _, a := range l.repo.Apps {
		if a.Workload == nil {
			continue
		}
		report := l.scoreReporter(a)
		for _, name := range slices.Sorted(maps.Keys(a.Workload.Resources)) {
			res := a.Workload.Resources[name]
			if res.Type != TypeServicePort {
				continue
			}
			var in []*Environment
			for i := range l.repo.Platform.Environments {
				e := &l.repo.Platform.Environments[i]
				if p := l.repo.ProvisionerFor(res.Type, deref(res.Class), deref(res.Id), e.Name); a.EnabledIn(e.Name) && p != nil && p.Builtin() {
					in = append(in, e)
				}
			}
			if len(in) > 0 { // elsewhere a provisioner of the platform decides what its params mean
				l.checkServicePort(name, res.Params, in, func(msg string, at ...string) {
					report(msg, append([]string{"resources", name, "params"}, at...)...)
				})
			}
		}
	}
}

// scoreReporter reports problems of a's score.yaml once every app is
// loaded, at the line of the field they name: the file is parsed again
// for its lines when it has a problem.
func (l *loading) scoreReporter(a *App) func(msg string, at ...string) {
	file := path.Join(AppsDir, a.Name, ScoreFile)
	var d *document
	return func(msg string, at ...string) {
		if d == nil {
			data, err := fs.ReadFile(l.fsys, file)
			if err == nil {
				d, _ = parseYAML(file, data)
			}
		}
		if d == nil {
			l.add(Problem{File: file, Message: msg})
			return
		}
		l.add(d.problem(msg, at...))
	}
}

// checkSharedResources refuses workloads that share a resource (the same
// Score id, in an environment both are enabled in) and declare it
// differently: socle provisions a shared resource once, as the first app
// (in name order) enabled in the environment declares it, so a later one
// would get what it did not ask for. The later one is told which one it
// disagrees with, and on what.
func (l *loading) checkSharedResources() {
	type first struct {
		app  *App
		name string
		res  types.Resource
	}
	firsts := map[[2]string]first{} // (environment, id) → its first declaration
	for _, a := range l.repo.Apps {
		if a.Workload == nil {
			continue
		}
		var report func(msg string, at ...string)
		for _, name := range slices.Sorted(maps.Keys(a.Workload.Resources)) {
			res := a.Workload.Resources[name]
			id := deref(res.Id)
			if id == "" {
				continue
			}
			reported := false
			for _, e := range l.repo.Platform.Environments {
				if !a.EnabledIn(e.Name) {
					continue
				}
				o, ok := firsts[[2]string{e.Name, id}]
				if !ok {
					firsts[[2]string{e.Name, id}] = first{a, name, res}
					continue
				}
				var field, differs string
				switch {
				case reported:
					continue
				case res.Type != o.res.Type:
					field, differs = "type", fmt.Sprintf("type %s, not %s", res.Type, o.res.Type)
				case deref(res.Class) != deref(o.res.Class):
					field, differs = "class", fmt.Sprintf("class %q, not %q", deref(res.Class), deref(o.res.Class))
				case !reflect.DeepEqual(map[string]any(res.Params), map[string]any(o.res.Params)) && (len(res.Params) > 0 || len(o.res.Params) > 0):
					field, differs = "params", "other params"
				default:
					continue
				}
				if report == nil {
					report = l.scoreReporter(a)
				}
				report(fmt.Sprintf("resource %s shares id %q with resource %s of app %s (%s), but declares %s: workloads that share a resource declare it alike (socle provisions it once)",
					name, id, o.name, o.app.Name, path.Join(AppsDir, o.app.Name, ScoreFile), differs), "resources", name, field)
				reported = true
			}
		}
	}
}

// checkServicePort checks the params of service-port resource name,
// served by socle's built-in provisioner in environments in.
func (l *loading) checkServicePort(name string, params map[string]any, in []*Environment, report func(msg string, at ...string)) {
	workload, _ := params["workload"].(string)
	port, _ := params["port"].(string)
	if workload == "" {
		report(fmt.Sprintf("resource %s (service-port): params.workload names the workload whose port it reaches", name))
	}
	if port == "" {
		report(fmt.Sprintf("resource %s (service-port): params.port names the service port it reaches", name))
	}
	if workload == "" || port == "" {
		return
	}
	a := l.repo.App(workload)
	if a == nil || a.Workload == nil {
		report(fmt.Sprintf("resource %s (service-port): no workload %q under %s/%s", name, workload, AppsDir, l.knownApps()), "workload")
		return
	}
	var off []*Environment
	for _, e := range in {
		if !a.EnabledIn(e.Name) {
			off = append(off, e)
		}
	}
	if len(off) > 0 {
		report(fmt.Sprintf("resource %s (service-port): workload %s is disabled in %s", name, workload, envList(off)), "workload")
	}
	var ports []string
	if a.Workload.Service != nil {
		ports = slices.Sorted(maps.Keys(a.Workload.Service.Ports))
	}
	switch {
	case slices.Contains(ports, port):
	case len(ports) == 0:
		report(fmt.Sprintf("resource %s (service-port): workload %s has no service port %q (it has no service)", name, workload, port), "port")
	default:
		report(fmt.Sprintf("resource %s (service-port): workload %s has no service port %q (it has %s)", name, workload, port, strings.Join(ports, ", ")), "port")
	}
}

// knownApps lists the apps of the repository for a message.
func (l *loading) knownApps() string {
	names := make([]string, 0, len(l.repo.Apps))
	for _, a := range l.repo.Apps {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return " (there are " + strings.Join(names, ", ") + ")"
}

// declared says which outputs p declares, for a message.
func declared(p *Provisioner) string {
	if len(p.Outputs) == 0 {
		return "and it declares none"
	}
	return "which are " + outputNames(p)
}

// checkResourceCycles reports resources whose params read one another's
// outputs in a cycle: none could be provisioned first.
func (l *loading) checkResourceCycles(d *document, names []string, deps map[string][]placeholder) {
	target := func(ph placeholder) string { return framework.SplitRefParts(ph.ref)[1] }
	findCycles(names, func(n string) []placeholder { return deps[n] }, target, func(cycle []placeholder) {
		words := make([]string, 0, len(cycle)+1)
		for _, ph := range cycle {
			words = append(words, ph.resource)
		}
		words = append(words, target(cycle[len(cycle)-1]))
		l.add(d.problem("cycle between resources: "+strings.Join(words, " → ")+": each reads the outputs of the next in its params, so none can be provisioned first", cycle[0].path...))
	})
}

// scorePlaceholders lists the placeholders of a Score file's values where
// Score substitutes them (as score-go's loader lists them): containers'
// variables, files' content (unless noExpand), volumes' source, and
// resources' params; in the order of their paths. It reads the values,
// not the node tree: most files have no problem, and need no tree.
func scorePlaceholders(root any) []placeholder {
	var out []placeholder
	walk := func(v any, at []string, resource string) {
		WalkInputs(v, at, func(s string, at []string) {
			_, _ = framework.SubstituteString(s, func(ref string) (string, error) {
				out = append(out, placeholder{ref: ref, path: slices.Clone(at), resource: resource})
				return "", nil
			})
		})
	}
	for cname, c := range entries(field(root, "containers")) {
		at := []string{"containers", cname}
		walk(field(c, "variables"), append(at, "variables"), "")
		for fname, f := range entries(field(c, "files")) {
			if field(f, "noExpand") == true {
				continue
			}
			walk(field(f, "content"), append(at, "files", fname, "content"), "")
		}
		for vname, v := range entries(field(c, "volumes")) {
			walk(field(v, "source"), append(at, "volumes", vname, "source"), "")
		}
	}
	for rname, r := range entries(field(root, "resources")) {
		walk(field(r, "params"), []string{"resources", rname, "params"}, rname)
	}
	return out
}

// field returns the value of key in a mapping, or nil.
func field(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

// entries yields the entries of a mapping (by key, sorted) or of a list
// (by index).
func entries(v any) func(yield func(string, any) bool) {
	return func(yield func(string, any) bool) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if !yield(k, v[k]) {
					return
				}
			}
		case []any:
			for i, c := range v {
				if !yield(idx(i), c) {
					return
				}
			}
		}
	}
}

// envList names environments for a message.
func envList(envs []*Environment) string {
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	if len(names) == 1 {
		return "environment " + names[0]
	}
	return "environments " + strings.Join(names, ", ")
}

// provisionerWhere says where a provisioner is declared.
func provisionerWhere(p *Provisioner) string {
	if p.Builtin() {
		return "built-in"
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
