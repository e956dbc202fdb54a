package resource

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/unit"
)

// KindID is the ID of the resource units' kind: a unit is (resource,
// environment).
const KindID = "resource"

// Key is the key of resource name's unit in env.
func Key(name, env string) unit.Key { return unit.Key{Kind: KindID, Name: name, Env: env} }

// Desired is a resource unit's desired state (unit.Desired.Spec, JSON):
// what its driver is asked for, and what socle must know of it when it
// is gone from Git.
type Desired struct {
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

// hash identifies what the driver is asked for: a change provisions the
// resource again. The apps that use it and the flags of its removal are
// not part of it.
func (d *Desired) hash() string {
	b, _ := json.Marshal(struct {
		provision.Request
		Provisioner, Driver string
		Outputs             []spec.ProvisionerOutput
	}{d.Request, d.Provisioner, d.Driver, d.Outputs})
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// secret reports which outputs are secret.
func (d *Desired) secret() map[string]bool {
	out := make(map[string]bool, len(d.Outputs))
	for _, o := range d.Outputs {
		if o.Secret {
			out[o.Name] = true
		}
	}
	return out
}

// Unprovisioned are the Score resource types socle has no resource unit
// for yet: their placeholders are resolved as before (runtime's made-up
// outputs, or the runtime's own handling), and validate refuses what they
// cannot serve.
var Unprovisioned = map[string]bool{"volume": true, "route": true}

// NameOf is the name of the resource unit of resource res of app: its
// Score id when it has one (workloads that name the same id share it),
// else "<app>-<res>".
func NameOf(app, res string, r types.Resource) string {
	if r.Id != nil && *r.Id != "" {
		return *r.Id
	}
	return app + "-" + res
}

// App is what units reads of a desired app unit (a plan.Unit's JSON).
type App struct {
	App       string                  `json:"app"`
	Env       string                  `json:"env"`
	Zone      string                  `json:"zone,omitempty"`
	Resources types.WorkloadResources `json:"resources,omitempty"`
}

// units returns the desired resource units of the desired app units, by
// the provisioners of repo, each with its desired state as marshalled,
// and the app units each given DependsOn on the resource units they use,
// so that the engine provisions a resource before an app that uses it
// starts. A resource no provisioner serves, of a type socle does not
// provision, or in an environment whose runtime does not read provisioned
// outputs (serves false; nil: every one does), makes no unit: the app
// reads made-up outputs as before. A provisioner whose driver this socle
// lacks still makes one: the unit fails saying so, and the apps that use
// it wait, rather than read outputs nothing provides. Workloads that
// share a resource by id and disagree on it get the first one's
// (validate reports it). after (nil: none) gives the units a resource
// unit waits for besides (a stack provisioner's stack instance).
func units(repo *spec.Repo, apps []unit.Desired, serves func(env string) bool, after func(*spec.Repo, *Desired) []unit.Key) (resources []unit.Desired, desired map[unit.Key]*Desired, out []unit.Desired) {
	out = slices.Clone(apps)
	desired = map[unit.Key]*Desired{}
	if repo == nil {
		return nil, desired, out
	}
	byKey := map[unit.Key]*Desired{}
	for i := range out {
		a := &out[i]
		var d App
		if json.Unmarshal(a.Spec, &d) != nil || len(d.Resources) == 0 || (serves != nil && !serves(d.Env)) {
			continue
		}
		a.DependsOn = slices.Clone(a.DependsOn)
		for _, res := range slices.Sorted(maps.Keys(d.Resources)) {
			r := d.Resources[res]
			if Unprovisioned[r.Type] {
				continue
			}
			class, id := deref(r.Class), deref(r.Id)
			p := repo.ProvisionerFor(r.Type, class, id, d.Env)
			if p == nil {
				continue
			}
			k := Key(NameOf(d.App, res, r), d.Env)
			a.DependsOn = append(a.DependsOn, k)
			if have := byKey[k]; have != nil {
				have.Apps = append(have.Apps, d.App)
				continue
			}
			byKey[k] = &Desired{
				Request: provision.Request{Name: k.Name, Env: d.Env, Zone: d.Zone, Type: r.Type, Class: class,
					Params: map[string]any(r.Params), Config: config(repo, p, r)},
				Provisioner: p.Name, Driver: string(p.Driver), Outputs: p.Outputs, Data: p.Data,
				Production: repo.Production(d.Env), Apps: []string{d.App},
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(byKey), unit.Key.Compare) {
		d := byKey[k]
		slices.Sort(d.Apps)
		d.Apps = slices.Compact(d.Apps)
		raw, err := json.Marshal(d)
		if err != nil {
			continue // params that are not JSON: not from YAML
		}
		u := unit.Desired{Key: k, Spec: raw}
		if after != nil {
			u.DependsOn = after(repo, d)
		}
		resources = append(resources, u)
		desired[k] = d
	}
	return resources, desired, out
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
