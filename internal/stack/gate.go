package stack

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/spec"
)

// StoreApp is the App under which the store keeps what it records of a
// stack, as of an app: approvals of its plans (the plan ID as the
// artifact), the releases its applies count as for DORA, their audit
// records. App names are DNS labels, so "stack:<name>" is never an app's,
// and every view of an app asks for it by name: stacks stay out of them,
// and are in what spans an environment (DORA, the audit trail).
func StoreApp(stack string) string { return "stack:" + stack }

// GateState is where a gated instance's plan stands against its gates:
// the approvals it needs by others than the author of the revision it
// came from, the environment's windows, the platform's freezes.
type GateState struct {
	PlanID string `json:"planId"`
	// Author wrote the revision the plan came from: their approval does
	// not count.
	Author string `json:"author,omitempty"`
	// Need is how many approvals the plan needs.
	Need int `json:"need"`
	// Approvers are the users whose approval of the plan counts.
	Approvers []string `json:"approvers,omitempty"`
	// Blocks are the gates that hold it, in the order approvals, window,
	// freeze; none when it may be applied.
	Blocks []gate.Block `json:"blocks,omitempty"`
}

// Open reports whether the plan may be applied now.
func (g GateState) Open() bool { return len(g.Blocks) == 0 }

// Approved reports whether the plan has the approvals it needs (a window
// or a freeze may still hold it).
func (g GateState) Approved() bool { return len(g.Approvers) >= g.Need }

// CheckGate judges the gates of s's instance for plan planID at now:
// the environment's promotion.approvals, at least 1 (a gated stack is
// approved by someone), by others than author; the environment's windows;
// the freezes of the environment, or for a zone instance (which has no
// environment, and needs 1 approval) those naming the zone or one of its
// environments. approvers are who approved the plan, in order.
func CheckGate(repo *spec.Repo, s *spec.Stack, instance, planID string, now time.Time, author string, approvers []string) GateState {
	e := gateEnvironment(repo, s, instance)
	g := GateState{PlanID: planID, Author: author, Need: e.Promotion.Approvals}
	for _, a := range approvers {
		if a != author && !slices.Contains(g.Approvers, a) {
			g.Approvers = append(g.Approvers, a)
		}
	}
	// The soak and the source gates are of promotions: a stack's plan
	// comes from no other environment. Source is true so that they pass.
	r := gate.Check(gate.Input{Env: e, Freezes: gateFreezes(repo, s, instance), Now: now, Source: true, Author: author, Approvers: approvers})
	g.Blocks = r.Blocks
	return g
}

// gateEnvironment is the environment whose gates hold the instance's
// plans, reduced to the gates a stack has.
func gateEnvironment(repo *spec.Repo, s *spec.Stack, instance string) *spec.Environment {
	p := &spec.Promotion{Approvals: 1}
	if e := repo.Environment(instance); e != nil && !s.PerZone() && e.Promotion != nil {
		p.Approvals, p.Windows = max(1, e.Promotion.Approvals), e.Promotion.Windows
	}
	return &spec.Environment{Name: instance, Promotion: p}
}

// gateFreezes are the platform's freezes that hold the instance, named
// after it.
func gateFreezes(repo *spec.Repo, s *spec.Stack, instance string) []spec.Freeze {
	var out []spec.Freeze
	for _, f := range repo.Platform.Freezes {
		holds := slices.Contains(f.Environments, instance)
		if s.PerZone() {
			holds = holds || slices.ContainsFunc(f.Environments, func(env string) bool {
				e := repo.Environment(env)
				return e != nil && e.Zone == instance
			})
		}
		if holds {
			f.Environments = []string{instance}
			out = append(out, f)
		}
	}
	return out
}

// Message says what the plan waits for, in words: "plan p-… (1 to add,
// …) waits for 1 approval (not by ann, who wrote the change)", "plan … is
// approved by ana; the window Tue,Thu 10:00-16:00 Europe/Paris opens at
// …", "…; frozen: …".
func (g GateState) Message(sum string) string {
	head := "plan " + g.PlanID + " (" + sum + ")"
	var parts []string
	if n := g.Need - len(g.Approvers); n > 0 {
		w := fmt.Sprintf("waits for %d approval%s", n, plural(n))
		if len(g.Approvers) > 0 {
			w = "is approved by " + strings.Join(g.Approvers, ", ") + " and " + w
		}
		if g.Author != "" {
			w += " (not by " + g.Author + ", who wrote the change)"
		}
		parts = append(parts, w)
	} else {
		parts = append(parts, "is approved by "+strings.Join(g.Approvers, ", "))
	}
	for _, b := range g.Blocks {
		switch b.Gate {
		case "window":
			w := "the window " + strings.TrimPrefix(b.Reason, "outside the allowed windows ")
			if !b.Opens.IsZero() {
				w += " opens at " + b.Opens.UTC().Format(time.RFC3339)
			}
			parts = append(parts, w)
		case "freeze":
			parts = append(parts, "frozen: "+strings.TrimPrefix(b.Reason, "freeze ")+" until "+b.Opens.UTC().Format(time.RFC3339))
		}
	}
	return head + " " + strings.Join(parts, "; ")
}

// Opens is when the closed calendar gates (windows, freezes) open, the
// latest of them; zero when an approval is missing or none is closed.
func (g GateState) Opens() time.Time {
	if !g.Approved() {
		return time.Time{}
	}
	var t time.Time
	for _, b := range g.Blocks {
		if b.Opens.After(t) {
			t = b.Opens
		}
	}
	return t
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
