package policy

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/socle-dev/socle/internal/spec"
)

// A policy whose target is stacks judges each resource change of a stack
// instance's plan, as an app policy judges each change of a unit. Its
// expression compiles in an environment of its own (stackCelEnv), where
// change is the resource change: a field of an app change (change.new…)
// is a compile error there, and the other way round.

// StackChange is one resource change of a stack instance's plan, as
// package stack gives it: Before and After already masked (sensitive
// values redacted, see stack.Masked), never the real values.
type StackChange struct {
	Address, Type, Name string
	// Action is create, update, replace, delete, read or forget.
	Action        string
	Before, After map[string]any
}

// StackInput is one resource change of a stack instance to judge.
type StackInput struct {
	Stack string
	// Instance is the zone or the environment the stack is applied to;
	// PerZone says which.
	Instance string
	PerZone  bool
	Change   StackChange
	Context
}

// StackDecision is the judgement of one resource change of a stack plan.
type StackDecision struct {
	Address  string   `json:"address"`
	Action   string   `json:"action"`
	Verdicts Verdicts `json:"verdicts"`
}

// resourceChange is the CEL variable change of a stack policy.
type resourceChange struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Action  string `json:"action"`
	// Before and After are the resource's attributes, masked; absent
	// (has(change.before) is false) on a create, and a delete.
	Before *structpb.Struct `json:"before"`
	After  *structpb.Struct `json:"after"`
}

// stackInstance is the CEL variable stack.
type stackInstance struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
	// Of is zone or environment: what the instance is named after.
	Of       string `json:"of"`
	Zone     string `json:"zone"`
	ZoneKind string `json:"zoneKind"`
	// Production: the environment is production, or the zone holds a
	// production environment or is a platform zone (which serves them all).
	Production bool `json:"production"`
}

const varStack = "stack"

// stackCelEnv is the CEL environment of the policies whose target is stacks.
var stackCelEnv = sync.OnceValue(func() *cel.Env {
	env, err := cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[resourceChange](), reflect.TypeFor[stackInstance](), reflect.TypeFor[environment](), reflect.TypeFor[platform](), ext.ParseStructTag("json")),
		cel.Variable(varChange, cel.ObjectType("policy.resourceChange")),
		cel.Variable(varStack, cel.ObjectType("policy.stackInstance")),
		cel.Variable(varEnvironment, cel.ObjectType("policy.environment")),
		cel.Variable(varPlatform, cel.ObjectType("policy.platform")),
		cel.Variable(varNow, cel.TimestampType),
		cel.Variable(varAuthor, cel.StringType),
		cel.Variable(varApprovers, cel.ListType(cel.StringType)),
		ext.Strings(), ext.Sets(), ext.Lists(), cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		panic(fmt.Sprintf("policy: building the CEL environment of stacks: %v", err))
	}
	return env
})

// EvaluateStack judges one resource change of a stack instance with every
// policy whose target is stacks and whose match selects it (every action
// is judged: a delete is what the guardrails on plans are most about).
func (s *Set) EvaluateStack(in StackInput) Verdicts {
	ev := s.newStackEvaluation(&in)
	out := make(Verdicts, 0, len(s.policies))
	for _, p := range s.policies {
		if ev.selects(p) {
			out = append(out, p.judge(ev))
		}
	}
	return out
}

// EvaluateStackPlan judges every resource change of one stack instance's
// plan; decisions line up with changes.
func (s *Set) EvaluateStackPlan(stack, instance string, perZone bool, changes []StackChange, c Context) []StackDecision {
	out := make([]StackDecision, len(changes))
	for i, ch := range changes {
		out[i] = StackDecision{Address: ch.Address, Action: ch.Action,
			Verdicts: s.EvaluateStack(StackInput{Stack: stack, Instance: instance, PerZone: perZone, Change: ch, Context: c})}
	}
	return out
}

func (s *Set) newStackEvaluation(in *StackInput) *evaluation {
	ev := &evaluation{set: s, stack: in, in: &Input{Context: in.Context}}
	if in.PerZone {
		ev.zone = in.Instance
		ev.environment = &environment{Zone: in.Instance, ZoneKind: s.ctx.zoneKinds[in.Instance], Position: -1,
			Production: s.ctx.prodZones[in.Instance]}
	} else {
		ev.env = in.Instance
		ev.environment = s.ctx.envs[in.Instance]
		if ev.environment == nil {
			ev.environment = &environment{Name: in.Instance, Position: -1}
		}
		ev.zone = ev.environment.Zone
	}
	return ev
}

// stackActivation builds the CEL variables of a stack change.
func (ev *evaluation) stackActivation() *activation {
	in := ev.stack
	adapt := stackCelEnv().CELTypeAdapter()
	c := &resourceChange{Address: in.Change.Address, Type: in.Change.Type, Name: in.Change.Name, Action: in.Change.Action,
		Before: toStruct(in.Change.Before), After: toStruct(in.Change.After)}
	si := &stackInstance{Name: in.Stack, Instance: in.Instance, Of: "environment", Zone: ev.zone, ZoneKind: ev.environment.ZoneKind,
		Production: ev.environment.Production}
	if in.PerZone {
		si.Of = "zone"
	}
	envVal := adapt.NativeToValue(ev.environment)
	if v, ok := ev.set.ctx.envVals[ev.env]; ok {
		envVal = v
	}
	ev.fits = ev.set.ctx.fits && stackChangeFits(in, ev.in.Author, ev.in.Approvers)
	ev.act = &activation{
		change:      adapt.NativeToValue(c),
		stack:       adapt.NativeToValue(si),
		environment: envVal,
		platform:    ev.set.ctx.value,
		now:         types.Timestamp{Time: ev.in.Now},
		author:      types.String(ev.in.Author),
		approvers:   adapt.NativeToValue(nonNilStrings(ev.in.Approvers)),
	}
	return ev.act
}

// stackFields are the placeholders of a stack policy's message, beside
// env, zone and author.
var stackFields = []string{"stack", "instance", "address", "type", "action"}

// appFields are the placeholders that only an app policy's message has.
var appFields = []string{"app", "team", "artifact", "from"}

func stackPlaceholders() map[string]func(*evaluation) string {
	return map[string]func(*evaluation) string{
		"stack":    func(ev *evaluation) string { return ev.stack.Stack },
		"instance": func(ev *evaluation) string { return ev.stack.Instance },
		"address":  func(ev *evaluation) string { return ev.stack.Change.Address },
		"type":     func(ev *evaluation) string { return ev.stack.Change.Type },
		"action":   func(ev *evaluation) string { return ev.stack.Change.Action },
	}
}

// subject names what an evaluation judges, in messages.
func (ev *evaluation) subject() string {
	if ev.stack != nil {
		return fmt.Sprintf("%s (stack %s @ %s)", ev.stack.Change.Address, ev.stack.Stack, ev.stack.Instance)
	}
	return ev.app + " in " + ev.env
}

// stackChangeFits reports whether a stack change is within the bounds the
// cost estimates assume (bounds.go).
func stackChangeFits(in *StackInput, author string, approvers []string) bool {
	c := &in.Change
	return str(in.Stack) && str(in.Instance) && str(c.Address) && str(c.Type) && str(c.Name) && str(c.Action) &&
		str(author) && strs(approvers) && anyFits(c.Before) && anyFits(c.After)
}

// targetName is how messages name a policy's target.
func targetName(stacks bool) spec.PolicyTarget {
	if stacks {
		return spec.TargetStacks
	}
	return spec.TargetApps
}
