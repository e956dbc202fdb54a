package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/apps"
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
func (s *Server) gatesFor(ctx context.Context) Gates {
	return func(repo *spec.Repo, c *plan.Change, old *plan.Unit) gate.Result {
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
		for _, b := range r.Blocks {
			s.openAt(b.Opens)
		}
		return r
	}
}

// openAt asks for the revision in force to be planned again at t (a gate
// opens then); the zero time asks nothing.
func (s *Server) openAt(t time.Time) {
	if t.IsZero() {
		return
	}
	s.opensMu.Lock()
	if s.nextOpen.IsZero() || t.Before(s.nextOpen) {
		s.nextOpen = t
	}
	s.opensMu.Unlock()
	s.wakeRecheck()
}

// wakeRecheck makes recheckGates look at nextOpen again.
func (s *Server) wakeRecheck() {
	select {
	case s.rewait <- struct{}{}:
	default:
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

// Replan asks for the revision in force to be planned again: an approval
// was given, a release finished, a unit's phase changed (the source of a
// promotion became healthy, or stopped being), or a gate's time came.
func (s *Server) Replan() {
	select {
	case s.replanc <- struct{}{}:
	default:
	}
}

// recheckGates plans the revision in force again while some change waits,
// when one of its inputs changes: a closed gate's time comes (soak,
// window, freeze, or a minute for a policy that reads the clock), or Replan
// is called (an approval, a release finished, a unit's phase changed). Not
// on a timer: a denied unit whose inputs stay as they are is not planned
// again, and a plan again that decides the same records nothing (Record).
func (s *Server) recheckGates(ctx context.Context) {
	for {
		s.opensMu.Lock()
		next := s.nextOpen
		s.opensMu.Unlock()
		var opens <-chan time.Time // nil: no gate has a known time
		if !next.IsZero() {
			opens = s.clock.After(max(next.Sub(s.clock.Now())+100*time.Millisecond, 100*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.rewait:
			continue // an earlier opening time is known
		case <-opens:
		case <-s.replanc:
		}
		// The revision in force is read under planMu: read before, it may
		// be replaced by a new commit planned meanwhile, and planning the
		// older one again would put it back in force.
		s.planMu.Lock()
		s.mu.Lock()
		waiting, good := len(s.status.Blocked) > 0, s.status.LastGood
		s.mu.Unlock()
		if !waiting || good == nil {
			s.planMu.Unlock()
			continue
		}
		s.opensMu.Lock()
		s.nextOpen = time.Time{}
		s.opensMu.Unlock()
		s.planRevision(ctx, *good, true)
		s.planMu.Unlock()
	}
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
func (s *Server) onRelease(ev apps.ReleaseEvent) {
	r := ev.Release
	if ev.Phase == "finished" {
		s.Replan()
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
func (s *Server) onPhase(u reconcile.UnitStatus) { s.Replan() }

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
