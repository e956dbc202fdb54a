package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/lease"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	units "github.com/socle-dev/socle/internal/unit"
)

// notRun is why a socle without terraform lists stacks and runs none.
const notRun = "stacks are not run: neither terraform nor tofu is on socle's PATH (install one and restart socle)"

func (s *Server) listStacks(w http.ResponseWriter, r *http.Request) {
	repo, sha, ok := s.stacksInForce(w)
	if !ok {
		return
	}
	states, err := s.store.UnitStates(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	units := map[[2]string]store.UnitState{}
	for _, u := range states {
		if u.Kind == stack.KindID {
			units[[2]string{u.Name, u.Env}] = u
		}
	}
	v := newStackView(repo, s.stacks)
	v.gate = s.stackGate(r.Context(), repo, sha)
	out := api.StackList{Revision: sha, Items: []api.StackInstance{}}
	if s.stacks == nil {
		out.NotRun = notRun
	}
	for _, t := range stack.Targets(repo, nil) {
		u, ok := units[[2]string{t.Stack.Name, t.Instance}]
		item, _ := v.instance(t, u, ok)
		out.Items = append(out.Items, item)
	}
	s.reply(w, r, out)
}

func (s *Server) getStack(w http.ResponseWriter, r *http.Request) {
	repo, sha, t, ok := s.stackRequest(w, r, nil)
	if !ok {
		return
	}
	u, err := s.store.UnitState(r.Context(), stack.KindID, t.Stack.Name, t.Instance)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	v := newStackView(repo, s.stacks)
	v.gate = s.stackGate(r.Context(), repo, sha)
	item, last := v.instance(t, u, found)
	out := api.StackDetail{StackInstance: item, Revision: sha}
	if s.stacks == nil {
		out.NotRun = notRun
	} else {
		v.detail(t, last, &out)
	}
	s.reply(w, r, out)
}

func (s *Server) unlockStack(w http.ResponseWriter, r *http.Request) {
	var req api.StackUnlockRequest
	_, _, t, ok := s.stackRequest(w, r, &req)
	if !ok {
		return
	}
	if s.stacks == nil {
		writeError(w, http.StatusConflict, "refused", notRun)
		return
	}
	h, held, err := s.stacks.Unlock(t.Stack.Name, t.Instance, req.Force)
	switch {
	case errors.Is(err, stack.ErrLiveHolder):
		writeJSON(w, http.StatusConflict, api.Error{Error: api.ErrorBody{Code: "conflict", Message: err.Error(), Details: wireLock(h)}})
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal", fmt.Sprintf("unlocking %s @ %s: %v", t.Stack.Name, t.Instance, err))
		return
	}
	out := api.StackUnlock{Stack: t.Stack.Name, Instance: t.Instance, Held: held}
	if held {
		lock := wireLock(h)
		out.Holder = &lock
		user := callerOf(r).User
		// The shape of `socle stack unlock`'s record, with the caller.
		detail, err := json.Marshal(struct {
			Stack    string        `json:"stack"`
			Instance string        `json:"instance"`
			Force    bool          `json:"force"`
			Holder   *lease.Holder `json:"holder"`
		}{t.Stack.Name, t.Instance, req.Force, &h})
		if err == nil {
			_, err = s.store.AppendAudit(r.Context(), store.AuditRecord{Actor: user, Action: "stack.unlocked", Detail: detail})
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "store", fmt.Sprintf("the lock of %s @ %s was removed, but recording it in the audit trail failed: %v", t.Stack.Name, t.Instance, err))
			return
		}
		s.log.Warn("a stack's run lock was removed", "stack", t.Stack.Name, "instance", t.Instance, "user", user, "holder", h.String(), "force", req.Force)
	}
	writeJSON(w, http.StatusOK, out)
}

// stackRequest reads the body into req (nil: none), the revision in
// force and its SHA, and the instance the path names; it answers the
// request itself when one of them is wrong.
func (s *Server) stackRequest(w http.ResponseWriter, r *http.Request, req any) (*spec.Repo, string, stack.Target, bool) {
	if req != nil && !readBody(w, r, req) {
		return nil, "", stack.Target{}, false
	}
	repo, sha, ok := s.stacksInForce(w)
	if !ok {
		return nil, "", stack.Target{}, false
	}
	t, ok := stackTarget(w, r, repo)
	return repo, sha, t, ok
}

// stacksInForce is the revision in force, loaded, and its SHA; before
// the first it answers 409 itself.
func (s *Server) stacksInForce(w http.ResponseWriter) (*spec.Repo, string, bool) {
	repo, sha := s.pipeline.InForce()
	if repo == nil {
		writeError(w, http.StatusConflict, "refused", "no valid revision of the platform repository yet")
	}
	return repo, sha, repo != nil
}

