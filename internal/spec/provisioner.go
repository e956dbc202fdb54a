package spec

import (
	"slices"
)

// ProvisionersDir holds the platform's provisioner files.
const ProvisionersDir = "provisioners"

// ProvisionerDriver names what provisions a resource.
type ProvisionerDriver string

// The provisioner drivers.
const (
	// DriverProcess: a service socle runs itself from the machine's
	// binaries (a PostgreSQL server, a redis), for local environments.
	DriverProcess ProvisionerDriver = "process"
	// DriverStack: a Terraform/OpenTofu module run through the stacks
	// machinery, the resource's params as inputs, its outputs as the
	// resource's.
	DriverStack ProvisionerDriver = "stack"
	// DriverKubernetes: manifests applied with the app's unit on its
	// cluster.
	DriverKubernetes ProvisionerDriver = "kubernetes"
	// DriverStatic: fixed outputs for something that already exists.
	DriverStatic ProvisionerDriver = "static"
)

// ProvisionerMatch says which resources a provisioner serves: a
// resource's type, and optionally its class and id, in the environments,
// zones and runtimes listed (none listed: all).
type ProvisionerMatch struct {
	Type         string        `json:"type" jsonschema:"required"`
	Class        string        `json:"class,omitempty"`
	ID           string        `json:"id,omitempty"`
	Environments []string      `json:"environments,omitempty"`
	Zones        []string      `json:"zones,omitempty"`
	Runtimes     []RuntimeType `json:"runtimes,omitempty"`
}

// ProvisionerOutput is an output a provisioner provides.
type ProvisionerOutput struct {
	Name string `json:"name" jsonschema:"required"`
	// Secret outputs are sealed at rest and redacted wherever socle
	// shows them; a variable that reads one is a secret.
	Secret bool `json:"secret,omitempty"`
}

// Provisioner says how resources that match it are provisioned.
type Provisioner struct {
	// Name is the provisioner's name, unique in the platform;
	// "builtin/<type>" for socle's defaults.
	Name  string           `json:"name" jsonschema:"required"`
	Match ProvisionerMatch `json:"match" jsonschema:"required"`
	// Driver provisions the resource.
	Driver ProvisionerDriver `json:"driver" jsonschema:"required"`
	// Outputs are every output the resource has.
	Outputs []ProvisionerOutput `json:"outputs,omitempty"`
	// Data: the resource holds data (a database, a volume). Removed from
	// Git in a production zone, it is kept until an admin deletes it.
	Data bool `json:"data,omitempty"`
	// Config is the driver's own settings.
	Config map[string]any `json:"config,omitempty"`

	// File and Line say where it is declared ("" for a built-in).
	File string `json:"-"`
	Line int    `json:"-"`

	builtin bool
}

// Builtin reports whether p is one of socle's defaults.
func (p *Provisioner) Builtin() bool { return p.builtin }

// Output returns p's output named name, or nil.
func (p *Provisioner) Output(name string) *ProvisionerOutput {
	for i := range p.Outputs {
		if p.Outputs[i].Name == name {
			return &p.Outputs[i]
		}
	}
	return nil
}

// BuiltinProvisioners are socle's defaults, used when no provisioner of
// the platform matches: what the demo and any Score file need with no
// provisioner file.
var BuiltinProvisioners = []Provisioner{
	{Name: "builtin/postgres", Match: ProvisionerMatch{Type: "postgres", Runtimes: []RuntimeType{RuntimeLocal}},
		Driver: DriverProcess, Data: true, Outputs: outputs("host", "port", "name", "database", "username", "password!", "url!"), builtin: true},
	{Name: "builtin/redis", Match: ProvisionerMatch{Type: "redis", Runtimes: []RuntimeType{RuntimeLocal}},
		Driver: DriverProcess, Data: true, Outputs: outputs("host", "port", "username", "password!", "url!"), builtin: true},
}

// outputs declares outputs by name, a trailing ! marking a secret one.
func outputs(names ...string) []ProvisionerOutput {
	out := make([]ProvisionerOutput, len(names))
	for i, n := range names {
		if l := len(n) - 1; n[l] == '!' {
			out[i] = ProvisionerOutput{Name: n[:l], Secret: true}
		} else {
			out[i] = ProvisionerOutput{Name: n}
		}
	}
	return out
}

// ProvisionerFor returns the provisioner that serves a resource of type
// typ, class and id (class and id may be "") in environment env, or nil
// when none does. The most specific match wins: one naming the id over one
// naming the class, over one naming the environment, then the zone, then
// the runtime, then one that names only the type; among equals the first
// declared. The platform's provisioners come before the built-ins.
func (r *Repo) ProvisionerFor(typ, class, id, env string) *Provisioner {
	e := r.Environment(env)
	if e == nil {
		return nil
	}
	best, bestScore := (*Provisioner)(nil), -1
	consider := func(p *Provisioner) {
		m := &p.Match
		if m.Type != typ || (m.Class != "" && m.Class != class) || (m.ID != "" && m.ID != id) ||
			(len(m.Environments) > 0 && !slices.Contains(m.Environments, env)) ||
			(len(m.Zones) > 0 && !slices.Contains(m.Zones, e.Zone)) ||
			(len(m.Runtimes) > 0 && !slices.Contains(m.Runtimes, e.Runtime.Type)) {
			return
		}
		score := 0
		for i, named := range []bool{m.ID != "", m.Class != "", len(m.Environments) > 0, len(m.Zones) > 0, len(m.Runtimes) > 0} {
			if named {
				score |= 1 << (4 - i)
			}
		}
		if score > bestScore {
			best, bestScore = p, score
		}
	}
	for _, p := range r.Provisioners {
		consider(p)
	}
	if best != nil {
		return best
	}
	for i := range BuiltinProvisioners {
		consider(&BuiltinProvisioners[i])
	}
	return best
}
