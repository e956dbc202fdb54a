package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"github.com/socle-dev/socle/internal/notify"
	"github.com/socle-dev/socle/internal/pipeline"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	units "github.com/socle-dev/socle/internal/unit"
)

// openStacks makes the runner of the platform's infrastructure stacks,
// in <data>/stacks, with terraform (or tofu) from PATH. Without either,
// s.stacks stays nil: stacks are reported, never run.
func (s *Server) openStacks() {
	bin, err := stack.Binary()
	if err != nil || bin == "" {
		if err != nil {
			s.log.Warn("stacks are not run: terraform cannot be found", "err", err)
		}
		return
	}
	s.stacks = &stack.Runner{Dir: filepath.Join(s.cfg.Data, "stacks"), Terraform: bin, Secret: s.secret,
		Clock: s.clock, Log: s.log}
}

// stackKind is the engine's kind of stack units, nil without a runner
// or when socle does not apply stacks.
func (s *Server) stackKind() *stack.Kind {
	if s.stacks == nil || !s.cfg.ApplyStacks {
		return nil
	}
	return stack.NewKind(stack.KindConfig{Runner: s.stacks, InForce: s.pipeline.InForce, Files: s.repo.Files,
		Judge: s.judgeStack, Approvals: s.stackApprovers, Author: s.authorOf, OnRun: s.onStackRun, OnDrift: s.onStackDrift,
		OnApprovalNeeded: s.onStackApprovalNeeded, Log: s.log})
}

// authorOf names who wrote a revision, as promotions do (s.promo is
// made after the engine's kinds).
func (s *Server) authorOf(repo *spec.Repo, sha string) string { return s.promo.AuthorOf(repo, sha) }

// stackApprovers are the users who approved a plan of a stack instance,
// in order.
func (s *Server) stackApprovers(ctx context.Context, name, instance, planID string) ([]string, error) {
	as, err := s.store.Approvals(ctx, stack.StoreApp(name), instance, planID)
	users := make([]string, len(as))
	for i, a := range as {
		users[i] = a.User
	}
	return users, err
}

// stackUnits are the desired units of the stacks of the revision in force.
func (s *Server) stackUnits() []units.Desired {
	repo, sha := s.pipeline.InForce()
	if s.stacks == nil || !s.cfg.ApplyStacks || repo == nil {
		return nil
	}
	return stack.Units(repo, sha, s.selfHeals)
}

// stackPolicies are the policies of one revision, compiled once: the
// stack kind judges a held plan at every pass.
type stackPolicies struct {
	mu       sync.Mutex
	revision string
	set      *policy.Set
	problems spec.Problems
}

// of returns the policies of revision, compiling them if they are not.
func (p *stackPolicies) of(repo *spec.Repo, fsys fs.FS, revision string) (*policy.Set, spec.Problems) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil || p.revision != revision {
		p.set, p.problems = policy.Compile(repo, fsys)
		p.revision = revision
	}
	return p.set, p.problems
}

// judgeStack judges a stack's plan by the policies of the revision it
// was planned from, as socle plan does: a deny holds the apply, with the
// policies' messages.
func (s *Server) judgeStack(repo *spec.Repo, fsys fs.FS, revision string, r *stack.Result) (bool, string) {
	set, problems := s.stackPolicies.of(repo, fsys, revision)
	if problems.Errors() > 0 {
		return true, "the policies do not compile: " + problems.Err().Error()
	}
	ds, denied := pipeline.JudgeStack(set, repo, r, policy.Context{Operation: policy.Plan, Now: s.clock.Now()})
	if !denied {
		return false, ""
	}
	var why []string
	for _, d := range ds {
		for _, v := range d.Verdicts.Denials() {
			why = append(why, d.Address+": "+v.Message+" ("+v.Policy+")")
		}
	}
	return true, strings.Join(why, "; ")
}

// interruptedReason is the reason of the release of an apply socle
// stopped during.
const interruptedReason = "interrupted: socle stopped during the apply"

