package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// StacksDir holds the infrastructure stacks, one directory each.
const (
	StacksDir = "stacks"
	StackFile = "stack.yaml"
)

// StackApply says when a stack's saved plan is applied.
type StackApply string

// The apply policies of a stack.
const (
	// StackApplyAuto applies each plan at once.
	StackApplyAuto StackApply = "auto"
	// StackApplyGated waits for the environment's gates (approvals,
	// windows, freezes).
	StackApplyGated StackApply = "gated"
)

// StackOnRemove says what becomes of an instance's resources when the
// instance is removed from Git.
type StackOnRemove string

// What removing an instance from Git does.
const (
	// StackKeep leaves the resources and the state as they are: socle
	// forgets the instance (the default).
	StackKeep StackOnRemove = "keep"
	// StackDestroy destroys them (terraform's destroy plan, judged by
	// the policies, then applied), as Flux's Terraform controller does
	// with destroyResourcesOnDeletion; only where the instance applies
	// automatically.
	StackDestroy StackOnRemove = "destroy"
)

// StackBackend says who keeps a stack's Terraform state.
type StackBackend string

// The keepers of a stack's state.
const (
	// StackBackendSocle keeps the state in socle's data directory.
	StackBackendSocle StackBackend = "socle"
	// StackBackendOwn leaves it to the backend block of the configuration
	// (S3, azurerm, gcs, pg…), which socle does not touch.
	StackBackendOwn StackBackend = "own"
)

// StackConfig is stacks/<stack>/stack.yaml: where the Terraform or
// OpenTofu configuration beside it is applied (one instance per landing
// zone or per environment), after which stacks, with which inputs.
type StackConfig struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=Stack"`
	// Description is free text shown in the portal.
	Description string `json:"description,omitempty"`
	// Owner is the team that answers for the stack (teams.yaml): its
	// approvers approve the plans of production-like instances, its
	// developers those of the others. Without an owner only admins
	// approve.
	Owner string `json:"owner,omitempty"`
	// Zones the stack is applied to, one instance per landing zone: a
	// platform stack (connectivity, identity, management). A stack lists
	// zones or environments, not both.
	Zones []string `json:"zones,omitempty" jsonschema:"minItems=1"`
	// Environments the stack is applied to, one instance per environment.
	Environments []string `json:"environments,omitempty" jsonschema:"minItems=1"`
	// DependsOn names the stacks applied before this one; inputs may read
	// their outputs.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Inputs are the configuration's variables, for every instance. A
	// string may read ${stacks.<stack>.outputs.<key>} (an output of a
	// stack listed in dependsOn), ${environment.<field>} (name, zone,
	// description, sync) and ${zone.<field>} (name, kind, description,
	// provider, account); $${ writes ${.
	Inputs map[string]any `json:"inputs,omitempty"`
	// Overrides set inputs of one instance, keyed by its environment or
	// zone; they replace the common inputs of the same name.
	Overrides map[string]StackOverride `json:"overrides,omitempty"`
	// Apply is auto (a plan is applied at once) or gated (it waits for
	// the environment's gates); default: as the environment syncs.
	Apply StackApply `json:"apply,omitempty" jsonschema:"enum=auto,enum=gated"`
	// Drift is how often the instances are checked for changes made
	// outside socle, e.g. 4h; none: never.
	Drift Duration `json:"drift,omitempty"`
	// Exports names the outputs that apps may use.
	Exports []string `json:"exports,omitempty"`
	// Backend is socle (default: socle keeps the state in its data
	// directory) or own (the configuration's backend block keeps it, and
	// socle leaves it alone).
	Backend StackBackend `json:"backend,omitempty" jsonschema:"enum=socle,enum=own"`
	// OnRemove is keep (default: an instance removed from Git, or its
	// whole stack, leaves its resources as they are) or destroy (they
	// are destroyed, from the configuration and inputs of the instance's
	// last plan): for instances that apply automatically only, as in an
	// ephemeral environment. Behind gates, destroy by removing the
	// resources from the configuration (a plan that is approved), then
	// the instance.
	OnRemove StackOnRemove `json:"onRemove,omitempty" jsonschema:"enum=keep,enum=destroy"`
}

