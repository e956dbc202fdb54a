package policy

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	scoretypes "github.com/score-spec/score-go/types"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// The types below are what CEL expressions see. Their json tags are the
// field names in CEL, the same as in the YAML files people write. Score's
// container and service types are used as they are.

// change is the CEL variable change.
type change struct {
	App    string `json:"app"`
	Env    string `json:"env"`
	Action string `json:"action"`
	// Operation is plan, deploy, promote or rollback.
	Operation string `json:"operation"`
	// Artifact is the image digest the change runs, empty when socle builds
	// the app from source at the revision.
	Artifact string `json:"artifact"`
	// Changed lists the paths of the fields an update changes
	// (containers.web.variables.LOG_LEVEL, replicas.min).
	Changed []string `json:"changed"`
	Old     *unit    `json:"old"`
	New     *unit    `json:"new"`
}

// unit is a plan.Unit with values CEL can read: durations as durations,
// resource params as maps. TestUnitViewCoversPlanUnit keeps it complete.
type unit struct {
	App      string `json:"app"`
	Env      string `json:"env"`
	Team     string `json:"team"`
	Zone     string `json:"zone"`
	Revision string `json:"revision"`
	Source   string `json:"source"`
	Artifact string `json:"artifact"`
	Rollback bool   `json:"rollback"`
	// Emergency is the reason of the emergency change that pinned the
	// release, "" for none: a policy may ask, say, for an incident number.
	Emergency  string                          `json:"emergency"`
	Runtime    string                          `json:"runtime"`
	Metadata   *structpb.Struct                `json:"metadata"`
	Replicas   spec.Replicas                   `json:"replicas"`
	Rollout    rollout                         `json:"rollout"`
	Containers map[string]scoretypes.Container `json:"containers"`
	Service    *scoretypes.WorkloadService     `json:"service"`
	Resources  map[string]resource             `json:"resources"`
	// Secrets are the names of the variables socle.yaml marks secret.
	Secrets []string `json:"secrets"`
	// SecretSources says where each secret's value comes from, by name:
	// a reference to a secret manager (ref+vault://…), or the value
	// itself (a SOPS file's, a placeholder). A policy can require
	// references in production. Not a field of plan.Unit: derived from
	// the variables.
	SecretSources map[string]secretSource `json:"secretSources"`
	// Routes are the hosts and path prefixes the app is served on beside
	// its own host (socle.yaml routes): a policy can, say, keep public
	// hosts out of the sandbox.
	Routes []route `json:"routes"`
}

// route is a spec.Route with every field present.
type route struct {
	Host  string `json:"host"`
	Path  string `json:"path"`
	Strip bool   `json:"strip"`
	Port  string `json:"port"`
}

// secretSource is where a secret's value comes from.
type secretSource struct {
	// Reference is true when the value is a reference to a secret
	// manager in every container that has the variable, false when a
	// container has the value itself, or none has the variable.
	Reference bool `json:"reference"`
	// Scheme is the reference's scheme (vault), "" when it is none.
	Scheme string `json:"scheme"`
}

// secretSources are the sources of u's secrets.
func secretSources(u *plan.Unit) map[string]secretSource {
	if len(u.Secrets) == 0 {
		return nil
	}
	out := make(map[string]secretSource, len(u.Secrets))
	for _, n := range u.Secrets {
		var src secretSource
		for _, cname := range slices.Sorted(maps.Keys(u.Containers)) {
			v, ok := u.Containers[cname].Variables[n]
			if !ok {
				continue
			}
			ref, isRef, err := spec.ParseSecretRef(v)
			if !isRef || err != nil {
				src = secretSource{}
				break
			}
			if src.Scheme == "" {
				src = secretSource{Reference: true, Scheme: ref.Scheme}
			}
		}
		out[n] = src
	}
	return out
}

type rollout struct {
	Strategy       string   `json:"strategy"`
	MaxSurge       int      `json:"maxSurge"`
	MaxUnavailable int      `json:"maxUnavailable"`
	Steps          []step   `json:"steps"`
	Analysis       analysis `json:"analysis"`
}

