package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/trace"
)

// DesiredReader reads the desired state recorded for every unit (a Store
// does).
type DesiredReader interface {
	Desired(ctx context.Context) ([]store.Desired, error)
}

// Applied reads the last-applied state of every unit from the store.
func Applied(ctx context.Context, st DesiredReader) ([]plan.Unit, error) {
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
	// Blocked are the units whose change a policy denied or a gate holds:
	// their desired state stays what it was, and they say why.
	Blocked map[plan.Key]reconcile.Block
	// Recorded is false when the revision had been planned before with the
	// same outcome: nothing was written.
	Recorded bool
	// Clock is true when a denial comes from a policy that reads the time
	// (now, history): its verdict may change with nothing else changing.
	Clock bool
	// Opens is the earliest time a closed gate that holds a change opens,
	// zero when none says.
	Opens time.Time
}

// PlanBody is what the store keeps of a plan: the plan and the verdicts of
// the policies on each change.
type PlanBody struct {
	plan.Plan
	Decisions []policy.Decision `json:"decisions"`
	// Gates are the changes a closed promotion gate holds, by "app@env".
	Gates map[string]string `json:"gates,omitempty"`
	// Secrets are the changes held because socle cannot decrypt the
	// unit's secret file, or resolve a reference to a secret manager, by
	// "app@env": the file or the reference and why.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Unresolved are the keys of Secrets held by a reference, not a file.
	Unresolved []string `json:"unresolved,omitempty"`
}

// storedPlan is a plan body as the store keeps it: with the fingerprint of
// its outcome, which the API does not show.
type storedPlan struct {
	PlanBody
	Outcome string `json:"outcome,omitempty"`
}

// BlockedBy returns the units a recorded plan body blocked, with the reason.
func (b *PlanBody) BlockedBy() map[plan.Key]reconcile.Block {
	out := map[plan.Key]reconcile.Block{}
	for k, why := range b.Gates {
		if app, env, ok := strings.Cut(k, "@"); ok {
			out[plan.Key{App: app, Env: env}] = reconcile.Block{Reason: reconcile.ReasonGateClosed, Message: why}
		}
	}
	for k, vs := range Denied(b.Decisions) {
		msgs := make([]string, len(vs))
		for i, v := range vs {
			msgs[i] = v.Policy + ": " + v.Message
		}
		why := "denied by policy " + strings.Join(msgs, "; ")
		if g := out[k]; g.Message != "" {
			why += "; " + g.Message
		}
		out[k] = reconcile.Block{Reason: reconcile.ReasonPolicyDenied, Message: why}
	}
	// A unit whose secrets cannot be decrypted would not start whatever
	// the gates and policies say: that reason comes first.
	for k, why := range b.Secrets {
		if app, env, ok := strings.Cut(k, "@"); ok {
			key := plan.Key{App: app, Env: env}
			if other := out[key]; other.Message != "" {
				why += "; " + other.Message
			}
			reason := reconcile.ReasonSecretUndecryptable
			if slices.Contains(b.Unresolved, k) {
				reason = reconcile.ReasonSecretUnresolved
			}
			out[key] = reconcile.Block{Reason: reason, Message: why}
		}
	}
	return out
}

