package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/secretref"
	"github.com/socle-dev/socle/internal/spec"
)

// Resolver resolves a reference to a secret manager with an
// environment's secret stores (secretref.Registry does; the server's
// also tells the redactor of each value).
type Resolver interface {
	Resolve(ctx context.Context, stores spec.SecretStores, ref spec.SecretRef) (string, error)
}

// withReferences checks that the references that stand for the units'
// secrets (ref+vault://…, in the Score file, an override or a secret
// file) resolve now, and discards the values: the desired state keeps the
// reference, and the runtime resolves it again when a replica starts, so
// that no value of a secret manager is ever in socle's store or plans. A
// unit with a reference that does not resolve (not found, denied, the
// store down) is returned blocked, with the app, the environment, the
// secret and the reference in the message, never a value: it keeps the
// state last applied. refs nil: socle resolves no reference, and a unit
// that has one is blocked.
func withReferences(ctx context.Context, repo *spec.Repo, units []plan.Unit, refs Resolver) map[plan.Key]reconcile.Block {
	blocked := map[plan.Key]reconcile.Block{}
	// A store that did not answer is not asked again in this pass: each
	// call waits up to its timeout, and a plan waits for them all.
	down := map[string]string{} // the first reference not resolved, by store
	for i := range units {
		u := &units[i]
		var why []string
		for _, name := range slices.Sorted(maps.Keys(u.Containers)) {
			vars := u.Containers[name].Variables
			for _, n := range u.Secrets {
				ref, ok, err := spec.ParseSecretRef(vars[n])
				switch {
				case !ok:
					continue
				case err != nil:
				case refs == nil:
					err = fmt.Errorf("%s: socle resolves no references here", ref)
				default:
					stores := repo.SecretStoresOf(u.Env)
					conf, _ := json.Marshal(stores)
					key := ref.Scheme + "\x00" + string(conf)
					if first, ok := down[key]; ok {
						err = fmt.Errorf("%s: not asked: its store did not answer for %s just before: %w", ref, first, secretref.ErrUnavailable)
					} else if _, err = refs.Resolve(ctx, stores, ref); errors.Is(err, secretref.ErrUnavailable) {
						down[key] = ref.String()
					}
				}
				if err != nil {
					why = append(why, fmt.Sprintf("secret %s of %s @ %s not resolved: %v", n, u.App, u.Env, err))
				}
			}
		}
		if len(why) > 0 {
			slices.Sort(why)
			blocked[u.Key()] = reconcile.Block{Reason: reconcile.ReasonSecretUnresolved,
				Message: strings.Join(slices.Compact(why), "; ") + "; the unit keeps its last applied state"}
		}
	}
	return blocked
}
