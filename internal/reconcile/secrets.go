package reconcile

import (
	"slices"

	"github.com/socle-dev/socle/internal/plan"
)

// SecretValues returns the values a unit's replicas see that are secret:
// its secret variables as resolved, and the credentials of its resources.
// The server redacts them from what it shows.
func SecretValues(u *plan.Unit, secret []byte) []string {
	var out []string
	for name := range u.Resources {
		vals, err := resolveVariables(u, map[string]string{"p": "${resources." + name + ".password}"}, secret)
		if err == nil {
			out = append(out, vals["p"])
		}
	}
	names := u.SecretVariables()
	if len(names) == 0 {
		return out
	}
	for _, c := range u.Containers {
		vals, err := resolveVariables(u, c.Variables, secret)
		if err != nil {
			continue
		}
		for _, n := range names {
			if v, ok := vals[n]; ok {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
