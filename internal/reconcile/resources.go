package reconcile

import (
	"fmt"

	"github.com/score-spec/score-go/framework"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
)

// resolveVariables fills a container's ${metadata…} and ${resources…}
// placeholders, with Score's own substitution.
func resolveVariables(u *plan.Unit, vars map[string]string, secret []byte) (map[string]string, error) {
	meta := map[string]any(u.Metadata)
	if meta == nil {
		meta = map[string]any{"name": u.App}
	}
	fn := framework.BuildSubstitutionFunction(meta, runtime.ResourceOutputs(u, secret, func(string) string { return "127.0.0.1" }))
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