// stackTarget is the instance the path names, in repo; it answers 404
// itself for a stack or an instance repo does not have.
func stackTarget(w http.ResponseWriter, r *http.Request, repo *spec.Repo) (stack.Target, bool) {
	name, inst := r.PathValue("stack"), r.PathValue("instance")
	st := repo.Stack(name)
	if st == nil {
		names := make([]string, len(repo.Stacks))
		for i, s := range repo.Stacks {
			names[i] = s.Name
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no stack %q in the revision in force (stacks: %s)", name, listOr(names)))
		return stack.Target{}, false
	}
	if !slices.Contains(st.Instances(), inst) {
		of := "environments"
		if st.PerZone() {
			of = "zones"
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("stack %s has no instance %q: it is in the %s %s", name, inst, of, listOr(st.Instances())))
		return stack.Target{}, false
	}
	return stack.Target{Stack: st, Instance: inst}, true
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// stackView reads what the runner recorded of the instances of repo, for
// one answer.
type stackView struct {
	repo   *spec.Repo
	runner *stack.Runner // nil: stacks are not run
	// outs reads each upstream's outputs once per answer, to resolve
	// the instances' inputs.
	outs stack.Outputs
	// gate judges the gates of a gated instance's plan (nil: not shown).
	gate func(t stack.Target, planID, hash string) (stack.GateState, error)
}

func newStackView(repo *spec.Repo, runner *stack.Runner) *stackView {
	v := &stackView{repo: repo, runner: runner}
	if runner != nil {
		v.outs = stack.ReadOnce(stack.AppliedOutputs{Dir: runner.Dir, Secret: runner.Secret})
	}
	return v
}

// instance is t as the list shows it, and its last plan read once for
// the detail (nil when never planned); u is the engine's record of it,
// when found.
func (v *stackView) instance(t stack.Target, u store.UnitState, found bool) (api.StackInstance, *stack.Result) {
	out := api.StackInstance{Stack: t.Stack.Name, Instance: t.Instance, Of: "environment", DependsOn: t.Stack.Config.DependsOn}
	if t.Stack.PerZone() {
		out.Of = "zone"
	}
	problem := func(what string, err error) {
		out.Problems = append(out.Problems, fmt.Sprintf("%s: %v", what, err))
	}
	if found && len(u.Status) > 0 {
		var st reconcile.UnitStatus
		if err := json.Unmarshal(u.Status, &st); err != nil {
			problem("the engine's status does not read", err)
		} else {
			out.Unit = &api.StackUnit{Phase: string(st.Phase), Reason: string(st.Reason), Message: st.Message, Since: st.Since.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
				Revision: st.Revision}
		}
	}
	if v.runner == nil {
		return out, nil
	}
	name, inst := t.Stack.Name, t.Instance
	// What does not resolve (an input that is invalid, an upstream
	// whose outputs do not read) is what a plan reports, secrets
	// redacted: the view leaves it to the plan.
	now, err := stack.Resolve(v.repo, v.outs, t.Stack, inst)
	if err == nil {
		for _, p := range now.Pending {
			out.Pending = append(out.Pending, api.StackPending(p))
		}
	}
	var last *stack.Result
	if res, at, ok := v.runner.LastPlan(name, inst); ok {
		last = &res
		out.Plan = &api.StackPlan{Status: string(res.Status), Reason: string(res.Reason), Message: res.Message, PlanID: res.PlanID, Hash: res.Hash,
			Summary: api.StackSummary(res.Summary), RecordedAt: at.UTC(), Outdated: now != nil && res.Hash != "" && now.Hash != res.Hash}
	}
	out.Gated = stack.ApplyOf(v.repo, t.Stack, inst) == spec.StackApplyGated
	if out.Gated && v.gate != nil && last != nil && last.Status == stack.StatusPlanned && last.PlanID != "" && !out.Plan.Outdated {
		if g, err := v.gate(t, last.PlanID, last.Hash); err != nil {
			problem("the approvals of the last plan", err)
		} else {
			out.Gate = wireGate(g, last.Summary)
		}
	}
	if run, ok, err := v.runner.LastRun(name, inst); err != nil {
		problem("the last apply", err)
	} else if ok {
		apply := wireRun(run)
		out.Apply = &apply
	}
	if h, held, err := v.runner.Holder(name, inst); err != nil {
		problem("the run lock", err)
	} else if held {
		lock := wireLock(h)
		out.Lock = &lock
	}
	return out, last
}

// detail adds to out the whole of the last plan, res (nil: none), and
// the outputs of the last apply.
func (v *stackView) detail(t stack.Target, res *stack.Result, out *api.StackDetail) {
	if res != nil {
		out.Inputs, out.MoreChanges = res.Inputs, res.MoreChanges
		for _, c := range res.Changes {
			out.Changes = append(out.Changes, wireStackChange(c))
		}
		for _, o := range res.Outputs {
			out.OutputChanges = append(out.OutputChanges, api.StackOutputChange{Name: o.Name, Action: string(o.Action), Before: o.Before, After: o.After})
		}
	}
	name, inst := t.Stack.Name, t.Instance
	outs, ok, err := v.runner.ShowOutputs(name, inst)
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("the outputs of the last apply: %v", err))
	} else if ok {
		out.Outputs = outs
	}
	if d, ok, err := v.runner.LastDrift(name, inst); err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("the last drift check: %v", err))
	} else if ok {
		wd := &api.StackDrift{Checked: d.Checked.UTC(), Status: string(d.Status), Reason: string(d.Reason), Message: d.Message, Summary: d.Summary, MoreDrifted: d.MoreDrifted}
		for _, c := range d.Drifted {
			wd.Drifted = append(wd.Drifted, wireStackChange(c))
		}
		out.Drift = wd
	}
	runs, err := v.runner.History(name, inst)
	if err != nil {
		out.Problems = append(out.Problems, fmt.Sprintf("the history of applies: %v", err))
	}
	for _, run := range runs {
		out.History = append(out.History, wireRun(run))
	}
}