type step struct {
	Weight int           `json:"weight"`
	Pause  time.Duration `json:"pause"`
}

type analysis struct {
	MaxErrorRate float64       `json:"maxErrorRate"`
	MaxP95       time.Duration `json:"maxP95"`
	MinRequests  int           `json:"minRequests"`
}

type resource struct {
	Type     string           `json:"type"`
	Class    string           `json:"class"`
	ID       string           `json:"id"`
	Params   *structpb.Struct `json:"params"`
	Metadata *structpb.Struct `json:"metadata"`
}

// environment is the CEL variable environment, and the values of
// platform.environments.
type environment struct {
	Name     string `json:"name"`
	Zone     string `json:"zone"`
	ZoneKind string `json:"zoneKind"`
	// Position is the index in socle.yaml's environments, which are in
	// promotion order.
	Position int `json:"position"`
	// From is the environment releases are promoted from (promotion.from).
	From string `json:"from"`
	// Production is true for an environment that ends a promotion line.
	Production bool   `json:"production"`
	Sync       string `json:"sync"`
}

// platform is the CEL variable platform.
type platform struct {
	Name string `json:"name"`
	// Zones maps a zone's name to its kind.
	Zones        map[string]string      `json:"zones"`
	Environments map[string]environment `json:"environments"`
	Teams        map[string]team        `json:"teams"`
}

type team struct {
	// Members maps a user to their role in the team.
	Members map[string]string `json:"members"`
}

func viewUnit(u *plan.Unit) *unit {
	if u == nil {
		return nil
	}
	v := &unit{
		App: u.App, Env: u.Env, Team: u.Team, Zone: u.Zone, Revision: u.Revision, Source: u.Source,
		Artifact: u.Artifact, Rollback: u.Rollback, Emergency: u.Emergency, Runtime: string(u.Runtime), Metadata: toStruct(u.Metadata), Replicas: u.Replicas,
		Rollout: rollout{
			Strategy: string(u.Rollout.Strategy),
			MaxSurge: deref(u.Rollout.MaxSurge), MaxUnavailable: deref(u.Rollout.MaxUnavailable),
		},
		Containers:    u.Containers,
		Service:       u.Service,
		Secrets:       u.Secrets,
		SecretSources: secretSources(u),
	}
	for _, r := range u.Routes {
		v.Routes = append(v.Routes, route{Host: r.Host, Path: r.Path, Strip: r.Strip, Port: r.Port})
	}
	for _, s := range u.Rollout.Steps {
		v.Rollout.Steps = append(v.Rollout.Steps, step{Weight: s.Weight, Pause: time.Duration(s.Pause)})
	}
	if a := u.Rollout.Analysis; a != nil {
		v.Rollout.Analysis = analysis{MaxErrorRate: deref(a.MaxErrorRate), MaxP95: time.Duration(a.MaxP95), MinRequests: a.MinRequests}
	}
	if len(u.Resources) > 0 {
		v.Resources = make(map[string]resource, len(u.Resources))
		for name, r := range u.Resources {
			v.Resources[name] = resource{Type: r.Type, Class: deref(r.Class), ID: deref(r.Id), Params: toStruct(r.Params), Metadata: toStruct(r.Metadata)}
		}
	}
	return v
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// toStruct makes free-form YAML values a CEL map; values that JSON could not
// carry either (none come from YAML) leave the map empty.
func toStruct(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil
	}
	return s
}

// platformContext is what a Set knows of the platform, computed once.
type platformContext struct {
	envs    map[string]*environment
	envVals map[string]ref.Val
	teams   map[string]bool
	value   ref.Val
	// prodNames are the lowercase names that designate production: the
	// production environments, their zones and the zones' accounts.
	prodNames []string
	// fits is true when the platform is within the bounds of bounds.go.
	fits bool
	// zoneKinds maps a zone to its kind; prodZones are the zones a stack
	// applied per zone is production in: those that hold a production
	// environment, and the platform zones, which serve every environment.
	zoneKinds map[string]string
	prodZones map[string]bool
}

