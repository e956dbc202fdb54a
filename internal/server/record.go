package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
)

// Applied reads the last-applied state of every unit from the store.
func Applied(ctx context.Context, st store.Store) ([]plan.Unit, error) {
	rows, err := st.Desired(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading applied state: %w", err)
	}
	units := make([]plan.Unit, 0, len(rows))
	for _, r := range rows {
		var u plan.Unit
		if err := json.Unmarshal(r.Spec, &u); err != nil {
			return nil, fmt.Errorf("reading applied state of %s @ %s: %w", r.App, r.Env, err)
		}
		units = append(units, u)
	}
	return units, nil
}

// Outcome is what recording one revision did.
type Outcome struct {
	Revision source.Revision
	Problems spec.Problems
	Plan     *plan.Plan
	PlanID   int64
	// Blocked are the units whose change a policy denied: their desired
	// state stays what it was, and they say why.
	Blocked map[plan.Key]string
}

// PlanBody is what the store keeps of a plan: the plan and the verdicts of
// the policies on each change.
type PlanBody struct {
	plan.Plan
	Decisions []policy.Decision `json:"decisions"`
	// Gates are the changes a closed promotion gate holds, by "app@env".
	Gates map[string]string `json:"gates,omitempty"`
}

// BlockedBy returns the units a recorded plan body blocked, with the reason.
func (b *PlanBody) BlockedBy() map[plan.Key]string {
	out := map[plan.Key]string{}
	for k, why := range b.Gates {
		if app, env, ok := strings.Cut(k, "@"); ok {
			out[plan.Key{App: app, Env: env}] = why
		}
	}
	for k, vs := range Blocked(b.Decisions) {
		msgs := make([]string, len(vs))
		for i, v := range vs {
			msgs[i] = v.Policy + ": " + v.Message
		}
		why := "denied by policy " + strings.Join(msgs, "; ")
		if g := out[k]; g != "" {
			why += "; " + g
		}
		out[k] = why
	}
	return out
}

// Record validates one revision and, when it is valid, plans it against the
// last-applied state and records the plan and the new desired state in one
// transaction. An invalid revision is recorded with its problems and changes
// nothing else: the last good revision stays in force.
// Gates says why a planned change must wait (a closed promotion gate), or
// "" when it may be applied; old is the unit's last-applied state.
type Gates func(repo *spec.Repo, c *plan.Change, old *plan.Unit) string

