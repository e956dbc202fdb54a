package reconcile

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

// defaultPorts are the ports the local runtime reports for the resource
// types it knows. It provisions nothing: it hands workloads the outputs a
// local service of that type would have, so that an app that reads them
// starts; real provisioners come with the container and cloud runtimes.
var defaultPorts = map[string]int{
	"postgres": 5432, "mysql": 3306, "redis": 6379, "mongodb": 27017, "amqp": 5672, "rabbitmq": 5672,
}

// resourceOutputs returns the outputs of a unit's Score resources on the
// local runtime: host, port, name, username, password (derived from the
// engine's secret, stable per unit and resource, never stored), url.
func resourceOutputs(u *plan.Unit, secret []byte) map[string]framework.OutputLookupFunc {
	out := make(map[string]framework.OutputLookupFunc, len(u.Resources))
	for name, r := range u.Resources {
		mac := hmac.New(sha256.New, secret)
		fmt.Fprintf(mac, "%s\x00%s\x00%s", u.App, u.Env, name)
		password := hex.EncodeToString(mac.Sum(nil))[:24]
		port := defaultPorts[r.Type]
		values := map[string]any{
			"host": "127.0.0.1", "port": fmt.Sprint(port), "name": u.App, "database": u.App,
			"username": u.App, "password": password,
		}
		values["url"] = fmt.Sprintf("%s://%s:%s@127.0.0.1:%d/%s", r.Type, u.App, password, port, u.App)
		out[name] = func(keys ...string) (any, error) {
			if len(keys) != 1 {
				return nil, fmt.Errorf("resource %s (%s) has outputs %s", name, r.Type, strings.Join(slices.Sorted(maps.Keys(values)), ", "))
			}
			v, ok := values[keys[0]]
			if !ok {
				return nil, fmt.Errorf("resource %s (%s) has no output %q on the local runtime (it has %s)", name, r.Type, keys[0], strings.Join(slices.Sorted(maps.Keys(values)), ", "))
			}
			return v, nil
		}
	}
	return out
}

// resolveVariables fills a container's ${metadata…} and ${resources…}
// placeholders, with Score's own substitution.
func resolveVariables(u *plan.Unit, vars map[string]string, secret []byte) (map[string]string, error) {
	meta := map[string]any(u.Metadata)
	if meta == nil {
		meta = map[string]any{"name": u.App}
	}
	fn := framework.BuildSubstitutionFunction(meta, resourceOutputs(u, secret))
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		r, err := framework.SubstituteString(v, fn)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}