// wireStackChange is a resource change as the API shows it: the attributes
// that change, without the whole objects the policies see.
func wireStackChange(c stack.ResourceChange) api.StackChange {
	wc := api.StackChange{Address: c.Address, Type: c.Type, Name: c.Name, Action: string(c.Action), CreateFirst: c.CreateFirst,
		Reason: c.Reason, MoreAttributes: c.MoreAttributes}
	for _, a := range c.Attributes {
		wc.Attributes = append(wc.Attributes, api.StackAttributeChange(a))
	}
	return wc
}

func wireRun(run stack.Run) api.StackApply {
	return api.StackApply{PlanID: run.PlanID, Hash: run.Hash, Status: string(run.Status), Reason: string(run.Reason), Message: run.Message,
		Holder: wireLock(run.Holder), Started: run.Started.UTC(), Finished: run.Finished.UTC()}
}

// stackGate judges the gates of a plan of an instance of repo (sha) as
// the stack kind does, now: the approvals recorded, and the author of the
// revision the plan's content was first planned at (the runner records
// it), else of the revision in force. Each revision's author is read
// once per answer: a list judges every gated instance.
func (s *Server) stackGate(ctx context.Context, repo *spec.Repo, sha string) func(t stack.Target, planID, hash string) (stack.GateState, error) {
	authors := map[string]string{}
	authorOf := func(rev string) string {
		a, ok := authors[rev]
		if !ok {
			a = s.promo.AuthorOf(repo, rev)
			authors[rev] = a
		}
		return a
	}
	return func(t stack.Target, planID, hash string) (stack.GateState, error) {
		approvers, err := s.stackApprovers(ctx, t.Stack.Name, t.Instance, planID)
		if err != nil {
			return stack.GateState{}, err
		}
		from := sha
		if s.stacks != nil {
			if rev, ok, err := s.stacks.PlanOrigin(t.Stack.Name, t.Instance, hash); err != nil {
				return stack.GateState{}, err
			} else if ok {
				from = rev
			}
		}
		return stack.CheckGate(repo, t.Stack, t.Instance, planID, s.clock.Now(), authorOf(from), approvers), nil
	}
}

func wireGate(g stack.GateState, sum stack.Summary) *api.StackGate {
	out := &api.StackGate{PlanID: g.PlanID, Author: g.Author, Need: g.Need, Approvals: append([]string{}, g.Approvers...), Message: g.Message(sum.String())}
	for _, b := range g.Blocks {
		out.Blocks = append(out.Blocks, api.GateBlock{Gate: api.GateKind(b.Gate), Reason: b.Reason, Opens: b.Opens.UTC()})
	}
	return out
}

func wireLock(h lease.Holder) api.StackLock {
	return api.StackLock{PID: h.PID, Host: h.Host, Addr: h.Addr, Since: h.Since.UTC()}
}

// maxStackComment bounds an approval's comment, which goes into the
// audit trail.
const maxStackComment = 500