func newPlatformContext(r *spec.Repo) *platformContext {
	adapt := celEnv().CELTypeAdapter()
	kinds := map[string]spec.ZoneKind{}
	p := &platform{Name: r.Platform.Metadata.Name, Zones: map[string]string{}, Environments: map[string]environment{}, Teams: map[string]team{}}
	for _, z := range r.Platform.Zones {
		kinds[z.Name] = z.Kind
		p.Zones[z.Name] = string(z.Kind)
	}
	promotedFrom := map[string]bool{}
	for _, e := range r.Platform.Environments {
		if e.Promotion != nil {
			promotedFrom[e.Promotion.From] = true
		}
	}
	c := &platformContext{envs: map[string]*environment{}, envVals: map[string]ref.Val{}, teams: map[string]bool{},
		zoneKinds: p.Zones, prodZones: map[string]bool{}}
	for _, z := range r.Platform.Zones {
		if z.Kind == spec.ZonePlatform {
			c.prodZones[z.Name] = true
		}
	}
	prod := map[string]bool{}
	for i, e := range r.Platform.Environments {
		v := environment{Name: e.Name, Zone: e.Zone, ZoneKind: string(kinds[e.Zone]), Position: i, Sync: string(e.Sync)}
		if e.Promotion != nil {
			v.From = e.Promotion.From
			v.Production = !promotedFrom[e.Name]
		}
		p.Environments[e.Name] = v
		c.envs[e.Name] = &v
		c.envVals[e.Name] = adapt.NativeToValue(&v)
		if v.Production {
			prod[e.Name] = true
			if e.Zone != "" {
				prod[e.Zone] = true
				c.prodZones[e.Zone] = true
			}
			for _, z := range r.Platform.Zones {
				if z.Name == e.Zone && z.Account != "" {
					prod[z.Account] = true
				}
			}
		}
	}
	for name := range prod {
		c.prodNames = append(c.prodNames, strings.ToLower(name))
	}
	slices.Sort(c.prodNames)
	for _, t := range r.Teams.Teams {
		members := make(map[string]string, len(t.Members))
		for _, m := range t.Members {
			members[m.User] = string(m.Role)
		}
		p.Teams[t.Name] = team{Members: members}
		c.teams[t.Name] = true
	}
	c.value = adapt.NativeToValue(p)
	c.fits = platformFits(p)
	return c
}

// evaluation is one change being judged, with what every policy asks of it
// computed once.
type evaluation struct {
	set                            *Set
	in                             *Input
	unit                           *plan.Unit // what will run
	app, env, zone, team, artifact string
	environment                    *environment
	act                            *activation
	history                        historyVal
	// fits is true when the change is within the bounds of bounds.go,
	// known once the activation is built.
	fits bool
	// stack is the stack change judged, nil for an app's change (whose
	// unit, app and team are then empty).
	stack *StackInput
}

func (s *Set) newEvaluation(in *Input) *evaluation {
	u := in.Change.Desired
	ev := &evaluation{set: s, in: in, unit: u, app: in.Change.App, env: in.Change.Env, team: u.Team, artifact: in.Artifact}
	if ev.app == "" {
		ev.app = u.App
	}
	if ev.env == "" {
		ev.env = u.Env
	}
	if ev.artifact == "" {
		ev.artifact = u.Artifact
	}
	ev.environment = s.ctx.envs[ev.env]
	if ev.environment == nil {
		ev.environment = &environment{Name: ev.env, Zone: u.Zone, Position: -1}
	}
	ev.zone = ev.environment.Zone
	ev.history = historyVal{h: in.History, app: ev.app, now: in.Now}
	return ev
}

func (ev *evaluation) operation() string {
	if ev.in.Operation == "" {
		return string(Plan)
	}
	return string(ev.in.Operation)
}

