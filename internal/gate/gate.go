// Package gate decides, as a pure function, whether a release may enter an
// environment now: the promotion gates of socle.yaml (the artifact runs
// healthy in the environment it comes from, for the soak time; enough
// approvals by others than its author; an allowed window; no freeze), each
// blocking gate with its reason and, when it can be known, when it opens.
package gate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/spec"
)

// Input is what the gates look at.
type Input struct {
	// Env is the environment entered; its Promotion holds the gates.
	Env *spec.Environment
	// Freezes are the platform's freeze periods.
	Freezes []spec.Freeze
	Now     time.Time
	// Source is true when the artifact runs in the environment it is
	// promoted from, healthy since HealthySince.
	Source       bool
	HealthySince time.Time
	// Approvers are the users who approved the artifact for Env; Author is
	// who wrote the change, who cannot approve it.
	Approvers []string
	Author    string
	// Rollback skips the soak and approval gates (restoring what ran
	// before is not a new change) but not windows and freezes.
	Rollback bool
}

// Block is one closed gate.
type Block struct {
	Gate   string    `json:"gate"` // source, soak, approvals, window, freeze
	Reason string    `json:"reason"`
	Opens  time.Time `json:"opens,omitzero"` // when the gate opens, if known
}

// Result is the gates' verdict.
type Result struct {
	Blocks []Block `json:"blocks,omitempty"`
}

// Open reports whether every gate is open.
func (r Result) Open() bool { return len(r.Blocks) == 0 }

// Reason says in words why the promotion waits.
func (r Result) Reason() string {
	parts := make([]string, len(r.Blocks))
	for i, b := range r.Blocks {
		parts[i] = b.Gate + ": " + b.Reason
		if !b.Opens.IsZero() {
			parts[i] += " (opens " + b.Opens.UTC().Format(time.RFC3339) + ")"
		}
	}
	return strings.Join(parts, "; ")
}

// Check evaluates every gate of in.Env and returns the closed ones, in the
// order source, soak, approvals, window, freeze.
func Check(in Input) Result {
	var r Result
	p := in.Env.Promotion
	if p == nil {
		return checkCalendar(in, r)
	}
	if !in.Rollback {
		if !in.Source {
			r.Blocks = append(r.Blocks, Block{Gate: "source", Reason: fmt.Sprintf("the artifact does not run healthy in %s", p.From)})
		} else if soak := time.Duration(p.Soak); soak > 0 && in.Now.Sub(in.HealthySince) < soak {
			opens := in.HealthySince.Add(soak)
			r.Blocks = append(r.Blocks, Block{Gate: "soak", Opens: opens,
				Reason: fmt.Sprintf("healthy in %s for %s of the %s soak", p.From, in.Now.Sub(in.HealthySince).Round(time.Second), soak)})
		}
		if p.Approvals > 0 {
			var valid []string
			for _, a := range in.Approvers {
				if a != in.Author && !slices.Contains(valid, a) {
					valid = append(valid, a)
				}
			}
			if len(valid) < p.Approvals {
				r.Blocks = append(r.Blocks, Block{Gate: "approvals",
					Reason: fmt.Sprintf("%d of %d approvals (by an approver other than the author %s)", len(valid), p.Approvals, orSomeone(in.Author))})
			}
		}
	}
	return checkCalendar(in, r)
}

func checkCalendar(in Input, r Result) Result {
	if p := in.Env.Promotion; p != nil && len(p.Windows) > 0 {
		inside := false
		var next time.Time
		for _, w := range p.Windows {
			if w.Contains(in.Now) {
				inside = true
				break
			}
			if t, ok := w.Next(in.Now); ok && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if !inside {
			names := make([]string, len(p.Windows))
			for i, w := range p.Windows {
				names[i] = w.String()
			}
			r.Blocks = append(r.Blocks, Block{Gate: "window", Opens: next, Reason: "outside the allowed windows " + strings.Join(names, ", ")})
		}
	}
	for _, f := range in.Freezes {
		if slices.Contains(f.Environments, in.Env.Name) && !in.Now.Before(f.Start.Time) && in.Now.Before(f.End.Time) {
			r.Blocks = append(r.Blocks, Block{Gate: "freeze", Opens: f.End.Time, Reason: fmt.Sprintf("freeze %s: %s", f.Name, f.Reason)})
		}
	}
	return r
}

func orSomeone(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
