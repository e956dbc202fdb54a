// Package gate decides, as a pure function, whether a release may enter an
// environment now: the promotion gates of socle.yaml (the artifact runs
// healthy in the environment it comes from, for the soak time; enough
// approvals by others than its author; an allowed window; no freeze), each
// blocking gate with its reason and, when it can be known, when it opens;
// and who may declare an emergency change, which passes the gates that only
// cost time.
package gate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

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
	// Emergency is an emergency change that Declare allowed: the soak, the
	// windows and the freezes do not hold it (they are reported as
	// skipped), and it needs the environment's emergency approvals. The
	// source gate and the policies still judge it.
	Emergency bool
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
	// Skipped are the closed gates an emergency change passes, for its
	// record.
	Skipped []Block `json:"skipped,omitempty"`
}

// Open reports whether every gate is open.
func (r Result) Open() bool { return len(r.Blocks) == 0 }

// Reason says in words why the promotion waits.
func (r Result) Reason() string { return describe(r.Blocks) }

// Passed says in words which closed gates an emergency change passed.
func (r Result) Passed() string { return describe(r.Skipped) }

func describe(blocks []Block) string {
	parts := make([]string, len(blocks))
	for i, b := range blocks {
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
		r = checkCalendar(in, r)
	} else {
		if !in.Rollback {
			if !in.Source {
				r.Blocks = append(r.Blocks, Block{Gate: "source", Reason: fmt.Sprintf("the artifact does not run healthy in %s", p.From)})
			} else if soak := time.Duration(p.Soak); soak > 0 && in.Now.Sub(in.HealthySince) < soak {
				opens := in.HealthySince.Add(soak)
				r.Blocks = append(r.Blocks, Block{Gate: "soak", Opens: opens,
					Reason: fmt.Sprintf("healthy in %s for %s of the %s soak", p.From, in.Now.Sub(in.HealthySince).Round(time.Second), soak)})
			}
			if b, ok := checkApprovals(in, p.Approvals); !ok {
				r.Blocks = append(r.Blocks, b)
			}
		}
		r = checkCalendar(in, r)
	}
	if !in.Emergency {
		return r
	}
	// An emergency passes what only costs time, and is judged on the
	// approvals it needs rather than those of a usual promotion.
	var e Result
	for _, b := range r.Blocks {
		switch b.Gate {
		case "soak", "window", "freeze":
			e.Skipped = append(e.Skipped, b)
		case "approvals":
		default:
			e.Blocks = append(e.Blocks, b)
		}
	}
	if p != nil && !in.Rollback {
		if b, ok := checkApprovals(in, in.Env.EmergencyApprovals()); !ok {
			b.Reason += " for an emergency change"
			e.Blocks = append(e.Blocks, b)
		}
	}
	return e
}

// checkApprovals counts the approvals by others than the author against
// need.
func checkApprovals(in Input, need int) (Block, bool) {
	if need <= 0 {
		return Block{}, true
	}
	var valid []string
	for _, a := range in.Approvers {
		if a != in.Author && !slices.Contains(valid, a) {
			valid = append(valid, a)
		}
	}
	if len(valid) >= need {
		return Block{}, true
	}
	return Block{Gate: "approvals",
		Reason: fmt.Sprintf("%d of %d approvals (by an approver other than the author %s)", len(valid), need, orSomeone(in.Author))}, false
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

// Errors of Declare, which callers map to their answers.
var (
	// ErrReason: the reason is missing or not one line of text.
	ErrReason = errors.New("invalid emergency reason")
	// ErrDeclarer: the user may not declare an emergency change there.
	ErrDeclarer = errors.New("may not declare an emergency change")
)

// MaxReason is the longest reason, in characters, an emergency takes: it
// goes into a commit, an audit record and notifications.
const MaxReason = 500

// Declare checks an emergency change that user declares for app in env:
// a reason of one line (an incident or change number, what is broken),
// and a user who may deploy there with the role admin or one that the
// environment's emergency.roles names.
func Declare(repo *spec.Repo, app, env, user, reason string) error {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return fmt.Errorf("%w: an emergency change needs a reason, such as an incident number", ErrReason)
	case len([]rune(reason)) > MaxReason:
		return fmt.Errorf("%w: the reason has %d characters, at most %d", ErrReason, len([]rune(reason)), MaxReason)
	case strings.ContainsFunc(reason, unicode.IsControl):
		return fmt.Errorf("%w: the reason must be one line of text", ErrReason)
	}
	e := repo.Environment(env)
	if e == nil {
		return fmt.Errorf("%w: no environment %q", ErrDeclarer, env)
	}
	if !repo.MayDeclareEmergency(user, app, env) {
		roles := []string{string(spec.RoleAdmin)}
		if e.Emergency != nil {
			for _, r := range e.Emergency.Roles {
				if r != spec.RoleAdmin {
					roles = append(roles, string(r))
				}
			}
		}
		return fmt.Errorf("%w: %s may not declare an emergency change of %s in %s (roles %s of the app's team, who may deploy there)",
			ErrDeclarer, orSomeone(user), app, env, strings.Join(roles, ", "))
	}
	return nil
}