func (s *Server) listStackApprovals(w http.ResponseWriter, r *http.Request) {
	_, _, t, ok := s.stackRequest(w, r, nil)
	if !ok {
		return
	}
	plan := r.URL.Query().Get("plan")
	if plan == "" && s.stacks != nil {
		if res, _, ok := s.stacks.LastPlan(t.Stack.Name, t.Instance); ok {
			plan = res.PlanID
		}
	}
	out := api.StackApprovalList{Plan: plan, Items: []api.StackApproval{}}
	if plan != "" {
		as, err := s.store.Approvals(r.Context(), stack.StoreApp(t.Stack.Name), t.Instance, plan)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "store", err.Error())
			return
		}
		for _, a := range as {
			out.Items = append(out.Items, wireStackApproval(t, a))
		}
	}
	s.reply(w, r, out)
}

func (s *Server) approveStack(w http.ResponseWriter, r *http.Request) {
	var req api.StackApprovalRequest
	repo, sha, t, ok := s.stackRequest(w, r, &req)
	if !ok {
		return
	}
	user := callerOf(r).User
	if !repo.MayApproveStack(user, t.Stack, t.Instance) {
		writeError(w, http.StatusForbidden, "forbidden", stackApproveDenial(repo, user, t))
		return
	}
	comment := strings.TrimSpace(req.Comment)
	if strings.ContainsFunc(comment, unicode.IsControl) {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: api.ErrorBody{Code: "bad_request", Message: "the comment must be one line of text", Details: map[string]string{"field": "comment"}}})
		return
	}
	if s.stacks == nil {
		writeError(w, http.StatusConflict, "refused", notRun)
		return
	}
	name, inst := t.Stack.Name, t.Instance
	cur, _, planned := s.stacks.LastPlan(name, inst)
	switch {
	case stack.ApplyOf(repo, t.Stack, inst) != spec.StackApplyGated:
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s @ %s applies its plans automatically: there is nothing to approve", name, inst))
		return
	case !planned || cur.Status != stack.StatusPlanned || cur.PlanID == "":
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s @ %s has no plan waiting to be applied, so plan %s cannot be approved", name, inst, req.Plan))
		return
	case req.Plan != cur.PlanID:
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("plan %s is not the current plan of %s @ %s: the current one is %s (%s)", req.Plan, name, inst, cur.PlanID, cur.Summary))
		return
	}
	detail, err := json.Marshal(struct {
		Stack    string        `json:"stack"`
		Instance string        `json:"instance"`
		Plan     string        `json:"plan"`
		Summary  stack.Summary `json:"summary"`
		Comment  string        `json:"comment,omitempty"`
	}{name, inst, cur.PlanID, cur.Summary, comment})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	a, err := s.store.AddApproval(r.Context(), store.Approval{App: stack.StoreApp(name), Env: inst, Revision: sha, Artifact: cur.PlanID, User: user, Comment: comment},
		&store.AuditRecord{Actor: user, Action: "stack.approved", Detail: detail})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", err.Error())
		return
	}
	s.announce.Record(r.Context(), store.Event{Kind: "stack.approval", App: name, Env: inst, Revision: sha,
		Message: fmt.Sprintf("%s approved plan %s of stack %s @ %s (%s)", user, cur.PlanID, name, inst, cur.Summary)})
	if s.engine != nil {
		s.engine.Trigger(units.Key{Kind: stack.KindID, Name: name, Env: inst}) // its gates may be open now
	}
	writeJSON(w, http.StatusCreated, wireStackApproval(t, a))
}

// stackApproveDenial says who may approve t's plans, for a 403.
func stackApproveDenial(repo *spec.Repo, user string, t stack.Target) string {
	name, inst := t.Stack.Name, t.Instance
	owner := t.Stack.Config.Owner
	if owner == "" {
		return fmt.Sprintf("stack %s has no owner team (stack.yaml owner), so only an admin may approve its plans", name)
	}
	role := repo.RoleIn(user, owner)
	if role == "" {
		role = "no role"
	}
	return fmt.Sprintf("%s has %s in %s, the owner team of stack %s; the plans of %s @ %s are approved by %s of %s, or an admin",
		user, role, owner, name, name, inst, joinRoles(repo.StackApproveRoles(t.Stack, inst)), owner)
}

func wireStackApproval(t stack.Target, a store.Approval) api.StackApproval {
	return api.StackApproval{ID: a.ID, Stack: t.Stack.Name, Instance: t.Instance, Plan: a.Artifact, Revision: a.Revision, User: a.User, Comment: a.Comment, At: a.At.UTC()}
}
