package spec

import (
	"slices"
)

// ProvisionerSet is a provisioners/*.yaml file.
type ProvisionerSet struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=Provisioners"`
	// Provisioners in this file. The platform's provisioners come before
	// socle's built-in ones; among them the most specific match serves a
	// resource (its id, then its class, environment, zone, runtime).
	Provisioners []Provisioner `json:"provisioners" jsonschema:"required"`
}

// ProvisionersDir holds the platform's provisioner files.
const ProvisionersDir = "provisioners"

// ProvisionerDriver names what provisions a resource.
type ProvisionerDriver string

// The provisioner drivers.
const (
	// DriverProcess: a service socle runs itself from the machine's
	// binaries (a PostgreSQL server, a redis), for local environments.
	DriverProcess ProvisionerDriver = "process"
	// DriverStack: the outputs of a stack of stacks/ (config: {stack:
	// <name>}), as its instance for the resource's environment (or zone)
	// last applied them; the resource's params are not its inputs.
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
	// Type is the Score resource's type (postgres, redis, …).
	Type string `json:"type" jsonschema:"required,minLength=1"`
	// Class is the Score resource's class; empty: any class.
	Class string `json:"class,omitempty"`
	// ID is the Score resource's id (a resource workloads share); empty:
	// any.
	ID string `json:"id,omitempty"`
	// Environments, Zones and Runtimes (runtime types) restrict the
	// provisioner to where they are listed; none listed: everywhere.
	Environments []string      `json:"environments,omitempty"`
	Zones        []string      `json:"zones,omitempty"`
	Runtimes     []RuntimeType `json:"runtimes,omitempty"`
}

// ProvisionerOutput is an output a provisioner provides.
type ProvisionerOutput struct {
	// Name is what workloads read as ${resources.<resource>.<name>}.
	Name string `json:"name" jsonschema:"required,pattern=^[a-zA-Z0-9_-]+$"`
	// Secret outputs are sealed at rest and redacted wherever socle
	// shows them; a variable that reads one is a secret.
	Secret bool `json:"secret,omitempty"`
}

// Provisioner says how resources that match it are provisioned.
type Provisioner struct {
	// Name is the provisioner's name, unique in the platform;
	// "builtin/<type>" for socle's defaults.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9/-]*[a-z0-9])?$,maxLength=63"`
	// Match says which resources the provisioner serves.
	Match ProvisionerMatch `json:"match" jsonschema:"required"`
	// Driver provisions the resource: process (a server socle runs
	// itself, for local environments), stack (a Terraform module of
	// stacks/), kubernetes (manifests applied with the app) or static
	// (something that exists already).
	Driver ProvisionerDriver `json:"driver" jsonschema:"required,enum=process,enum=stack,enum=kubernetes,enum=static"`
	// Outputs are every output the resource has.
	Outputs []ProvisionerOutput `json:"outputs,omitempty"`
	// Data: the resource holds data (a database, a volume). Removed from
	// Git in a production zone, it is kept until an admin deletes it.
	Data bool `json:"data,omitempty"`
	// Config is the driver's own settings. static: outputs, a value for
	// every output declared ({outputs: {host: db.internal, port: 5432}});
	// a secret output's value is {secretFromEnv: NAME}, read from the
	// environment socle runs in, so that it is never in Git. stack: stack,
	// the stack under stacks/ whose Terraform outputs are the resource's
	// outputs ({stack: databases}).
	Config map[string]any `json:"config,omitempty"`

	// File and Line say where it is declared ("" for a built-in).
	File string `json:"-"`
	Line int    `json:"-"`

	builtin bool
	index   int // in its file's list
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
