package plan

import (
	"cmp"
	"maps"
	"slices"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/spec"
)

// Resource is the desired state of one provisioned resource in one
// environment: what its driver is asked for, and what socle must know of
// it when it is gone from Git. The resource unit kind keeps it as its
// units' desired state (resource.Desired); a plan compares two of them.
type Resource struct {
	provision.Request
	// Provisioner serves the resource; Driver is its driver.
	Provisioner string `json:"provisioner"`
	Driver      string `json:"driver"`
	// Outputs are every output the provisioner declares: the driver must
	// return each one.
	Outputs []spec.ProvisionerOutput `json:"outputs,omitempty"`
	// Data: it holds data; with Production, removed from Git it is kept.
	Data       bool `json:"data,omitempty"`
	Production bool `json:"production,omitempty"`
	// Apps are the apps that use it, in order.
	Apps []string `json:"apps"`
}

// Retained reports whether the resource, removed from Git, is kept rather
// than deprovisioned: it holds data, in a production environment.
func (r *Resource) Retained() bool { return r.Data && r.Production }

// ResourceName is the name of the resource unit of resource res of app:
// its Score id when it has one (workloads that name the same id share it),
// else "<app>-<res>".
func ResourceName(app, res string, r types.Resource) string {
	if r.Id != nil && *r.Id != "" {
		return *r.Id
	}
	return app + "-" + res
}

// ResourceUser is what the derivation of resources reads of a desired app
// unit (a Unit, or its JSON).
type ResourceUser struct {
	App       string                  `json:"app"`
	Env       string                  `json:"env"`
	Zone      string                  `json:"zone,omitempty"`
	Resources types.WorkloadResources `json:"resources,omitempty"`
}

// ReadsOutputs reports whether env's runtime gives apps the outputs of
// provisioned resources: the local one does (through replicas); the
// Kubernetes one renders made-up outputs still, so socle provisions
// nothing for its environments yet.
func ReadsOutputs(repo *spec.Repo, env string) bool {
	if repo == nil {
		return false
	}
	e := repo.Environment(env)
	return e != nil && e.Runtime.Type == spec.RuntimeLocal
}

