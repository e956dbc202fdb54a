// Package builtin is the provisioner driver of the Score resource types
// whose outputs socle computes itself, for local environments:
// environment (the environment's variables, which its provisioner's
// config carries: never socle's own process environment), dns (a host
// name under the environment's domain on socle's proxy, stable per
// resource) and service-port (where another workload's named service
// port is reached through socle's proxy). It runs, creates and removes
// nothing.
package builtin

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/spec"
)

// Name is the driver's name (spec.DriverBuiltin): only socle's built-in
// provisioners name it.
const Name = string(spec.DriverBuiltin)

// Config are the facts of this socle the outputs are computed from.
type Config struct {
	// ProxyAddr is where socle's proxy serves the apps of local
	// environments (host:port): a service-port's port is its port.
	ProxyAddr string
	// Host is the host name the proxy serves port of app in env on (port
	// "": the app's primary port). The proxy's naming is the proxy's: the
	// wiring hands it over.
	Host func(app, env, port string) string
}

// Driver is the builtin driver.
type Driver struct{ cfg Config }

var _ provision.Driver = (*Driver)(nil)

// New returns the builtin driver.
func New(cfg Config) *Driver { return &Driver{cfg: cfg} }

// Name is "builtin".
func (d *Driver) Name() string { return Name }

// Provision computes the resource's outputs.
//
//   - environment: config.values, the environment's variables as spec's
//     provisioner hands them (spec.Repo.ProvisionerFor).
//   - dns: host, the host name the proxy would serve an app named as the
//     resource on (<resource>.<env>.localhost), the resource's name made a
//     DNS label.
//   - service-port: hostname, the host the proxy serves the port of
//     params.workload named params.port on (<workload>.<env>.localhost for
//     its primary port, config.primaryPort; <port>.<workload>.<env>.localhost
//     for another), and port, the proxy's port. The proxy speaks HTTP: a
//     client reaches the port by that host name, which it sends as Host.
func (d *Driver) Provision(_ context.Context, r provision.Request) (map[string]string, error) {
	switch r.Type {
	case spec.TypeEnvironment:
		return environment(r)
	case spec.TypeDNS:
		return map[string]string{"host": d.cfg.Host(label(r.Name), r.Env, "")}, nil
	case spec.TypeServicePort:
		return d.servicePort(r)
	}
	return nil, fmt.Errorf("resource %s: %s: %w", r.Name, r.Type, provision.ErrUnsupported)
}

// Check finds nothing wrong: the outputs are computed, nothing runs.
func (d *Driver) Check(context.Context, provision.Request) error { return nil }

// Deprovision removes nothing: nothing was made.
func (d *Driver) Deprovision(context.Context, provision.Request) error { return nil }

func environment(r provision.Request) (map[string]string, error) {
	values, ok := r.Config["values"].(map[string]any)
	if !ok && r.Config["values"] != nil {
		return nil, fmt.Errorf("resource %s: the environment's variables are a map of name to value, not %T", r.Name, r.Config["values"])
	}
	out := make(map[string]string, len(values))
	for _, k := range slices.Sorted(maps.Keys(values)) {
		s, ok := values[k].(string)
		if !ok {
			return nil, fmt.Errorf("resource %s: variable %s of environment %s is a %T, not a string", r.Name, k, r.Env, values[k])
		}
		out[k] = s
	}
	return out, nil
}

func (d *Driver) servicePort(r provision.Request) (map[string]string, error) {
	workload, _ := r.Params["workload"].(string)
	port, _ := r.Params["port"].(string)
	if workload == "" || port == "" {
		return nil, fmt.Errorf("resource %s: a service-port names the workload and the service port it reaches: params {workload: <app>, port: <port name>}", r.Name)
	}
	_, proxyPort, err := net.SplitHostPort(d.cfg.ProxyAddr)
	if err != nil {
		return nil, fmt.Errorf("resource %s: socle's proxy address %q: %w", r.Name, d.cfg.ProxyAddr, err)
	}
	named := port
	if primary, _ := r.Config["primaryPort"].(string); primary == port {
		named = ""
	}
	return map[string]string{"hostname": d.cfg.Host(workload, r.Env, named), "port": proxyPort}, nil
}

// label makes a resource's name one DNS label: lowercase letters, digits
// and dashes, at most 63 characters (a longer one is cut and ends with a
// hash of the whole, so that it stays unique and stable).
func label(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "-")
	if len(s) <= 63 && s != "" {
		return s
	}
	sum := sha256.Sum256([]byte(name))
	return cmp.Or(strings.TrimRight(s[:min(len(s), 54)], "-"), "dns") + "-" + hex.EncodeToString(sum[:4])
}
