package promotion

import (
	"context"
	"fmt"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/store"
)

// SyncOutcome is what a deploy in an environment that follows Git does to
// one unit. A unit runs the last revision that changed it, not the head:
// a commit that leaves an app's files alone leaves its unit alone.
type SyncOutcome struct {
	// Outcome is api.OutcomeSyncing, api.OutcomeUnchanged or
	// api.OutcomeHeld.
	Outcome string `json:"outcome"`
	// Revision is the revision the unit runs or is rolling out: the last
	// one that changed it.
	Revision string `json:"revision"`
	// Running is the revision of the release that serves now, "" if none.
	Running string `json:"running,omitempty"`
	// Head is the newest valid revision.
	Head string `json:"head,omitempty"`
	// Reason says why a change is held.
	Reason string `json:"reason,omitempty"`
}

// decideSync says what a sync does to a unit whose desired state comes
// from desired ("" when it has none yet: the head), that runs running
// (synced and healthy when synced), and that a gate or a policy holds when
// held is not empty.
func decideSync(desired, running, head string, synced bool, held string) SyncOutcome {
	o := SyncOutcome{Revision: desired, Running: running, Head: head}
	if o.Revision == "" {
		o.Revision = head
	}
	switch {
	case held != "":
		o.Outcome, o.Reason = api.OutcomeHeld, held
	case running == o.Revision && synced:
		o.Outcome = api.OutcomeUnchanged
	default:
		o.Outcome = api.OutcomeSyncing
	}
	return o
}

// Words says the outcome to people.
func (o SyncOutcome) Words(app, env string) string {
	switch o.Outcome {
	case api.OutcomeUnchanged:
		s := fmt.Sprintf("%s in %s already runs %s, the last revision that changed it; nothing changes", app, env, short7(o.Revision))
		if o.Head != "" && o.Head != o.Revision {
			s += fmt.Sprintf(" (the newest revision %s does not touch it)", short7(o.Head))
		}
		return s
	case api.OutcomeHeld:
		return fmt.Sprintf("%s in %s keeps %s: %s", app, env, orNothing(short7(o.Running)), o.Reason)
	}
	if o.Running == "" {
		return fmt.Sprintf("deploying %s in %s at %s", app, env, short7(o.Revision))
	}
	return fmt.Sprintf("syncing %s in %s from %s to %s", app, env, short7(o.Running), short7(o.Revision))
}

// syncOutcome reads what decideSync looks at for app in env.
func (s *Service) syncOutcome(ctx context.Context, app, env, head string) SyncOutcome {
	var desired, running string
	if d, err := s.store.DesiredUnit(ctx, store.Unit{App: app, Env: env}); err == nil {
		desired = d.Revision
	}
	synced := false
	if cur, err := s.store.CurrentRelease(ctx, app, env); err == nil {
		running = cur.Revision
		for _, u := range s.units.Status() {
			if u.App == app && u.Env == env {
				synced = u.Phase == reconcile.Synced && u.Release == cur.ID
			}
		}
	}
	var held string
	if b, ok := s.pipeline.BlockedBy(app, env); ok {
		held = b.Message
	}
	return decideSync(desired, running, head, synced, held)
}

func short7(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func orNothing(s string) string {
	if s == "" {
		return "nothing running"
	}
	return s
}
