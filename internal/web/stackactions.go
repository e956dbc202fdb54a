package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/socle-dev/socle/internal/api/client"
)

// stackApprovePost approves, through the API, the plan the page showed
// (the form's plan: a plan made since is not approved unseen) and goes
// back to the instance's page; a refusal shows the page again, as it is
// now, with the API's reason.
func (p *portal) stackApprovePost(w http.ResponseWriter, r *http.Request, s *session) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name, inst := r.PathValue("stack"), r.PathValue("instance")
	plan, comment := strings.TrimSpace(r.PostFormValue("plan")), strings.TrimSpace(r.PostFormValue("comment"))
	_, err := s.api.ApproveStack(r.Context(), name, inst, plan, comment)
	if p.acted(w, r, s, err, stackPath(name, inst)+"?done=approve#h-gate", "action", "stack.approve", "stack", name, "instance", inst, "plan", plan) {
		return
	}
	v, verr := p.stackView(r, s)
	if verr != nil {
		p.fail(w, r, s, err)
		return
	}
	v.Error, v.Comment = approveError(err, plan, v), comment
	p.render(w, r, statusOf(err), "stack", s, v.Stack+" @ "+v.Instance, v)
}

// approveError words the API's refusal of an approval of plan; v is the
// instance as it is now. A 409 for a plan made again since the page was
// loaded names the plan that waits now, which the page shows.
func approveError(err error, plan string, v stackView) string {
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		return err.Error()
	}
	switch cur := v.ApprovePlan(); {
	case cur != "" && cur != plan:
		return "The plan changed since you loaded the page; the current plan is " + cur + ", shown below: read it before you approve it."
	case cur == "":
		return "Plan " + plan + " no longer waits for approval. (" + ae.Message + ")"
	}
	return ae.Message
}

type stackUnlockView struct {
	stackItem
	Admin bool
	Force bool
	Error string
}

// stackUnlockPage asks for the confirmation of an unlock: it removes the
// run lock of an instance, and with force stops a live holder's run.
func (p *portal) stackUnlockPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := p.stackUnlock(r, s)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	p.render(w, r, http.StatusOK, "stackunlock", s, "Unlock "+v.Stack+" @ "+v.Instance, v)
}

// stackUnlock gathers what the unlock's confirmation shows.
func (p *portal) stackUnlock(r *http.Request, s *session) (stackUnlockView, error) {
	d, err := s.api.Stack(r.Context(), r.PathValue("stack"), r.PathValue("instance"))
	if err != nil {
		return stackUnlockView{}, err
	}
	return stackUnlockView{stackItem: stackItem{d.StackInstance}, Admin: s.me.Admin}, nil
}

// stackUnlockPost unlocks through the API and goes back to the instance's
// page; a refusal shows the confirmation again with the API's reason.
func (p *portal) stackUnlockPost(w http.ResponseWriter, r *http.Request, s *session) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name, inst := r.PathValue("stack"), r.PathValue("instance")
	force := r.PostFormValue("force") == "on"
	_, err := s.api.UnlockStack(r.Context(), name, inst, force)
	if p.acted(w, r, s, err, stackPath(name, inst)+"?done=unlock", "action", "stack.unlock", "stack", name, "instance", inst, "force", force) {
		return
	}
	v, verr := p.stackUnlock(r, s)
	if verr != nil {
		p.fail(w, r, s, err)
		return
	}
	v.Force, v.Error = force, err.Error()
	p.render(w, r, statusOf(err), "stackunlock", s, "Unlock "+v.Stack+" @ "+v.Instance, v)
}