// DesiredResources returns the resources apps use, by the provisioners of
// repo, in environment then name order, and for each app the names of
// those it uses, in the order of its resource names (the resource units
// it depends on). A resource no provisioner serves, of a type socle does
// not provision, or in an environment whose runtime does not read
// provisioned outputs (serves false; nil: every one does), is left out:
// the app reads made-up outputs as before. A provisioner whose driver
// this socle lacks still serves one: its unit fails saying so, and the
// apps that use it wait, rather than read outputs nothing provides.
// Workloads that share a resource by id and disagree on it get the first
// one's (validate reports it).
func DesiredResources(repo *spec.Repo, apps []ResourceUser, serves func(env string) bool) (resources []*Resource, uses [][]string) {
	uses = make([][]string, len(apps))
	if repo == nil {
		return nil, uses
	}
	type key struct{ env, name string }
	byKey := map[key]*Resource{}
	for i := range apps {
		d := &apps[i]
		if len(d.Resources) == 0 || (serves != nil && !serves(d.Env)) {
			continue
		}
		for _, res := range slices.Sorted(maps.Keys(d.Resources)) {
			r := d.Resources[res]
			// Types socle has no provisioner of its own for make no unit:
			// their placeholders are resolved as before (the runtime's
			// made-up outputs), and validate refuses what none serves.
			if spec.Unprovisioned(r.Type) != "" {
				continue
			}
			class, id := deref(r.Class), deref(r.Id)
			p := repo.ProvisionerFor(r.Type, class, id, d.Env)
			if p == nil {
				continue
			}
			k := key{d.Env, ResourceName(d.App, res, r)}
			uses[i] = append(uses[i], k.name)
			if have := byKey[k]; have != nil {
				have.Apps = append(have.Apps, d.App)
				continue
			}
			byKey[k] = &Resource{
				Request: provision.Request{Name: k.name, Env: d.Env, Zone: d.Zone, Type: r.Type, Class: class,
					Params: map[string]any(r.Params), Config: config(repo, p, r)},
				Provisioner: p.Name, Driver: string(p.Driver), Outputs: p.Outputs, Data: p.Data,
				Production: repo.Production(d.Env), Apps: []string{d.App},
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(byKey), func(a, b key) int { return cmp.Or(cmp.Compare(a.env, b.env), cmp.Compare(a.name, b.name)) }) {
		d := byKey[k]
		slices.Sort(d.Apps)
		d.Apps = slices.Compact(d.Apps)
		resources = append(resources, d)
	}
	return resources, uses
}

// config is the config resource r's driver is given: its provisioner's,
// and for socle's built-in service-port the primary port of the workload
// it reaches, which its proxy serves on the workload's own host name.
func config(repo *spec.Repo, p *spec.Provisioner, r types.Resource) map[string]any {
	if !p.Builtin() || r.Type != spec.TypeServicePort {
		return p.Config
	}
	workload, _ := r.Params["workload"].(string)
	a := repo.App(workload)
	if a == nil || a.Workload == nil || a.Workload.Service == nil {
		return p.Config // validate refuses it
	}
	return map[string]any{"primaryPort": spec.PrimaryPort(slices.Collect(maps.Keys(a.Workload.Service.Ports)))}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ResourcesOf returns the resources the units use, by the provisioners of
// repo, in the environments whose runtime reads provisioned outputs.
func ResourcesOf(repo *spec.Repo, units []Unit) []*Resource {
	users := make([]ResourceUser, len(units))
	for i := range units {
		u := &units[i]
		users[i] = ResourceUser{App: u.App, Env: u.Env, Zone: u.Zone, Resources: u.Resources}
	}
	res, _ := DesiredResources(repo, users, func(env string) bool { return ReadsOutputs(repo, env) })
	return res
}

// ResourceChange is what a plan does to one resource in one environment:
// create provisions it, update provisions it again (what its driver is
// asked for changed: its provisioner, driver, class, params or outputs),
// delete deprovisions it, or keeps it when Retained.
type ResourceChange struct {
	Action Action `json:"action"`
	// Name is the resource's unit name: its Score id when workloads share
	// it, else "<app>-<resource>".
	Name        string `json:"name"`
	Env         string `json:"env"`
	Type        string `json:"type"`
	Class       string `json:"class,omitempty"`
	Provisioner string `json:"provisioner"`
	Driver      string `json:"driver"`
	// Apps use it after the change; for a delete, the apps that used it.
	Apps []string `json:"apps"`
	// Fields that change, for an update, by their path in the resource
	// (provisioner, class, params.size).
	Fields []Field `json:"fields,omitempty"`
	// Retained: removed from Git, it holds data in a production
	// environment and is kept until an admin deletes it.
	Retained bool `json:"retained,omitempty"`
}

// DiffResources compares the resources desired with those the applied
// units used: in environment then name order, unchanged ones left out
// (a resource whose apps alone change is not provisioned again).
func DiffResources(applied, desired []*Resource) []ResourceChange {
	type key struct{ env, name string }
	old := make(map[key]*Resource, len(applied))
	for _, r := range applied {
		old[key{r.Env, r.Name}] = r
	}
	change := func(a Action, r *Resource) ResourceChange {
		return ResourceChange{Action: a, Name: r.Name, Env: r.Env, Type: r.Type, Class: r.Class, Provisioner: r.Provisioner, Driver: r.Driver, Apps: r.Apps}
	}
	var out []ResourceChange
	for _, r := range desired {
		k := key{r.Env, r.Name}
		o, ok := old[k]
		delete(old, k)
		if !ok {
			out = append(out, change(Create, r))
			continue
		}
		if fields := diffProvisioned(o, r); len(fields) > 0 {
			c := change(Update, r)
			c.Fields = fields
			out = append(out, c)
		}
	}
	for _, r := range old {
		c := change(Delete, r)
		c.Retained = r.Retained()
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b ResourceChange) int { return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.Name, b.Name)) })
	return out
}

// diffProvisioned lists what changes in what the driver is asked for: the
// fields whose change provisions the resource again (the resource kind's
// hash covers the same ones).
func diffProvisioned(old, new *Resource) []Field {
	type asked struct {
		Type        string                   `json:"type"`
		Class       string                   `json:"class,omitempty"`
		Zone        string                   `json:"zone,omitempty"`
		Provisioner string                   `json:"provisioner"`
		Driver      string                   `json:"driver"`
		Params      map[string]any           `json:"params,omitempty"`
		Config      map[string]any           `json:"config,omitempty"`
		Outputs     []spec.ProvisionerOutput `json:"outputs,omitempty"`
	}
	of := func(r *Resource) map[string]any {
		return flatten(asked{r.Type, r.Class, r.Zone, r.Provisioner, r.Driver, r.Params, r.Config, r.Outputs})
	}
	return diffFlat(of(old), of(new))
}
