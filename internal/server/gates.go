package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/notify"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// gatesFor checks the promotion gates again before a pinned release is
// deployed (a pin may have been edited by hand, or a freeze may have begun
// since the promotion): a new artifact passes every gate; a change that
// keeps the artifact passes the calendar only. The release an emergency
// pin brings passes as the emergency change it was declared (emergencyIn);
// without that, the freeze it was declared against would hold the very
// commit that pins it.
func (s *Server) gatesFor(ctx context.Context, repo *spec.Repo, c *plan.Change, old *plan.Unit) gate.Result {
	{
		e := repo.Environment(c.Env)
		if e == nil || e.Sync != spec.SyncManual || c.Desired == nil {
			return gate.Result{}
		}
		u := c.Desired
		in := gate.Input{Env: e, Freezes: repo.Platform.Freezes, Now: s.clock.Now(), Rollback: u.Rollback, Author: s.authorOf(repo, u.Revision)}
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

// releaseNotes lists the commits between two revisions that touched the
// app's directory.
func (s *Server) releaseNotes(ctx context.Context, app, from, to string) json.RawMessage {
	revs, err := s.repo.Log(ctx, from, to, spec.AppsDir+"/"+app+"/")
	if err != nil {
		return nil
	}
	type note struct {
		SHA     string    `json:"sha"`
		Author  string    `json:"author"`
		Time    time.Time `json:"time"`
		Subject string    `json:"subject"`
	}
	notes := make([]note, len(revs))
	for i, r := range revs {
		notes[i] = note{SHA: r.SHA, Author: r.Author, Time: r.Time, Subject: r.Subject()}
	}
	b, _ := json.Marshal(map[string]any{"commits": notes})
	return b
}

// onRelease turns rollouts into notifications; a finished one may open a
// gate of the next environment.
func (s *Server) onRelease(ev reconcile.ReleaseEvent) {
	r := ev.Release
	if ev.Phase == "finished" {
		s.pipeline.Replan()
	}
	n := notify.Event{App: r.App, Env: r.Env, Revision: r.Revision, Release: r.ID, Actor: r.Author,
		Fields: map[string]string{"artifact": r.Artifact, "strategy": r.Strategy, "trigger": string(r.Trigger)}}
	switch {
	case ev.Phase == "started":
		n.Kind, n.Title = notify.DeployStarted, fmt.Sprintf("Deploying %s to %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d: %s (%s) with %s", r.ID, short(r.Revision), short(r.Artifact), r.Strategy)
	case r.Status == store.Succeeded && r.Trigger == store.TriggerRollback:
		n.Kind, n.Title = notify.Rollback, fmt.Sprintf("%s rolled back in %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d restores %s (%s)", r.ID, short(r.Revision), short(r.Artifact))
	case r.Status == store.Succeeded:
		n.Kind, n.Title = notify.DeploySucceeded, fmt.Sprintf("%s is live in %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d: %s (%s)", r.ID, short(r.Revision), short(r.Artifact))
	case r.Status == store.RolledBack:
		n.Kind, n.Title = notify.Rollback, fmt.Sprintf("%s rolled back in %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d rolled back: %s", r.ID, r.Reason)
	default:
		n.Kind, n.Title = notify.DeployFailed, fmt.Sprintf("Deploying %s to %s failed", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d %s: %s", r.ID, r.Status, r.Reason)
	}
	s.notifyEvent(context.Background(), n)
}

// onPhase: a unit that becomes Synced, or stops being, may open or close
// a promotion gate of the next environment.
func (s *Server) onPhase(reconcile.UnitStatus) { s.pipeline.Replan() }

// releaseAuthor names who a release is for: the author of the revision
// that set the unit's desired state (the promotion's or rollback's commit
// in a manual environment, the commit that changed the app in one that
// follows Git), as teams.yaml names them.
func (s *Server) releaseAuthor(ctx context.Context, app, env string) string {
	rows, err := s.store.Desired(ctx)
	if err != nil {
		return ""
	}
	for _, r := range rows {
		if r.App == app && r.Env == env && r.Revision != "" {
			if repo := s.repoInForce(); repo != nil {
				return s.authorOf(repo, r.Revision)
			}
			if rev, err := s.repo.Revision(r.Revision); err == nil {
				return rev.Author
			}
		}
	}
	return ""
}