// onStackRun records each apply the engine ran: an event; a release of
// the instance (under stack.StoreApp, the plan as its artifact), which
// DORA counts as a deployment of its environment or zone, or a failed
// change; and, with the release's end in the same transaction, an audit
// record stack.applied, stack.apply_failed or stack.apply_interrupted
// (socle stopped during it, told once it is recovered) by socle, or
// stack.destroyed, stack.destroy_failed, stack.destroy_interrupted for
// an instance removed from Git and destroyed, with
// the plan, its summary and its approvers. A plan whose release ended is
// not recorded again: the kind tells of an interrupted apply again after
// each restart until the next apply.
func (s *Server) onStackRun(a stack.Applied) {
	r := a.Run
	ctx := context.Background()
	// An instance removed from Git and destroyed has actions of its own.
	verb, done := "apply", "applied"
	if r.Destroy {
		verb, done = "destroy", "destroyed"
	}
	status, action, reason := store.Succeeded, "stack."+done, r.Message
	kind := action
	switch r.Status {
	case stack.RunApplied:
	case stack.RunFailed:
		status, action = store.Failed, "stack."+verb+"_failed"
		kind = "stack.failed"
	case stack.RunInterrupted:
		status, action, reason = store.Failed, "stack."+verb+"_interrupted", interruptedReason
		kind = "stack.interrupted"
	default:
		return // not an apply that ended: nothing was deployed
	}
	app := stack.StoreApp(r.Stack)
	err := func() error {
		rels, err := s.store.Releases(ctx, store.ReleaseFilter{App: app, Env: r.Instance, Limit: 20})
		if err != nil {
			return err
		}
		for _, rel := range rels {
			if rel.Artifact == r.PlanID && rel.Status != store.Progressing {
				return nil // recorded already
			}
		}
		what := "plan"
		if r.Destroy {
			what = "destroy plan"
		}
		msg := fmt.Sprintf("stack %s @ %s: %s %s %s", r.Stack, r.Instance, what, r.PlanID, strings.ToLower(string(r.Status)))
		if r.Message != "" {
			msg += ": " + r.Message
		}
		s.announce.Record(ctx, store.Event{Kind: kind, App: r.Stack, Env: r.Instance, Revision: a.Revision, Message: msg})
		detail, err := json.Marshal(struct {
			Stack     string        `json:"stack"`
			Instance  string        `json:"instance"`
			Plan      string        `json:"plan"`
			Summary   stack.Summary `json:"summary"`
			Approvers []string      `json:"approvers,omitempty"`
			Message   string        `json:"message,omitempty"`
		}{r.Stack, r.Instance, r.PlanID, a.Summary, a.Approvers, r.Message})
		if err != nil {
			return err
		}
		// A release begun by a socle that stopped before it finished it
		// is the same target: BeginRelease returns it.
		rel, err := s.units.BeginRelease(ctx, store.Release{App: app, Env: r.Instance, Revision: a.Revision, Artifact: r.PlanID, ConfigHash: r.Hash,
			Strategy: "terraform", Trigger: store.TriggerSync, Author: a.Author, StartedAt: r.Started}, nil)
		if err != nil {
			return err
		}
		return s.units.FinishRelease(ctx, rel.ID, status, reason, &store.AuditRecord{Actor: "socle", Action: action, Detail: detail})
	}()
	if err != nil {
		s.log.Error("recording a stack's apply in the audit trail and the releases", "stack", r.Stack, "instance", r.Instance, "plan", r.PlanID, "err", err)
	}
}

// onStackDrift records and notifies drift found in a stack instance.
func (s *Server) onStackDrift(d stack.DriftResult, corrected bool) {
	verb := "reported"
	if corrected {
		verb = "corrected by the next apply"
	}
	msg := fmt.Sprintf("stack %s @ %s drifted (%s): %s", d.Stack, d.Instance, verb, d.Summary)
	s.announce.Record(context.Background(), store.Event{Kind: "drift", App: d.Stack, Env: d.Instance, Message: msg})
	s.announce.Notify(context.Background(), notify.Event{Kind: notify.Drift, App: d.Stack, Env: d.Instance, Title: "Drift in " + d.Instance, Message: msg})
}

// approvalNeededKind is the event of a stack plan that waits for
// approvals; its Data names the plan.
const approvalNeededKind = "stack.approval_needed"

// onStackApprovalNeeded records, and sends the instance's environment's
// notifications, that a gated stack instance's plan waits for approvals:
// the plan, what it changes and the portal's page of the instance. A
// plan announced already (before a restart) is not announced again.
func (s *Server) onStackApprovalNeeded(plan stack.Result, g stack.GateState, revision string) {
	ctx := context.Background()
	type data struct {
		Plan string `json:"plan"`
	}
	evs, err := s.store.Events(ctx, store.EventFilter{Kind: approvalNeededKind, App: plan.Stack, Env: plan.Instance, Limit: store.MaxLimit})
	if err != nil {
		s.log.Error("reading the approvals asked for a stack's plans", "stack", plan.Stack, "instance", plan.Instance, "err", err)
		return
	}
	for _, e := range evs {
		var d data
		if json.Unmarshal(e.Data, &d) == nil && d.Plan == plan.PlanID {
			return
		}
	}
	raw, err := json.Marshal(data{plan.PlanID})
	if err != nil {
		panic(err) // a struct of one string
	}
	msg := fmt.Sprintf("stack %s @ %s: %s", plan.Stack, plan.Instance, g.Message(plan.Summary.String()))
	s.announce.Record(ctx, store.Event{Kind: approvalNeededKind, App: plan.Stack, Env: plan.Instance, Revision: revision, Message: msg, Data: raw})
	changes := make([]string, 0, len(plan.Changes))
	for _, c := range plan.Changes {
		changes = append(changes, c.Sign()+" "+c.Address)
	}
	if plan.MoreChanges > 0 {
		changes = append(changes, fmt.Sprintf("… %d more", plan.MoreChanges))
	}
	ev := notify.Event{Kind: notify.ApprovalNeeded, App: plan.Stack, Env: plan.Instance, Revision: revision, Actor: "socle",
		Title:   fmt.Sprintf("Approval needed: stack %s @ %s", plan.Stack, plan.Instance),
		Message: fmt.Sprintf("%s\n%s\nsocle stack approve %s --env %s --plan %s", msg, strings.Join(changes, "\n"), plan.Stack, plan.Instance, plan.PlanID),
		URL:     "http://" + s.Addr() + "/stacks/" + url.PathEscape(plan.Stack) + "/" + url.PathEscape(plan.Instance),
		Fields:  map[string]string{"stack": plan.Stack, "instance": plan.Instance, "plan": plan.PlanID, "summary": plan.Summary.String()}}
	if plan.Of == "zone" {
		// A zone's instance is routed by the zone (its notify list, or
		// its environments').
		ev.Env, ev.Zone = "", plan.Instance
	}
	s.announce.Notify(ctx, ev)
}
