package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/apps"
	"github.com/socle-dev/socle/internal/notify"
	"github.com/socle-dev/socle/internal/promotion"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

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
		s.pipeline.Replan()
	}
	n := notify.Event{App: r.App, Env: r.Env, Revision: r.Revision, Release: r.ID, Actor: r.Author,
		Fields: map[string]string{"artifact": r.Artifact, "strategy": r.Strategy, "trigger": string(r.Trigger)}}
	switch {
	case ev.Phase == "started":
		n.Kind, n.Title = notify.DeployStarted, fmt.Sprintf("Deploying %s to %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d: %s (%s) with %s", r.ID, promotion.Short(r.Revision), promotion.Short(r.Artifact), r.Strategy)
	case r.Status == store.Succeeded && r.Trigger == store.TriggerRollback:
		n.Kind, n.Title = notify.Rollback, fmt.Sprintf("%s rolled back in %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d restores %s (%s)", r.ID, promotion.Short(r.Revision), promotion.Short(r.Artifact))
	case r.Status == store.Succeeded:
		n.Kind, n.Title = notify.DeploySucceeded, fmt.Sprintf("%s is live in %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d: %s (%s)", r.ID, promotion.Short(r.Revision), promotion.Short(r.Artifact))
	case r.Status == store.RolledBack:
		n.Kind, n.Title = notify.Rollback, fmt.Sprintf("%s rolled back in %s", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d rolled back: %s", r.ID, r.Reason)
	default:
		n.Kind, n.Title = notify.DeployFailed, fmt.Sprintf("Deploying %s to %s failed", r.App, r.Env)
		n.Message = fmt.Sprintf("release %d %s: %s", r.ID, r.Status, r.Reason)
	}
	s.announce.Notify(context.Background(), n)
}

// onPhase: a unit that becomes Synced, or stops being, may open or close
// a promotion gate of the next environment.
func (s *Server) onPhase(u reconcile.UnitStatus) {
	s.hub.poke()
	if u.Kind == apps.ID { // gates read apps' health; stacks' do not change a plan of apps
		s.pipeline.Replan()
	}
}

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
				return s.promo.AuthorOf(repo, r.Revision)
			}
			if rev, err := s.repo.Revision(r.Revision); err == nil {
				return rev.Author
			}
		}
	}
	return ""
}
