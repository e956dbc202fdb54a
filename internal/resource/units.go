package resource

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
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
// is gone from Git. Package plan derives it (plan.DesiredResources), so
// that socle plan lists the resources the kind provisions.
type Desired plan.Resource

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

// NameOf is the name of the resource unit of resource res of app
// (plan.ResourceName): its Score id when it has one, else "<app>-<res>".
func NameOf(app, res string, r types.Resource) string { return plan.ResourceName(app, res, r) }

// App is what units reads of a desired app unit (a plan.Unit's JSON).
type App = plan.ResourceUser

// units returns the desired resource units of the desired app units, by
// the provisioners of repo (plan.DesiredResources says which, and why
// some make none), each with its desired state as marshalled, and the app
// units each given DependsOn on the resource units they use, so that the
// engine provisions a resource before an app that uses it starts. after
// (nil: none) gives the units a resource unit waits for besides (a stack
// provisioner's stack instance).
func units(repo *spec.Repo, apps []unit.Desired, serves func(env string) bool, after func(*spec.Repo, *Desired) []unit.Key) (resources []unit.Desired, desired map[unit.Key]*Desired, out []unit.Desired) {
	out = slices.Clone(apps)
	desired = map[unit.Key]*Desired{}
	if repo == nil {
		return nil, desired, out
	}
	users := make([]App, len(out))
	for i := range out {
		if json.Unmarshal(out[i].Spec, &users[i]) != nil {
			users[i] = App{} // uses nothing
		}
	}
	res, uses := plan.DesiredResources(repo, users, serves)
	for i, names := range uses {
		if len(names) == 0 {
			continue
		}
		a := &out[i]
		a.DependsOn = slices.Clone(a.DependsOn)
		for _, name := range names {
			a.DependsOn = append(a.DependsOn, Key(name, users[i].Env))
		}
	}
	for _, r := range res {
		d := (*Desired)(r)
		raw, err := json.Marshal(d)
		if err != nil {
			continue // params that are not JSON: not from YAML
		}
		k := Key(d.Name, d.Env)
		u := unit.Desired{Key: k, Spec: raw}
		if after != nil {
			u.DependsOn = after(repo, d)
		}
		resources = append(resources, u)
		desired[k] = d
	}
	return resources, desired, out
}