// outcome is a fingerprint of what a plan decided: the desired state it
// leaves (each unit's, after the changes it allows), and which policies
// and gates hold which unit. The words may change (a soak's elapsed time)
// while the outcome does not; and a plan of the same revision again, once
// its changes were applied, leaves the same desired state.
func outcome(p *plan.Plan, applied []plan.Unit, blocked map[plan.Key]reconcile.Block, decisions []policy.Decision, gates map[string][]string, secrets map[string]string) string {
	result := make(map[plan.Key]string, len(applied))
	for i := range applied {
		result[applied[i].Key()] = applied[i].Hash()
	}
	for _, c := range p.Changes {
		k := plan.Key{App: c.App, Env: c.Env}
		if _, held := blocked[k]; held {
			continue
		}
		switch {
		case c.Action == plan.Delete:
			delete(result, k)
		case c.Desired != nil:
			result[k] = c.Desired.Hash()
		}
	}
	h := sha256.New()
	keys := slices.SortedFunc(maps.Keys(result), func(a, b plan.Key) int { return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App)) })
	for _, k := range keys {
		fmt.Fprintf(h, "unit %s %s %s\x00", k.App, k.Env, result[k])
	}
	for _, d := range decisions {
		if _, held := blocked[plan.Key{App: d.App, Env: d.Env}]; !held {
			continue
		}
		for _, v := range d.Verdicts {
			if v.Blocks() {
				fmt.Fprintf(h, "denied %s %s %s\x00", d.App, d.Env, v.Policy)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(gates)) {
		fmt.Fprintf(h, "gate %s %s\x00", k, strings.Join(gates[k], ","))
	}
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		fmt.Fprintf(h, "secrets %s %s\x00", k, secrets[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// lastOutcome is the outcome of the last plan recorded for a revision, ""
// when there is none (or it was recorded before outcomes were).
func lastOutcome(ctx context.Context, st Store, sha string) (string, error) {
	ps, err := st.Plans(ctx, sha, 1)
	if err != nil || len(ps) == 0 {
		return "", err
	}
	full, err := st.Plan(ctx, ps[0].ID)
	if err != nil {
		return "", err
	}
	var sp storedPlan
	if err := json.Unmarshal(full.Body, &sp); err != nil {
		return "", fmt.Errorf("reading plan %d: %w", ps[0].ID, err)
	}
	return sp.Outcome, nil
}

// Gates says which promotion gates hold a planned change (an open result
// when none does); old is the unit's last-applied state.
type Gates func(ctx context.Context, repo *spec.Repo, c *plan.Change, old *plan.Unit) gate.Result

// Record validates one revision and, when it is valid, plans it against the
// last-applied state and records the plan and the new desired state in one
// transaction. An invalid revision is recorded with its problems and changes
// nothing else: the last good revision stays in force. A revision planned
// again (a gate may have opened) whose outcome is the one recorded last
// for it records nothing: no audit record, no plan, no event. now is the
// time the policies judge at. dec decrypts the units' secret files
// (withSecrets); nil: socle holds no identity. refs checks that the
// references to secret managers resolve (withReferences); a unit held by
// one is planned again a minute later (the store may be back).
func Record(ctx context.Context, st Store, log *slog.Logger, rev source.Revision, fsys fs.FS, repo *spec.Repo, problems spec.Problems, at plan.AppAt, gates Gates, dec Decrypter, refs Resolver, now time.Time) (Outcome, error) {
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
	_, span := trace.Start(ctx, "plan", trace.Revision(rev.SHA))
	applied, err := Applied(ctx, st)
	if err != nil {
		trace.End(span, err)
		return out, err
	}
	desired := plan.Desired(repo, rev.SHA, at)
	undecrypted := withSecrets(fsys, repo, desired, dec)
	unresolved := withReferences(ctx, repo, desired, refs)
	p := plan.Diff(rev.SHA, desired, applied)
	// The store keeps the units, not the provisioners they were applied
	// with: both sides are served by this revision's.
	p.Resources = plan.DiffResources(plan.ResourcesOf(repo, applied), plan.ResourcesOf(repo, desired))
	span.SetAttributes(trace.Int("create", p.Summary.Create), trace.Int("update", p.Summary.Update), trace.Int("delete", p.Summary.Delete))
	span.End()
	_, span = trace.Start(ctx, "policy", trace.Revision(rev.SHA))
	policies, _ := policy.Compile(repo, fsys)
	decisions := Judge(ctx, policies, &p, applied, st, now)
	pb := PlanBody{Plan: p, Decisions: decisions}
	for _, c := range p.Changes {
		if c.Action != plan.Create && c.Action != plan.Update {
			continue
		}
		k := plan.Key{App: c.App, Env: c.Env}
		b, ok := undecrypted[k]
		if !ok {
			if b, ok = unresolved[k]; ok {
				pb.Unresolved = append(pb.Unresolved, c.App+"@"+c.Env)
				out.Opens = now.Add(time.Minute)
			}
		}
		if ok {
			if pb.Secrets == nil {
				pb.Secrets = map[string]string{}
			}
			pb.Secrets[c.App+"@"+c.Env] = b.Message
		}
	}
	out.Blocked = pb.BlockedBy()
	for _, d := range decisions {
		for _, v := range d.Verdicts {
			out.Clock = out.Clock || v.Blocks() && v.Clock
		}
	}
	held := map[string][]string{} // the gates that hold each unit, by name
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
			if r := gates(ctx, repo, c, old[k]); !r.Open() {
				why := "gate " + r.Reason()
				if pb.Gates == nil {
					pb.Gates = map[string]string{}
				}
				pb.Gates[c.App+"@"+c.Env] = why
				for _, b := range r.Blocks {
					held[c.App+"@"+c.Env] = append(held[c.App+"@"+c.Env], b.Gate)
					if !b.Opens.IsZero() && (out.Opens.IsZero() || b.Opens.Before(out.Opens)) {
						out.Opens = b.Opens
					}
				}
				b := reconcile.Block{Reason: reconcile.ReasonGateClosed, Message: why}
				if prev, ok := out.Blocked[k]; ok {
					b = reconcile.Block{Reason: prev.Reason, Message: prev.Message + "; " + why}
				}
				out.Blocked[k] = b
			}
		}
	}
	verdict := "allowed"
	if len(out.Blocked) > 0 {
		verdict = "blocked" // by a gate, a policy or secrets: not an error of socle's
	}
	span.SetAttributes(trace.Outcome(verdict), trace.Int("blocked", len(out.Blocked)))
	span.End()
	fingerprint := outcome(&p, applied, out.Blocked, decisions, held, pb.Secrets)
	if last, err := lastOutcome(ctx, st, rev.SHA); err != nil {
		return out, err
	} else if last == fingerprint {
		return out, nil // planned again, decided the same: nothing to record
	}
	out.Recorded = true
	if err := st.PutRevision(ctx, r); err != nil {
		return out, err
	}
	// The stored plan is for people: secrets are redacted before it is
	// written (the desired state keeps them, for the runtime).
	pb.Plan = plan.RedactPlan(pb.Plan, applied)
	body, err := json.Marshal(storedPlan{PlanBody: pb, Outcome: fingerprint})
	if err != nil {
		return out, err
	}
	var set []store.Desired
	var remove []store.Unit
	events := []store.Event{{Kind: "revision.valid", Revision: rev.SHA, Message: fmt.Sprintf("revision %s: %s", rev.Short(), rev.Subject())}}
	for _, c := range p.Changes {
		if why, ok := out.Blocked[plan.Key{App: c.App, Env: c.Env}]; ok {
			kind := "policy.denied"
			switch why.Reason {
			case reconcile.ReasonSecretUndecryptable:
				kind = "secret.undecryptable"
			case reconcile.ReasonSecretUnresolved:
				kind = "secret.unresolved"
			}
			events = append(events, store.Event{Kind: kind, App: c.App, Env: c.Env, Revision: rev.SHA,
				Message: fmt.Sprintf("%s @ %s: %s %s; the unit keeps its last allowed state", c.App, c.Env, c.Action, why.Message)})
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
	for _, d := range set {
		trace.Hand(ctx, trace.UnitKey(d.App, d.Env)) // its build and rollout go on in this trace
	}
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