// activation builds the CEL variables on first use: Go built-ins need none.
func (ev *evaluation) activation() *activation {
	if ev.act != nil {
		return ev.act
	}
	if ev.stack != nil {
		return ev.stackActivation()
	}
	adapt := celEnv().CELTypeAdapter()
	c := &change{App: ev.app, Env: ev.env, Action: string(ev.in.Change.Action), Operation: ev.operation(), Artifact: ev.artifact,
		Old: viewUnit(ev.in.Old), New: viewUnit(ev.unit)}
	if n := len(ev.in.Change.Fields); n > 0 {
		c.Changed = make([]string, n)
		for i, f := range ev.in.Change.Fields {
			c.Changed[i] = f.Path
		}
	}
	envVal, ok := ev.set.ctx.envVals[ev.env]
	if !ok {
		envVal = adapt.NativeToValue(ev.environment)
	}
	ev.fits = ev.set.ctx.fits && changeFits(c, ev.in.Author, ev.in.Approvers, ev.in.Old, ev.unit)
	ev.act = &activation{
		change:      adapt.NativeToValue(c),
		environment: envVal,
		platform:    ev.set.ctx.value,
		now:         types.Timestamp{Time: ev.in.Now},
		author:      types.String(ev.in.Author),
		approvers:   adapt.NativeToValue(nonNilStrings(ev.in.Approvers)),
		history:     &ev.history,
	}
	return ev.act
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (ev *evaluation) selects(p *compiled) bool {
	m := p.match
	if p.stacks != (ev.stack != nil) || ev.stack != nil && len(m.Stacks) > 0 && !slices.Contains(m.Stacks, ev.stack.Stack) {
		return false
	}
	if len(m.Environments) > 0 && !slices.Contains(m.Environments, ev.env) ||
		len(m.Zones) > 0 && !slices.Contains(m.Zones, ev.zone) ||
		len(m.Apps) > 0 && !slices.Contains(m.Apps, ev.app) {
		return false
	}
	return p.applies == nil || p.applies(ev)
}

// placeholder matches {{name}} in a message, spaces allowed inside the braces.
var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z]+)\s*\}\}`)

// placeholders fill a policy's message.
var placeholders = map[string]func(*evaluation) string{
	"app":      func(ev *evaluation) string { return ev.app },
	"env":      func(ev *evaluation) string { return ev.env },
	"team":     func(ev *evaluation) string { return ev.team },
	"zone":     func(ev *evaluation) string { return ev.zone },
	"artifact": func(ev *evaluation) string { return ev.artifact },
	"author":   func(ev *evaluation) string { return ev.in.Author },
	"from":     func(ev *evaluation) string { return ev.environment.From },
}

func init() { maps.Copy(placeholders, stackPlaceholders()) }

// placeholderList lists the placeholders of a policy's message: a stack
// policy's have no app, an app policy's no stack.
func placeholderList(stacks bool) string {
	var names []string
	for _, n := range slices.Sorted(maps.Keys(placeholders)) {
		if knownPlaceholder(n, stacks) {
			names = append(names, "{{"+n+"}}")
		}
	}
	return strings.Join(names, ", ")
}

func knownPlaceholder(name string, stacks bool) bool {
	if _, ok := placeholders[name]; !ok {
		return false
	}
	if stacks {
		return !slices.Contains(appFields, name)
	}
	return !slices.Contains(stackFields, name)
}

func unknownPlaceholders(msg string, stacks bool) []string {
	var bad []string
	for _, m := range placeholder.FindAllStringSubmatch(msg, -1) {
		if !knownPlaceholder(m[1], stacks) {
			bad = append(bad, m[0])
		}
	}
	return bad
}

func (ev *evaluation) render(msg string) string {
	return placeholder.ReplaceAllStringFunc(msg, func(m string) string {
		if f, ok := placeholders[placeholder.FindStringSubmatch(m)[1]]; ok {
			return f(ev)
		}
		return m
	})
}
