package promotion

import (
	"context"

	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// Incoming is what a promotion into an environment would bring now, and
// whether the gates would let it in.
type Incoming struct {
	From, Revision, Artifact string
	// Needed is how many approvals the environment asks; Approvals are the
	// users who gave theirs to the artifact.
	Needed    int
	Approvals []string
	// Blocked says whether a gate holds the promotion now, Reason which;
	// Blocks are the closed gates one by one, with when each opens where
	// that is known (the portal writes "opens in 58 min" from them).
	Blocked bool
	Reason  string
	Blocks  []gate.Block
}

// Incoming is what a promotion of app into e would bring from the
// environment e promotes from, where from runs (nil: nothing), and the
// gates it would meet now, from what is at hand: the environment matrix
// says why a cell waits without a preview per cell. It is nil when e
// promotes from nowhere, or runs current, the artifact from runs,
// already. author names who wrote a revision (AuthorOf; the caller
// caches it for a page of cells).
func (s *Service) Incoming(ctx context.Context, repo *spec.Repo, e *spec.Environment, app string, from *reconcile.UnitStatus, current string, author func(sha string) string) *Incoming {
	if e.Promotion == nil || e.Promotion.From == "" || from == nil || from.Artifact == "" || from.Artifact == current {
		return nil
	}
	in := &Incoming{From: e.Promotion.From, Revision: from.Revision, Artifact: from.Artifact, Needed: e.Promotion.Approvals, Approvals: []string{}}
	if in.Needed > 0 {
		if as, err := s.store.Approvals(ctx, app, e.Name, from.Artifact); err == nil {
			for _, a := range as {
				in.Approvals = append(in.Approvals, a.User)
			}
		}
	}
	healthy, since := s.runsHealthy(ctx, app, e.Promotion.From, from.Artifact)
	res := gate.Check(gate.Input{Env: e, Freezes: repo.Platform.Freezes, Now: s.clock.Now(), Source: healthy, HealthySince: since,
		Approvers: in.Approvals, Author: author(from.Revision)})
	in.Blocked, in.Reason, in.Blocks = !res.Open(), res.Reason(), res.Blocks
	return in
}

// Frozen says why e is frozen now, "" when it is not: the calendar's gate,
// which holds even a rollback.
func (s *Service) Frozen(repo *spec.Repo, e *spec.Environment) string {
	why := ""
	for _, b := range gate.Check(gate.Input{Env: e, Freezes: repo.Platform.Freezes, Now: s.clock.Now(), Rollback: true}).Blocks {
		if b.Gate == "freeze" {
			why = b.Reason
		}
	}
	return why
}

// Approvals lists the approvals of artifact for app in env; an empty
// artifact is the one a promotion to env would bring now (what runs in the
// environment it promotes from), which it returns.
func (s *Service) Approvals(ctx context.Context, app, env, artifact string) (string, []store.Approval, error) {
	if artifact == "" {
		if repo := s.repoInForce(); repo != nil {
			if e := repo.Environment(env); e != nil && e.Promotion != nil {
				if cur, err := s.store.CurrentRelease(ctx, app, e.Promotion.From); err == nil {
					artifact = cur.Artifact
				}
			}
		}
	}
	as, err := s.store.Approvals(ctx, app, env, artifact)
	return artifact, as, err
}