// StackOverride holds what one instance of a stack sets of its own.
type StackOverride struct {
	// Inputs of this instance, over the stack's.
	Inputs map[string]any `json:"inputs,omitempty"`
}

// Stack is one infrastructure stack of the repository.
type Stack struct {
	// Name is the directory name under stacks/.
	Name string `json:"name"`
	// Config is stacks/<stack>/stack.yaml.
	Config StackConfig `json:"config"`
	// Source is a content hash of every file of the stack and of the
	// local modules it calls, with their paths.
	Source string `json:"source"`
	// Files are the repository paths of those files, sorted.
	Files []string `json:"files"`
	// Outputs and Variables of the root module, by name.
	Outputs   map[string]TFOutput   `json:"outputs"`
	Variables map[string]TFVariable `json:"variables"`
	// BackendType is the type of the configuration's backend block, ""
	// without one.
	BackendType string `json:"backendType,omitempty"`
	// tfOK: the configuration parsed, so that its outputs and variables
	// are all known.
	tfOK bool
	// checked: stack.yaml is valid by its schema, and decoded whole.
	checked bool
}

// PerZone reports whether the stack has one instance per zone (else one
// per environment).
func (s *Stack) PerZone() bool { return len(s.Config.Zones) > 0 }

// Instances names the stack's instances: its zones or its environments.
func (s *Stack) Instances() []string {
	if s.PerZone() {
		return s.Config.Zones
	}
	return s.Config.Environments
}

// InstanceInputs is the inputs of one instance as written: the stack's,
// with the instance's overrides over them.
func (s *Stack) InstanceInputs(instance string) map[string]any {
	in := maps.Clone(s.Config.Inputs)
	if o, ok := s.Config.Overrides[instance]; ok {
		if in == nil {
			in = map[string]any{}
		}
		maps.Copy(in, o.Inputs)
	}
	return in
}

// StackApplyOf is when s's instance inst applies its plans: the stack's
// own apply, else gated in an environment that syncs manually (its
// changes are promoted), auto in one that follows Git and in a landing
// zone.
func (r *Repo) StackApplyOf(s *Stack, inst string) StackApply {
	if s.Config.Apply != "" {
		return s.Config.Apply
	}
	if e := r.Environment(inst); e != nil && !s.PerZone() && e.Sync == SyncManual {
		return StackApplyGated
	}
	return StackApplyAuto
}

// Stack returns the stack with that name, or nil.
func (r *Repo) Stack(name string) *Stack {
	i, ok := slices.BinarySearchFunc(r.Stacks, name, func(s *Stack, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return nil
	}
	return r.Stacks[i]
}

// Zone returns the zone with that name, or nil.
func (r *Repo) Zone(name string) *Zone {
	for i := range r.Platform.Zones {
		if r.Platform.Zones[i].Name == name {
			return &r.Platform.Zones[i]
		}
	}
	return nil
}

// UpstreamInstance says which instance of up the instance inst of s
// reads: the one of the same name; for an environment, the one of its
// zone; else the only one. ok is false when none of these holds.
func (r *Repo) UpstreamInstance(s *Stack, inst string, up *Stack) (string, bool) {
	ups := up.Instances()
	if up.PerZone() == s.PerZone() && slices.Contains(ups, inst) {
		return inst, true
	}
	if !s.PerZone() && up.PerZone() {
		if e := r.Environment(inst); e != nil && e.Zone != "" && slices.Contains(ups, e.Zone) {
			return e.Zone, true
		}
	}
	if len(ups) == 1 {
		return ups[0], true
	}
	return "", false
}

// StackInstanceFor says which instance of s serves environment env (a
// resource a stack provisioner serves there takes that instance's
// outputs): env itself for a stack per environment that lists it, env's
// zone for a stack per zone that lists it. ok is false otherwise.
func (r *Repo) StackInstanceFor(s *Stack, env string) (string, bool) {
	if !s.PerZone() {
		return env, slices.Contains(s.Config.Environments, env)
	}
	if e := r.Environment(env); e != nil && e.Zone != "" && slices.Contains(s.Config.Zones, e.Zone) {
		return e.Zone, true
	}
	return "", false
}

// The bounds of one stack's files, beyond those of each file.
const (
	maxStackFiles = 4096
	maxStackBytes = 64 << 20
)

func (l *loading) loadStacks() {
	for _, name := range l.dirs(StacksDir) {
		if s := l.loadStack(name); s != nil {
			l.repo.Stacks = append(l.repo.Stacks, s)
		}
	}
}

// stackFiles collects the files of a stack: its directory and the local
// modules it calls, by repository path.
type stackFiles struct {
	l     *loading
	data  map[string][]byte
	bytes int64
	over  bool
}

// walk adds every regular file under dir; false when dir cannot be read.
func (sf *stackFiles) walk(dir string) bool {
	err := fs.WalkDir(sf.l.fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type() == fs.ModeSymlink {
			sf.l.add(linkError(sf.l.fsys, p).Problem())
			return nil
		}
		if e.IsDir() || sf.over {
			return nil
		}
		if _, ok := sf.data[p]; ok {
			return nil
		}
		data, err := readFile(sf.l.fsys, p, sf.l.budget.limits())
		if err != nil {
			sf.l.add(FileProblem(p, err))
			return nil
		}
		sf.bytes += int64(len(data))
		if len(sf.data) >= maxStackFiles || sf.bytes > maxStackBytes {
			sf.over = true
			sf.l.add(Problem{File: p, Message: fmt.Sprintf("a stack with the local modules it calls holds at most %d files and %d bytes; socle stops reading here", maxStackFiles, maxStackBytes)})
			return nil
		}
		sf.data[p] = data
		return nil
	})
	if err != nil {
		sf.l.add(Problem{File: dir, Message: err.Error()})
		return false
	}
	return true
}

