// Package static is the provisioner driver of resources that already exist
// outside socle (a managed database, an external API): its outputs are the
// values the provisioner's config lists, a secret one read from socle's
// environment rather than written in Git. It creates, checks and removes
// nothing.
package static

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/socle-dev/socle/internal/provision"
)

// Name is the driver's name in provisioner files.
const Name = "static"

// Driver is the static driver. Its config is
//
//	outputs:
//	  host: db.example.com
//	  port: "5432"
//	  password: {secretFromEnv: DB_PASSWORD}
//
// an output's value a string, or a map whose one key secretFromEnv names
// the variable of socle's environment that holds it.
type Driver struct {
	// LookupEnv reads socle's environment; os.LookupEnv when nil.
	LookupEnv func(string) (string, bool)
}

var _ provision.Driver = (*Driver)(nil)

// New returns the static driver, reading socle's environment.
func New() *Driver { return &Driver{} }

// Name is "static".
func (d *Driver) Name() string { return Name }

// Provision returns the configured outputs.
func (d *Driver) Provision(_ context.Context, r provision.Request) (map[string]string, error) {
	return d.outputs(r)
}

// Check finds nothing wrong: what exists outside socle is not socle's to
// probe, and a variable unset since is read again when the request
// changes or socle restarts.
func (d *Driver) Check(context.Context, provision.Request) error { return nil }

// Deprovision removes nothing: socle did not make what a static
// provisioner points at.
func (d *Driver) Deprovision(context.Context, provision.Request) error { return nil }

// outputs reads config.outputs.
func (d *Driver) outputs(r provision.Request) (map[string]string, error) {
	raw, ok := r.Config["outputs"]
	if !ok {
		return nil, fmt.Errorf("resource %s: a static provisioner's config has no outputs (outputs: {host: …, port: …})", r.Name)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("resource %s: a static provisioner's outputs are a map of output to value, not %T", r.Name, raw)
	}
	lookup := d.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	out := make(map[string]string, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		switch v := m[name].(type) {
		case string:
			out[name] = v
		case map[string]any:
			env, ok := v["secretFromEnv"].(string)
			if !ok || len(v) != 1 || env == "" {
				return nil, fmt.Errorf("resource %s: output %s: a value read from socle's environment is written {secretFromEnv: NAME}, with nothing else", r.Name, name)
			}
			val, set := lookup(env)
			if !set {
				return nil, fmt.Errorf("resource %s: output %s: environment variable %s is not set in socle's environment", r.Name, name, env)
			}
			out[name] = val
		case bool, int, int64, float64, uint64:
			// YAML reads port: 5432 as a number: its text is meant.
			out[name] = strings.TrimSpace(fmt.Sprint(v))
		default:
			return nil, fmt.Errorf("resource %s: output %s: a value is a string or {secretFromEnv: NAME}, not %T", r.Name, name, v)
		}
	}
	return out, nil
}
