package runtime

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/score-spec/score-go/framework"

	"github.com/socle-dev/socle/internal/plan"
)

// ResourcePorts are the ports of the Score resource types socle knows.
//
// What this file makes up is for resources socle does not provision: a
// resource no provisioner serves (one whose driver this socle lacks makes
// a unit that fails, and its apps wait: package resource), every
// resource of an environment on Kubernetes (its render reads these
// outputs: the kubernetes runtime does not read provisioned ones yet),
// and every resource when socle up runs with --provision-resources=false.
// It hands workloads the outputs a service of that type would have where
// they run, so that an app that reads them starts. The local runtime
// reads the outputs of provisioned resources from the resource kind
// (package resource, through replicas.Resources).
var ResourcePorts = map[string]int{
	"postgres": 5432, "mysql": 3306, "redis": 6379, "mongodb": 27017, "amqp": 5672, "rabbitmq": 5672,
}

// SecretOutputs are the resource outputs that carry a credential: a
// variable or file that reads one is a secret.
var SecretOutputs = map[string]bool{"password": true, "url": true}

// ResourcePassword derives the password of an app's resource in an
// environment from socle's secret: stable, the same on every runtime, never
// stored.
func ResourcePassword(secret []byte, app, env, resource string) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s\x00%s\x00%s", app, env, resource)
	return hex.EncodeToString(mac.Sum(nil))[:24]
}

// ResourceOutputs returns the outputs of a unit's Score resources, for
// Score's placeholder substitution: host (where host(resource) says the
// runtime reaches it), port, name, database, username, password (see
// ResourcePassword) and url.
func ResourceOutputs(u *plan.Unit, secret []byte, host func(resource string) string) map[string]framework.OutputLookupFunc {
	out := make(map[string]framework.OutputLookupFunc, len(u.Resources))
	for name, r := range u.Resources {
		password := ResourcePassword(secret, u.App, u.Env, name)
		port, h := ResourcePorts[r.Type], host(name)
		values := map[string]any{
			"host": h, "port": fmt.Sprint(port), "name": u.App, "database": u.App,
			"username": u.App, "password": password,
			"url": fmt.Sprintf("%s://%s:%s@%s:%d/%s", r.Type, u.App, password, h, port, u.App),
		}
		out[name] = func(keys ...string) (any, error) {
			if len(keys) != 1 {
				return nil, fmt.Errorf("resource %s (%s) has outputs %s", name, r.Type, strings.Join(slices.Sorted(maps.Keys(values)), ", "))
			}
			v, ok := values[keys[0]]
			if !ok {
				return nil, fmt.Errorf("resource %s (%s) has no output %q (it has %s)", name, r.Type, keys[0], strings.Join(slices.Sorted(maps.Keys(values)), ", "))
			}
			return v, nil
		}
	}
	return out
}
