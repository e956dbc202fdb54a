package policy

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// The CEL variables, documented for policy authors in doc.go.
const (
	varChange      = "change"
	varEnvironment = "environment"
	varPlatform    = "platform"
	varNow         = "now"
	varAuthor      = "author"
	varApprovers   = "approvers"
	varHistory     = "history"
)

// historyType is the type of the history variable: an opaque handle whose
// member functions ask the History of the evaluation.
var historyType = cel.OpaqueType("socle.History")

// celEnv is the one CEL environment every policy compiles in. The input
// types are registered as native Go types, so that the checker rejects a
// misspelt field when the policy is compiled, not when a change is judged,
// and has() works at any depth (an absent part reads as empty).
var celEnv = sync.OnceValue(func() *cel.Env {
	env, err := cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[change](), reflect.TypeFor[environment](), reflect.TypeFor[platform](), ext.ParseStructTag("json")),
		cel.Variable(varChange, cel.ObjectType("policy.change")),
		cel.Variable(varEnvironment, cel.ObjectType("policy.environment")),
		cel.Variable(varPlatform, cel.ObjectType("policy.platform")),
		cel.Variable(varNow, cel.TimestampType),
		cel.Variable(varAuthor, cel.StringType),
		cel.Variable(varApprovers, cel.ListType(cel.StringType)),
		cel.Variable(varHistory, historyType),
		cel.Function("ranHealthy", cel.MemberOverload("history_ranHealthy_string_string",
			[]*cel.Type{historyType, cel.StringType, cel.StringType}, cel.BoolType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				h, artifact, env := historyArgs(args)
				_, ok := h.ranHealthy(artifact, env)
				return types.Bool(ok)
			}))),
		cel.Function("healthyFor", cel.MemberOverload("history_healthyFor_string_string",
			[]*cel.Type{historyType, cel.StringType, cel.StringType}, cel.DurationType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				h, artifact, env := historyArgs(args)
				since, ok := h.ranHealthy(artifact, env)
				if !ok || since.After(h.now) {
					return types.Duration{}
				}
				return types.Duration{Duration: h.now.Sub(since)}
			}))),
		ext.Strings(), ext.Sets(), ext.Lists(), cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		panic(fmt.Sprintf("policy: building the CEL environment: %v", err))
	}
	return env
})

// celError is one compile error, at a 1-based line and 0-based column of the
// expression.
type celError struct {
	line, col int
	msg       string
}

// compileExpr type-checks an expression, which must give a bool, and builds
// its program. A limited program (a repository's policy) tracks its cost
// against CostLimit, and comes with a fast one that does not when its cost
// is bounded for inputs within the bounds (see bounds.go). Built-ins,
// socle's own and linear in the size of the change, are not limited.
func compileExpr(env *cel.Env, expr string, limited bool) (prg, fast cel.Program, clock bool, errs []celError) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			errs = append(errs, celError{line: e.Location.Line(), col: e.Location.Column(), msg: e.Message})
		}
		return nil, nil, false, errs
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, nil, false, []celError{{line: 1, msg: fmt.Sprintf("the expression gives %s, not bool: it must be true when the change is allowed", t)}}
	}
	clock = readsClock(ast)
	opt := cel.EvalOptions(cel.OptOptimize)
	if !limited {
		prg, err := env.Program(ast, opt)
		if err != nil {
			return nil, nil, false, []celError{{line: 1, msg: err.Error()}}
		}
		return prg, nil, clock, nil
	}
	prg, err := env.Program(ast, opt, cel.CostLimit(CostLimit))
	if err != nil {
		return nil, nil, false, []celError{{line: 1, msg: err.Error()}}
	}
	if est, err := env.EstimateCost(ast, inputBounds{}); err == nil && boundedCost(est) {
		if fast, err = env.Program(ast, opt); err != nil {
			fast = nil
		}
	}
	return prg, fast, clock, nil
}

// readsClock reports whether a checked expression reads now or history:
// its verdict on the same change may differ later (a soak grows, a window
// opens), so a denial is judged again as time passes.
func readsClock(ast *cel.Ast) bool {
	for _, r := range ast.NativeRep().ReferenceMap() {
		if r.Name == varNow || r.Name == varHistory {
			return true
		}
	}
	return false
}

// historyVal is the value of the history variable in one evaluation: the
// History asked about the change's app, with the evaluation's clock.
type historyVal struct {
	h   History
	app string
	now time.Time
}

func (h *historyVal) ranHealthy(artifact, env string) (time.Time, bool) {
	if h.h == nil || artifact == "" {
		return time.Time{}, false
	}
	return h.h.RanHealthy(h.app, artifact, env)
}

func historyArgs(args []ref.Val) (*historyVal, string, string) {
	h := args[0].(*historyVal)
	a, _ := args[1].Value().(string)
	e, _ := args[2].Value().(string)
	return h, a, e
}

func (h *historyVal) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("history cannot be converted")
}

func (h *historyVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return historyType
	}
	return types.NewErr("history cannot be converted to %s", t.TypeName())
}

func (h *historyVal) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(h)) }
func (h *historyVal) Type() ref.Type              { return historyType }
func (h *historyVal) Value() any                  { return h.h }

// activation resolves the variables of one evaluation without a map.
type activation struct {
	change, environment, platform, approvers ref.Val
	stack                                    ref.Val // of a stack change only
	now, author                              ref.Val
	history                                  *historyVal
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varChange:
		return a.change, true
	case varEnvironment:
		return a.environment, true
	case varPlatform:
		return a.platform, true
	case varNow:
		return a.now, true
	case varAuthor:
		return a.author, true
	case varApprovers:
		return a.approvers, true
	case varHistory:
		return a.history, true
	case varStack:
		return a.stack, a.stack != nil
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// evalFailure says why an expression could not give a verdict; such a
// verdict denies, whatever the policy's severity: a guardrail that cannot
// be checked does not let the change through.
func evalFailure(policy string, ev *evaluation, err error) string {
	var cancelled interpreter.EvalCancelledError
	if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
		return fmt.Sprintf("policy %s gave up on %s: the expression exceeded the evaluation cost limit (%d); simplify it (fewer nested loops over lists and maps)",
			policy, ev.subject(), CostLimit)
	}
	return fmt.Sprintf("policy %s could not be evaluated on %s, so it denies: %v", policy, ev.subject(), err)
}