func Record(ctx context.Context, st store.Store, log *slog.Logger, rev source.Revision, fsys fs.FS, repo *spec.Repo, problems spec.Problems, at plan.AppAt, gates Gates) (Outcome, error) {
	out := Outcome{Revision: rev, Problems: problems}
	r := revisionRecord(rev, problems)
	if !r.Valid {
		if err := st.PutRevision(ctx, r); err != nil {
			return out, err
		}
		_, err := st.AppendEvent(ctx, store.Event{Kind: "revision.invalid", Revision: rev.SHA,
			Message: fmt.Sprintf("revision %s does not validate (%d problems); %s", rev.Short(), problems.Errors(), "the last good revision stays in force"), Data: r.Problems})
		log.Warn("revision does not validate", "revision", rev.Short(), "problems", problems.Errors())
		return out, err
	}
	if err := st.PutRevision(ctx, r); err != nil {
		return out, err
	}
	applied, err := Applied(ctx, st)
	if err != nil {
		return out, err
	}
	p := plan.Diff(rev.SHA, plan.Desired(repo, rev.SHA, at), applied)
	decisions, _ := Judge(ctx, repo, fsys, &p, applied, st)
	pb := PlanBody{Plan: p, Decisions: decisions}
	out.Blocked = pb.BlockedBy()
	if gates != nil {
		old := make(map[plan.Key]*plan.Unit, len(applied))
		for i := range applied {
			old[applied[i].Key()] = &applied[i]
		}
		for i := range p.Changes {
			c := &p.Changes[i]
			k := plan.Key{App: c.App, Env: c.Env}
			if c.Action != plan.Create && c.Action != plan.Update {
				continue
			}
			if why := gates(repo, c, old[k]); why != "" {
				if pb.Gates == nil {
					pb.Gates = map[string]string{}
				}
				pb.Gates[c.App+"@"+c.Env] = why
				if prev := out.Blocked[k]; prev != "" {
					why = prev + "; " + why
				}
				out.Blocked[k] = why
			}
		}
	}
	// The stored plan is for people: secrets are redacted before it is
	// written (the desired state keeps them, for the runtime).
	pb.Plan = plan.RedactPlan(pb.Plan, applied)
	body, err := json.Marshal(pb)
	if err != nil {
		return out, err
	}
	var set []store.Desired
	var remove []store.Unit
	events := []store.Event{{Kind: "revision.valid", Revision: rev.SHA, Message: fmt.Sprintf("revision %s: %s", rev.Short(), rev.Subject())}}
	for _, c := range p.Changes {
		if why, ok := out.Blocked[plan.Key{App: c.App, Env: c.Env}]; ok {
			events = append(events, store.Event{Kind: "policy.denied", App: c.App, Env: c.Env, Revision: rev.SHA,
				Message: fmt.Sprintf("%s @ %s: %s %s; the unit keeps its last allowed state", c.App, c.Env, c.Action, why)})
			continue
		}
		switch c.Action {
		case plan.Create, plan.Update:
			b, err := json.Marshal(c.Desired)
			if err != nil {
				return out, err
			}
			set = append(set, store.Desired{App: c.App, Env: c.Env, Revision: rev.SHA, Hash: c.Desired.Hash(), Spec: b}) // the revision that set it; a pinned unit runs an older one
			events = append(events, store.Event{Kind: "unit." + string(c.Action), App: c.App, Env: c.Env, Revision: rev.SHA,
				Message: fmt.Sprintf("%s @ %s: %s (%d field%s)", c.App, c.Env, c.Action, len(c.Fields), plural(len(c.Fields)))})
		case plan.Delete:
			remove = append(remove, store.Unit{App: c.App, Env: c.Env})
			events = append(events, store.Event{Kind: "unit.delete", App: c.App, Env: c.Env, Revision: rev.SHA, Message: fmt.Sprintf("%s @ %s: removed from Git", c.App, c.Env)})
		}
	}
	detail, _ := json.Marshal(map[string]any{"create": p.Summary.Create, "update": p.Summary.Update, "delete": p.Summary.Delete, "blocked": len(out.Blocked)})
	if _, err := st.AppendAudit(ctx, store.AuditRecord{Actor: rev.Author, Action: "revision.apply", Revision: rev.SHA, Detail: detail}); err != nil {
		return out, fmt.Errorf("recording the audit trail: %w", err)
	}
	s := p.Summary
	id, err := st.ApplyDesired(ctx, rev.SHA, set, remove,
		store.Plan{Revision: rev.SHA, Create: s.Create, Update: s.Update, Delete: s.Delete, Unchanged: s.Unchanged, Body: body}, events)
	if err != nil {
		return out, fmt.Errorf("recording plan of %s: %w", rev.Short(), err)
	}
	out.Plan, out.PlanID = &p, id
	log.Info("revision planned", "revision", rev.Short(), "create", s.Create, "update", s.Update, "delete", s.Delete, "unchanged", s.Unchanged)
	return out, nil
}

// revisionRecord is how the store keeps a revision and its verdict.
func revisionRecord(rev source.Revision, problems spec.Problems) store.Revision {
	r := store.Revision{SHA: rev.SHA, Author: rev.Author, Email: rev.Email, Time: rev.Time, Message: rev.Message, Valid: problems.Errors() == 0}
	if !r.Valid {
		r.Problems, _ = json.Marshal(problems)
	}
	return r
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
