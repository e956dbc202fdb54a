package spec

// Defaults that hold when neither the app nor the platform says otherwise.
var (
	DefaultReplicas = Replicas{Min: 1, Max: 1}
	DefaultRollout  = Rollout{Strategy: StrategyRolling, MaxSurge: ptr(1), MaxUnavailable: ptr(0)}
)

func ptr[T any](v T) *T { return &v }

// applyDefaults fills what the files leave out, so that every consumer sees
// one complete form (as Caddy adapts every input to one canonical config).
func applyDefaults(r *Repo) {
	for i := range r.Platform.Environments {
		e := &r.Platform.Environments[i]
		if e.Prune == nil {
			e.Prune = ptr(true)
		}
		if e.SelfHeal == nil {
			e.SelfHeal = ptr(true)
		}
	}
	defReplicas := DefaultReplicas
	if d := r.Platform.Defaults.Replicas; d != nil {
		defReplicas = normReplicas(*d)
	}
	defRollout := DefaultRollout
	if d := r.Platform.Defaults.Rollout; d != nil {
		defRollout = normRollout(*d)
	}
	for _, a := range r.Apps {
		c := &a.Config
		if c.Replicas == nil {
			c.Replicas = ptr(defReplicas)
		} else {
			c.Replicas = ptr(normReplicas(*c.Replicas))
		}
		if c.Rollout == nil {
			c.Rollout = ptr(defRollout)
		} else {
			c.Rollout = ptr(normRollout(*c.Rollout))
		}
		for env, o := range c.Environments {
			if o.Replicas != nil {
				o.Replicas = ptr(normReplicas(*o.Replicas))
			}
			if o.Rollout != nil {
				o.Rollout = ptr(normRollout(*o.Rollout))
			}
			c.Environments[env] = o
		}
	}
}

func normReplicas(r Replicas) Replicas {
	if r.Max == 0 {
		r.Max = r.Min
	}
	return r
}

func normRollout(r Rollout) Rollout {
	if r.Strategy == StrategyRolling {
		if r.MaxSurge == nil {
			r.MaxSurge = DefaultRollout.MaxSurge
		}
		if r.MaxUnavailable == nil {
			r.MaxUnavailable = DefaultRollout.MaxUnavailable
		}
	}
	return r
}

// ReplicasIn returns the app's replica bounds in an environment.
func (a *App) ReplicasIn(env string) Replicas {
	if o, ok := a.Config.Environments[env]; ok && o.Replicas != nil {
		return *o.Replicas
	}
	if a.Config.Replicas != nil {
		return *a.Config.Replicas
	}
	return DefaultReplicas
}

// RolloutIn returns the app's rollout strategy in an environment.
func (a *App) RolloutIn(env string) Rollout {
	if o, ok := a.Config.Environments[env]; ok && o.Rollout != nil {
		return *o.Rollout
	}
	if a.Config.Rollout != nil {
		return *a.Config.Rollout
	}
	return DefaultRollout
}

// RoutesIn returns the app's routes in an environment, besides its own
// host.
func (a *App) RoutesIn(env string) []Route {
	if o, ok := a.Config.Environments[env]; ok && o.Routes != nil {
		return *o.Routes
	}
	return a.Config.Routes
}

// EnabledIn reports whether the app runs in an environment at all.
func (a *App) EnabledIn(env string) bool {
	return !a.Config.Environments[env].Disabled
}
