package policy

import (
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// CostLimit bounds the work of one evaluation of one expression, in CEL cost
// units (about one per operation, list element or character compared). The
// policies socle ships cost under a hundred; a repository policy that goes
// over the limit is reported as a deny, never skipped.
const CostLimit = 100_000

// Operation says why a change is being judged.
type Operation string

// The operations.
const (
	// Plan is a plan of a revision: socle plan, socle validate, the server's reconcile.
	Plan Operation = "plan"
	// Deploy is a deploy of an artifact into an environment that is not
	// reached by promotion.
	Deploy Operation = "deploy"
	// Promote is a promotion of a release from the previous environment.
	Promote Operation = "promote"
	// Rollback returns an environment to a release it ran before.
	Rollback Operation = "rollback"
)

// History answers questions about the release history. Implementations read
// a store before evaluation starts or answer from memory: they are called
// during evaluation, which must not block.
type History interface {
	// RanHealthy reports whether the artifact of app has run healthy in env,
	// and since when.
	RanHealthy(app, artifact, env string) (since time.Time, ok bool)
}

// Context is what every change of one plan, deploy or promotion shares.
type Context struct {
	// Operation defaults to Plan.
	Operation Operation
	// Now is the time the decision is taken at; policies see it as now. The
	// zero time is seen as such (year 1): callers set it.
	Now time.Time
	// Author is who asked for the change (the commit author of a plan, the
	// user who promotes); Approvers are the users who approved it.
	Author    string
	Approvers []string
	// History is the release history; nil means none (nothing ever ran).
	History History
}

// Input is one change to judge.
type Input struct {
	// Change is the planned change; Change.Desired is the unit after it.
	Change plan.Change
	// Old is the unit before the change, nil for a create.
	Old *plan.Unit
	// Artifact is the image digest the change runs; empty means
	// Change.Desired.Artifact (a deploy of a fresh build sets it).
	Artifact string
	Context
}

// Verdict is what one policy says about one change.
type Verdict struct {
	Policy   string        `json:"policy"`
	Severity spec.Severity `json:"severity"`
	Allowed  bool          `json:"allowed"`
	// Message says what is wrong and what to do; empty when allowed.
	Message string `json:"message,omitempty"`
	// Builtin is true for socle's own guardrails; File names the policies
	// file of the others.
	Builtin bool   `json:"builtin,omitempty"`
	File    string `json:"file,omitempty"`
	// Clock is true when the policy reads now or history: the same change
	// may be judged otherwise later, with nothing else changed.
	Clock bool `json:"-"`
}

// Blocks reports whether the verdict stops the change.
func (v Verdict) Blocks() bool { return !v.Allowed && v.Severity == spec.SeverityDeny }

// Warns reports whether the verdict annotates the change without stopping it.
func (v Verdict) Warns() bool { return !v.Allowed && v.Severity == spec.SeverityWarn }

// Verdicts are the verdicts on one change, built-ins first, then the
// repository's policies in file order.
type Verdicts []Verdict

// Blocked reports whether any verdict denies the change.
func (vs Verdicts) Blocked() bool { return slices.ContainsFunc(vs, Verdict.Blocks) }

// Denials are the verdicts that block the change.
func (vs Verdicts) Denials() Verdicts { return vs.filter(Verdict.Blocks) }

// Warnings are the verdicts that annotate the change.
func (vs Verdicts) Warnings() Verdicts { return vs.filter(Verdict.Warns) }

func (vs Verdicts) filter(keep func(Verdict) bool) Verdicts {
	var out Verdicts
	for _, v := range vs {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// Decision is the judgement of one change of a plan.
type Decision struct {
	Action   plan.Action `json:"action"`
	App      string      `json:"app"`
	Env      string      `json:"env"`
	Verdicts Verdicts    `json:"verdicts"`
}

// Set is the compiled policies of one repository revision, built-ins
// included. It is immutable and safe for concurrent use.
type Set struct {
	policies []*compiled
	ctx      *platformContext
	// stackCfg configures the stack built-ins (OverridesFile's stacks).
	stackCfg stackSettings
}

// Info describes one policy of a set, for listings.
type Info struct {
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Severity    spec.Severity    `json:"severity"`
	Builtin     bool             `json:"builtin,omitempty"`
	File        string           `json:"file,omitempty"`
	Match       spec.PolicyMatch `json:"match,omitzero"`
	// Target is stacks for a policy of stack resource changes, empty for apps.
	Target spec.PolicyTarget `json:"target,omitempty"`
	// Scope says in words where a built-in applies beyond its match.
	Scope string `json:"scope,omitempty"`
}

// Policies lists the set's policies in evaluation order.
func (s *Set) Policies() []Info {
	out := make([]Info, len(s.policies))
	for i, p := range s.policies {
		out[i] = Info{Name: p.name, Description: p.description, Severity: p.severity, Builtin: p.builtin, File: p.file, Match: p.match, Scope: p.scope}
		if p.stacks {
			out[i].Target = spec.TargetStacks
		}
	}
	return out
}

// compiled is one policy ready to evaluate: a CEL program or, for some
// built-ins, Go code behind the same verdict.
type compiled struct {
	name, description string
	file              string
	builtin           bool
	severity          spec.Severity
	match             spec.PolicyMatch
	// stacks: the policy judges stack resource changes (target: stacks),
	// not apps' changes.
	stacks bool
	// applies narrows a built-in to where it makes sense (production, sandbox…).
	applies func(*evaluation) bool
	scope   string
	// Exactly one of prg, check and broken is set. fast, when set, is prg
	// without cost tracking, for changes within the bounds of bounds.go.
	prg, fast cel.Program
	message   string
	check     func(*evaluation) (ok bool, message string)
	broken    string // the compile error of a policy that does not compile
	clock     bool   // the expression reads now or history
}

// Compile compiles the repository's policies and socle's built-in
// guardrails, with the built-in overrides of policies/builtins/overrides.yaml
// read from fsys (which may be nil: no overrides). A policy that does not
// compile is a problem located at its expression; it stays in the set as a
// policy that denies every change it matches, so that ignoring the problems
// never weakens the guardrails.
func Compile(repo *spec.Repo, fsys fs.FS) (*Set, spec.Problems) {
	s := &Set{ctx: newPlatformContext(repo)}
	var problems spec.Problems
	sev, cfg, ps := readOverrides(fsys)
	s.stackCfg = cfg
	problems = append(problems, ps...)
	for _, b := range builtins() {
		severity, ok := sev[b.name]
		if !ok {
			severity = spec.SeverityDeny
		}
		if severity == off {
			continue
		}
		c := b.compile()
		c.severity = severity
		s.policies = append(s.policies, c)
	}
	for _, set := range repo.Policies {
		doc := &yamlFile{fsys: fsys, file: set.File} // parsed only when a problem needs a position
		for i, p := range set.Policies {
			c := &compiled{name: p.Name, description: p.Description, file: set.File, severity: p.Severity, match: p.Match, message: p.Message, stacks: p.Stacks()}
			env := celEnv()
			if c.stacks {
				env = stackCelEnv()
			}
			if isBuiltin(p.Name) {
				problems = append(problems, doc.problem(
					fmt.Sprintf("%q is the name of a built-in guardrail: choose another name, or set the built-in's severity in %s", p.Name, OverridesFile),
					"policies", idx(i), "name"))
			}
			if bad := unknownPlaceholders(p.Message, c.stacks); len(bad) > 0 {
				problems = append(problems, doc.problem(
					fmt.Sprintf("unknown placeholder %s in message: known are %s (a policy whose target is %s)", bad[0], placeholderList(c.stacks), targetName(c.stacks)),
					"policies", idx(i), "message"))
			}
			prg, fast, clock, errs := compileExpr(env, p.Expression, true)
			if len(errs) > 0 {
				c.broken = errs[0].msg
				problems = append(problems, doc.exprProblems(errs, "policies", idx(i), "expression")...)
			} else {
				c.prg, c.fast, c.clock = prg, fast, clock
			}
			s.policies = append(s.policies, c)
		}
	}
	slices.SortStableFunc(problems, func(a, b spec.Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return s, problems
}

// Evaluate judges one change with every policy whose match selects it. A
// delete runs nothing, so it has no verdicts; a no-op is judged like the
// unit it keeps running (callers block creates and updates, and show the
// verdicts of no-ops).
func (s *Set) Evaluate(in Input) Verdicts {
	if in.Change.Desired == nil {
		return nil
	}
	ev := s.newEvaluation(&in)
	out := make(Verdicts, 0, len(s.policies))
	for _, p := range s.policies {
		if ev.selects(p) {
			out = append(out, p.judge(ev))
		}
	}
	return out
}

// EvaluatePlan judges every change of a plan. applied are the units the plan
// was computed against (they are change.old); decisions line up with
// p.Changes, and deletes have no verdicts.
func (s *Set) EvaluatePlan(p *plan.Plan, applied []plan.Unit, c Context) []Decision {
	old := make(map[plan.Key]*plan.Unit, len(applied))
	for i := range applied {
		old[applied[i].Key()] = &applied[i]
	}
	out := make([]Decision, len(p.Changes))
	for i, ch := range p.Changes {
		out[i] = Decision{Action: ch.Action, App: ch.App, Env: ch.Env,
			Verdicts: s.Evaluate(Input{Change: ch, Old: old[plan.Key{App: ch.App, Env: ch.Env}], Context: c})}
	}
	return out
}

func (p *compiled) judge(ev *evaluation) Verdict {
	v := Verdict{Policy: p.name, Severity: p.severity, Allowed: true, Builtin: p.builtin, File: p.file, Clock: p.clock}
	switch {
	case p.broken != "":
		v.Allowed, v.Severity = false, spec.SeverityDeny
		v.Message = fmt.Sprintf("policy %s does not compile, so it denies every change it matches: %s", p.name, p.broken)
	case p.check != nil:
		if ok, msg := p.check(ev); !ok {
			v.Allowed, v.Message = false, msg
		}
	default:
		act, prg := ev.activation(), p.prg
		if p.fast != nil && ev.fits {
			prg = p.fast
		}
		out, _, err := prg.Eval(act)
		if err == nil {
			b, isBool := out.Value().(bool)
			switch {
			case !isBool:
				err = fmt.Errorf("expression gave %v (%s), not a bool", out.Value(), out.Type().TypeName())
			case !b:
				v.Allowed, v.Message = false, ev.render(p.message)
			}
		}
		if err != nil {
			v.Allowed, v.Severity = false, spec.SeverityDeny
			v.Message = evalFailure(p.name, ev, err)
		}
	}
	return v
}
