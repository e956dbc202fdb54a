package promotion

import (
	"context"

	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// Gates checks the promotion gates again before a pinned release is
// deployed (a pin may have been edited by hand, or a freeze may have begun
// since the promotion): a new artifact passes every gate; a change that
// keeps the artifact passes the calendar only. The release an emergency
// pin brings passes as the emergency change it was declared (emergencyIn);
// without that, the freeze it was declared against would hold the very
// commit that pins it.
func (s *Service) Gates(ctx context.Context, repo *spec.Repo, c *plan.Change, old *plan.Unit) gate.Result {
	e := repo.Environment(c.Env)
	if e == nil || e.Sync != spec.SyncManual || c.Desired == nil {
		return gate.Result{}
	}
	u := c.Desired
	in := gate.Input{Env: e, Freezes: repo.Platform.Freezes, Now: s.clock.Now(), Rollback: u.Rollback, Author: s.AuthorOf(repo, u.Revision)}
	var refused error
	in.Emergency, refused = emergencyIn(repo, u, old)
	if old != nil && old.Artifact == u.Artifact {
		in.Rollback = true // the same artifact: only the calendar applies
	} else if e.Promotion != nil && e.Promotion.From != "" {
		in.Source, in.HealthySince = s.runsHealthy(ctx, u.App, e.Promotion.From, u.Artifact)
		if apps, err := s.store.Approvals(ctx, u.App, u.Env, u.Artifact); err == nil {
			for _, a := range apps {
				in.Approvers = append(in.Approvers, a.User)
			}
		}
	}
	r := gate.Check(in)
	if !r.Open() && refused != nil {
		r.Blocks = append(r.Blocks, gate.Block{Gate: "emergency", Reason: "the pin's emergency is not honoured: " + refused.Error()})
	}
	return r
}

// emergencyIn reports whether the planned unit u is the release of an
// emergency pin, following old (the unit's last desired state, nil for
// none), declared by someone the repository allows; or why the pin's
// emergency is not honoured. A pin edited by hand is judged like one that
// socle wrote: whoever may push to the repository may edit socle.yaml too.
func emergencyIn(repo *spec.Repo, u, old *plan.Unit) (bool, error) {
	var artifact, revision string
	if old != nil {
		artifact, revision = old.Artifact, old.Revision
	}
	reason := u.EmergencyAfter(artifact, revision)
	if reason == "" {
		return false, nil
	}
	var by string
	if rel := repo.Releases[u.Env]; rel != nil {
		by = rel.Apps[u.App].PromotedBy
	}
	if err := gate.Declare(repo, u.App, u.Env, by, reason); err != nil {
		return false, err
	}
	return true, nil
}