// tfIn lists the Terraform files directly in dir, sorted.
func (sf *stackFiles) tfIn(dir string) []string {
	var out []string
	for p := range sf.data {
		if path.Dir(p) == dir && isTFFile(path.Base(p)) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (l *loading) loadStack(name string) *Stack {
	dir := path.Join(StacksDir, name)
	s := &Stack{Name: name}
	if !appName.MatchString(name) {
		l.add(Problem{File: dir, Message: fmt.Sprintf("stack directory %q is not a valid stack name: lowercase letters, digits and dashes, at most 63", name)})
	}
	sf := &stackFiles{l: l, data: map[string][]byte{}}
	if !sf.walk(dir) {
		return nil
	}
	file := path.Join(dir, StackFile)
	if conf, ok := sf.data[file]; !ok {
		l.add(Problem{File: file, Message: "missing: every stack needs a stack.yaml (apiVersion socle.dev/v1, kind Stack) saying where it is applied"})
	} else if d := l.parse(file, conf, "stack"); d != nil {
		l.decode(d, &s.Config)
		// A file the schema refuses may decode only in part: what refers
		// from it is checked once it is valid.
		s.checked = !l.hasProblemIn(file)
	}
	root := sf.tfIn(dir)
	if len(root) == 0 {
		l.add(Problem{File: dir, Message: "no Terraform configuration: a stack holds *.tf files beside its stack.yaml"})
	}
	m := l.tfModule(sf, dir)
	s.tfOK = len(root) > 0 && len(m.problems) == 0
	s.Outputs, s.Variables = m.outputs, m.variables
	if m.backend != nil {
		s.BackendType = m.backend.typ
		if s.Config.Backend != StackBackendOwn {
			l.add(Problem{File: m.backend.file, Line: m.backend.line, Column: m.backend.col, Message: fmt.Sprintf("the configuration declares backend %q, but socle keeps this stack's state (stack.yaml: backend socle, the default): remove the block, or set backend: own in %s", m.backend.typ, file)})
		}
	} else if s.Config.Backend == StackBackendOwn {
		l.at(file, "backend own: the configuration's backend block keeps the state, but no *.tf of the stack declares one (terraform { backend \"…\" { … } })", "backend")
	}
	l.followModules(sf, dir, m.calls)
	s.Files = slices.Sorted(maps.Keys(sf.data))
	h := NewSourceHash()
	for _, p := range s.Files {
		h.Add(p, sf.data[p])
	}
	s.Source = h.Sum()
	return s
}

// SourceHash computes Stack.Source: each file's repository path, length
// and text, in the order of Stack.Files. What runs a stack hashes the
// files it copies with it too, to check they are those that were loaded.
type SourceHash struct{ h hash.Hash }

// NewSourceHash returns an empty SourceHash.
func NewSourceHash() *SourceHash { return &SourceHash{h: sha256.New()} }

// Add hashes one file.
func (s *SourceHash) Add(path string, data []byte) {
	fmt.Fprintf(s.h, "%s\x00%d\x00", path, len(data))
	s.h.Write(data)
}

// Sum is the hash of the files added, as "sha256:<hex>".
func (s *SourceHash) Sum() string { return "sha256:" + hex.EncodeToString(s.h.Sum(nil)) }

// followModules adds the files of the local modules that calls reach
// (module blocks whose source is ./… or ../…), transitively: they are part
// of what the stack applies, so of its content hash and of what is copied
// to run it.
func (l *loading) followModules(sf *stackFiles, stackDir string, calls []tfCall) {
	seen := map[string]bool{stackDir: true}
	for len(calls) > 0 {
		c := calls[0]
		calls = calls[1:]
		dir := path.Join(path.Dir(c.file), c.source)
		if dir == ".." || strings.HasPrefix(dir, "../") {
			l.add(Problem{File: c.file, Line: c.line, Column: c.col, Message: fmt.Sprintf("module %q: source %q leads out of the repository", c.moduleName, c.source)})
			continue
		}
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if len(seen) > maxTFModules {
			l.add(Problem{File: c.file, Line: c.line, Column: c.col, Message: fmt.Sprintf("a stack calls at most %d local module directories", maxTFModules)})
			return
		}
		inStack := strings.HasPrefix(dir, stackDir+"/") // read with the stack's own directory
		if inStack && !sf.has(dir) || !inStack && !isDir(l.fsys, dir) {
			l.add(Problem{File: c.file, Line: c.line, Column: c.col, Message: fmt.Sprintf("module %q: no directory %s in the repository", c.moduleName, dir)})
			continue
		}
		if !inStack {
			if err := parentsNotLinks(l.fsys, dir+"/x"); err != nil {
				l.add(FileProblem(dir, err))
				continue
			}
			if !sf.walk(dir) {
				continue
			}
		}
		calls = append(calls, l.tfModule(sf, dir).calls...)
	}
}

// tfModule parses a module directory's Terraform files once per revision
// (stacks share modules), reporting their problems once.
func (l *loading) tfModule(sf *stackFiles, dir string) *tfModule {
	if m, ok := l.tfModules[dir]; ok {
		return m
	}
	m := parseTFFiles(sf.data, sf.tfIn(dir))
	l.add(m.problems...)
	l.tfModules[dir] = m
	return m
}

func isDir(fsys fs.FS, dir string) bool {
	fi, err := fs.Stat(fsys, dir)
	return err == nil && fi.IsDir()
}

func (sf *stackFiles) has(dir string) bool {
	for p := range sf.data {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// checkStacks checks what refers from stack to stack and to the platform.
func (l *loading) checkStacks() {
	for _, s := range l.repo.Stacks {
		l.checkStack(s)
	}
	l.checkStackCycles()
}

func (l *loading) checkStack(s *Stack) {
	file := path.Join(StacksDir, s.Name, StackFile)
	if !s.checked {
		return // missing, unreadable or invalid: said already
	}
	c := &s.Config
	switch {
	case len(c.Zones) > 0 && len(c.Environments) > 0:
		l.at(file, "a stack is applied per zone or per environment, not both: list zones or environments", "environments")
	case len(c.Zones) == 0 && len(c.Environments) == 0:
		l.at(file, "missing zones or environments: a stack names where it is applied, one instance each (zones: [connectivity], or environments: [dev, prod])")
	}
	l.refOpt(file, "team", c.Owner, l.names.teams, "owner")
	l.checkNameList(file, "zone", c.Zones, l.names.zones, "zones")
	l.checkNameList(file, "environment", c.Environments, l.names.envs, "environments")
	instances := map[string]bool{}
	for _, i := range s.Instances() {
		instances[i] = true
	}
	for _, k := range slices.Sorted(maps.Keys(c.Overrides)) {
		if !instances[k] {
			what := "environment"
			if s.PerZone() {
				what = "zone"
			}
			l.atKey(file, k, fmt.Sprintf("override for %s %q, which the stack is not applied to%s", what, k, known(instances)), "overrides")
		}
	}
	deps := map[string]bool{}
	for i, d := range c.DependsOn {
		at := []string{"dependsOn", idx(i)}
		switch {
		case d == s.Name:
			l.at(file, fmt.Sprintf("stack %q depends on itself", d), at...)
		case deps[d]:
			l.at(file, fmt.Sprintf("stack %q is listed twice", d), at...)
		case l.repo.Stack(d) == nil:
			l.at(file, fmt.Sprintf("no stack %q under stacks/%s", d, l.knownStacks()), at...)
		}
		deps[d] = true
	}
	if c.OnRemove == StackDestroy {
		var gated []string
		for _, i := range s.Instances() {
			if l.repo.StackApplyOf(s, i) == StackApplyGated {
				gated = append(gated, i)
			}
		}
		if len(gated) > 0 {
			l.at(file, fmt.Sprintf("destroy, but %s applies behind gates: a destroy there is a plan people approve; remove the resources from the configuration first, then the instance (or set apply: auto)", strings.Join(gated, ", ")), "onRemove")
		}
	}
	if c.Drift != 0 && c.Drift < Duration(60e9) {
		l.at(file, fmt.Sprintf("a drift check runs at most every minute, found %s", c.Drift), "drift")
	}
	for i, e := range c.Exports {
		if s.tfOK && s.Outputs[e].Name == "" {
			l.at(file, fmt.Sprintf("exports %q, which no output block of the stack declares%s", e, knownIn("outputs", s.Outputs)), "exports", idx(i))
		}
	}
	l.checkStackInputs(s, file, c.Inputs, s.Instances(), "inputs")
	for _, k := range slices.Sorted(maps.Keys(c.Overrides)) {
		if instances[k] {
			l.checkStackInputs(s, file, c.Overrides[k].Inputs, []string{k}, "overrides", k, "inputs")
		}
	}
	if s.tfOK && len(instances) > 0 {
		inputs := make([]map[string]any, len(s.Instances()))
		for j, i := range s.Instances() {
			inputs[j] = s.InstanceInputs(i)
		}
		for _, v := range slices.Sorted(maps.Keys(s.Variables)) {
			if !s.Variables[v].Required {
				continue
			}
			var missing []string
			for j, i := range s.Instances() {
				if _, ok := inputs[j][v]; !ok {
					missing = append(missing, i)
				}
			}
			if len(missing) > 0 {
				tv := s.Variables[v]
				l.at(file, fmt.Sprintf("variable %q (%s:%d) has no default and no input for %s", v, tv.File, tv.Line, strings.Join(missing, ", ")), "inputs")
			}
		}
	}
}

// checkNameList checks a list of names (zones, environments, …) at path
// at: each listed once, and known.
func (l *loading) checkNameList(file, what string, list []string, set map[string]bool, at ...string) {
	seen := map[string]bool{}
	for i, n := range list {
		if seen[n] {
			l.at(file, fmt.Sprintf("%s %q is listed twice", what, n), append(slices.Clip(at), idx(i))...)
			continue
		}
		seen[n] = true
		l.ref(file, what, n, set, append(slices.Clip(at), idx(i))...)
	}
}

// checkStackInputs checks inputs that instances of s take: that they set
// variables the configuration declares, and what their references read.
func (l *loading) checkStackInputs(s *Stack, file string, inputs map[string]any, instances []string, at ...string) {
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		field := append(slices.Clip(at), name)
		if s.tfOK {
			if _, ok := s.Variables[name]; !ok {
				l.atKey(file, name, fmt.Sprintf("no variable %q in the stack's configuration%s", name, knownIn("variables", s.Variables)), at...)
			}
		}
		WalkInputs(inputs[name], field, func(str string, p []string) {
			parts, err := ParseInput(str)
			if err != nil {
				l.at(file, err.Error(), p...)
				return
			}
			for _, part := range parts {
				if part.Ref == nil {
					continue
				}
				l.checkRef(s, file, *part.Ref, instances, p)
				// A secret must stay one: terraform redacts a value in
				// its plans and logs only where the variable says so.
				if up := l.repo.Stack(part.Ref.Stack); part.Ref.Scope == RefStack && up != nil && up.Outputs[part.Ref.Key].Sensitive {
					if v, ok := s.Variables[name]; ok && !v.Sensitive {
						l.at(file, fmt.Sprintf("%s is a sensitive output: declare variable %q with sensitive = true (%s:%d), so that terraform redacts it", part.Ref, name, v.File, v.Line), p...)
					}
				}
			}
		})
	}
}

func (l *loading) checkRef(s *Stack, file string, ref InputRef, instances []string, at []string) {
	switch ref.Scope {
	case RefEnvironment:
		if s.PerZone() {
			l.at(file, fmt.Sprintf("%s: the stack is applied per zone, so its instances have no environment", ref), at...)
		}
	case RefZone:
		if !s.PerZone() {
			for _, i := range instances {
				if e := l.repo.Environment(i); e != nil && e.Zone == "" {
					l.at(file, fmt.Sprintf("%s: environment %q belongs to no zone", ref, i), at...)
					return
				}
			}
		}
	case RefStack:
		up := l.repo.Stack(ref.Stack)
		switch {
		case up == nil:
			l.at(file, fmt.Sprintf("%s: no stack %q under stacks/", ref, ref.Stack), at...)
			return
		case !slices.Contains(s.Config.DependsOn, ref.Stack):
			l.at(file, fmt.Sprintf("%s: stack %q is not in dependsOn; list it there, so that it is applied first", ref, ref.Stack), at...)
		}
		if up.tfOK && up.Outputs[ref.Key].Name == "" {
			l.at(file, fmt.Sprintf("%s: stack %q declares no output %q%s", ref, ref.Stack, ref.Key, knownIn("outputs", up.Outputs)), at...)
		}
		for _, i := range instances {
			if _, ok := l.repo.UpstreamInstance(s, i, up); !ok && len(up.Instances()) > 0 {
				l.at(file, fmt.Sprintf("%s: stack %q has several instances (%s) and none is %q or its zone, so which one %q reads is not clear", ref, up.Name, strings.Join(up.Instances(), ", "), i, i), at...)
				return
			}
		}
	}
}

// checkStackCycles reports each dependsOn cycle once, at the first stack
// (by name) on it, naming every stack of the cycle.
func (l *loading) checkStackCycles() {
	names := make([]string, len(l.repo.Stacks))
	for i, s := range l.repo.Stacks { // sorted by name
		names[i] = s.Name
	}
	upstreams := func(n string) []string {
		return slices.DeleteFunc(slices.Clone(l.repo.Stack(n).Config.DependsOn), func(d string) bool {
			return l.repo.Stack(d) == nil || d == n // reported by checkStack
		})
	}
	reported := map[string]bool{}
	findCycles(names, upstreams, func(d string) string { return d }, func(cycle []string) {
		l.reportCycle(cycle, reported)
	})
}

func (l *loading) reportCycle(cycle []string, reported map[string]bool) {
	key := strings.Join(slices.Sorted(slices.Values(cycle)), ",")
	if reported[key] {
		return
	}
	reported[key] = true
	// Start the cycle at its first stack by name, so that it reads the
	// same whichever stack the search began with.
	first := slices.Index(cycle, slices.Min(cycle))
	cycle = append(slices.Clone(cycle[first:]), cycle[:first]...)
	next := cycle[(1)%len(cycle)]
	i := slices.Index(l.repo.Stack(cycle[0]).Config.DependsOn, next)
	names := append(cycle, cycle[0])
	l.at(path.Join(StacksDir, cycle[0], StackFile), "dependsOn cycle: "+strings.Join(names, " → "), "dependsOn", strconv.Itoa(i))
}

// knownStacks lists the stacks for a problem.
func (l *loading) knownStacks() string {
	set := make(map[string]bool, len(l.repo.Stacks))
	for _, s := range l.repo.Stacks {
		set[s.Name] = true
	}
	return known(set)
}

// knownIn lists the names of m for a problem, as known does, under what
// ("outputs", "variables").
func knownIn[V any](what string, m map[string]V) string {
	if len(m) == 0 {
		return " (it declares none)"
	}
	set := make(map[string]bool, len(m))
	for n := range m {
		set[n] = true
	}
	return strings.Replace(known(set), "known", what, 1)
}
