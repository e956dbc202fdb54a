package pipeline

import (
	"context"
	"time"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/store"
)

// ReleaseReader reads the releases socle recorded (a Store does).
type ReleaseReader interface {
	Releases(ctx context.Context, f store.ReleaseFilter) ([]store.Release, error)
}

// Judge evaluates a repository's compiled policies and socle's built-in
// guardrails (policy.Compile; a policy that did not compile denies what it
// matches) on every change of a plan, at now. st, when not nil, answers
// what ran healthy where; without it, a guardrail that needs the history
// denies. The caller compiles, so that one compiled set judges a plan's
// apps and its stacks alike.
func Judge(ctx context.Context, set *policy.Set, p *plan.Plan, applied []plan.Unit, st ReleaseReader, now time.Time) []policy.Decision {
	var h policy.History
	if st != nil {
		h = History(ctx, st)
	}
	return set.EvaluatePlan(p, applied, policy.Context{Operation: policy.Plan, Now: now, History: h})
}

// Denied reports the denied creates and updates of a plan, by unit, with
// the denials' messages: what socle must not deploy.
func Denied(ds []policy.Decision) map[plan.Key]policy.Verdicts {
	out := map[plan.Key]policy.Verdicts{}
	for _, d := range ds {
		if (d.Action == plan.Create || d.Action == plan.Update) && d.Verdicts.Blocked() {
			out[plan.Key{App: d.App, Env: d.Env}] = d.Verdicts.Denials()
		}
	}
	return out
}

// History answers the policies' history questions from the releases socle
// recorded: an artifact ran healthy in an environment since the end of its
// first release there that Succeeded.
func History(ctx context.Context, st ReleaseReader) policy.History {
	return releaseHistory{ctx: ctx, st: st}
}

type releaseHistory struct {
	ctx context.Context
	st  ReleaseReader
}

func (h releaseHistory) RanHealthy(app, artifact, env string) (time.Time, bool) {
	rels, err := h.st.Releases(h.ctx, store.ReleaseFilter{App: app, Env: env, Status: store.Succeeded, Limit: store.MaxLimit})
	if err != nil {
		return time.Time{}, false
	}
	var since time.Time
	found := false
	for _, r := range rels {
		if r.Artifact == artifact && (!found || r.FinishedAt.Before(since)) {
			since, found = r.FinishedAt, true
		}
	}
	return since, found
}
