package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// TestsDir holds the test cases a platform team writes beside its
// policies, one or more *.yaml files of kind PolicyTests (README.md shows
// the format).
const TestsDir = "policies/tests"

// Expectations of a test case.
const (
	ExpectAllow = "allow" // the policy allows the change (no policy named: nothing warns or denies)
	ExpectDeny  = "deny"  // the policy denies it (no policy named: something denies)
	ExpectWarn  = "warn"  // the policy warns (no policy named: something warns, nothing denies)
	ExpectNone  = "none"  // the policy does not select the change
)

// TestCase is one case of a PolicyTests file: a change built from the
// repository's unit for (app, env) with the fields of new and old laid
// over it, and the verdict expected.
type TestCase struct {
	File string
	Line int
	Name string
	// Policy is the policy under test; empty means all of them.
	Policy    string
	App, Env  string
	Action    plan.Action
	Operation Operation
	Artifact  string
	// New and Old are laid over the repository's unit (JSON merge patch:
	// null removes a field). Old nil means a create.
	New, Old  map[string]any
	HasOld    bool
	Author    string
	Approvers []string
	Now       time.Time
	History   Runs
	Expect    string
	// Message, when set, must appear in the message of the verdict.
	Message string
	// Stack and Instance, when Stack is set, make the case one of a
	// resource change of a stack instance's plan (Resource), judged by the
	// policies whose target is stacks; App, Env, New and Old are unused.
	Stack, Instance string
	Resource        *StackChange
}

// caseFile is a PolicyTests file as written.
type caseFile struct {
	Name      string    `yaml:"name"`
	Policy    string    `yaml:"policy"`
	App       string    `yaml:"app"`
	Env       string    `yaml:"env"`
	Action    string    `yaml:"action"`
	Operation string    `yaml:"operation"`
	Artifact  string    `yaml:"artifact"`
	New       yaml.Node `yaml:"new"`
	Old       yaml.Node `yaml:"old"`
	Author    string    `yaml:"author"`
	Approvers []string  `yaml:"approvers"`
	Now       string    `yaml:"now"`
	History   []caseRun `yaml:"history"`
	Expect    string    `yaml:"expect"`
	Message   string    `yaml:"message"`
	Stack     string    `yaml:"stack"`
	Instance  string    `yaml:"instance"`
	Resource  *struct {
		Address string         `yaml:"address"`
		Type    string         `yaml:"type"`
		Action  string         `yaml:"action"`
		Before  map[string]any `yaml:"before"`
		After   map[string]any `yaml:"after"`
	} `yaml:"resource"`
}

// stackActions are the actions of a stack test case's resource: those of
// stack.Action (internal/stack/changes.go), which policy does not import
// (pipeline translates); a new action there belongs here too.
var stackActions = []string{"create", "update", "replace", "delete", "read", "forget"}

type caseRun struct {
	App      string `yaml:"app"`
	Env      string `yaml:"env"`
	Artifact string `yaml:"artifact"`
	Since    string `yaml:"since"`
}

var (
	caseFields = []string{"name", "policy", "app", "env", "action", "operation", "artifact", "new", "old",
		"author", "approvers", "now", "history", "expect", "message", "stack", "instance", "resource"}
	runFields = []string{"app", "env", "artifact", "since"}
)

// LoadTests reads the test cases under TestsDir; a file that cannot be
// read as test cases is a problem with its file:line.
func LoadTests(fsys fs.FS) ([]TestCase, spec.Problems) {
	entries, err := spec.ReadDir(fsys, TestsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, spec.Problems{spec.FileProblem(TestsDir, err)}
	}
	var cases []TestCase
	var problems spec.Problems
	// The test files are YAML of the revision: they draw on one budget.
	budget := spec.NewYAMLBudget()
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".yaml" {
			continue
		}
		file := path.Join(TestsDir, e.Name())
		cs, ps := loadTestFile(fsys, file, budget)
		cases = append(cases, cs...)
		problems = append(problems, ps...)
	}
	return cases, problems
}

func loadTestFile(fsys fs.FS, file string, budget *spec.YAMLBudget) ([]TestCase, spec.Problems) {
	root, _, bad := readYAML(fsys, file, budget)
	if bad != nil {
		return nil, bad
	}
	y := &yamlFile{fsys: fsys, file: file}
	if ps := checkHeader(y, root, map[string]string{"apiVersion": spec.APIVersion, "kind": "PolicyTests", "tests": ""}); len(ps) > 0 {
		return nil, ps
	}
	list, _ := locate(root, "tests")
	if list.Kind != yaml.SequenceNode {
		return nil, spec.Problems{y.problem("expected a list of test cases", "tests")}
	}
	var cases []TestCase
	var problems spec.Problems
	for i, n := range list.Content {
		at := func(msg string, field ...string) {
			problems = append(problems, y.problem(msg, append([]string{"tests", idx(i)}, field...)...))
		}
		if n.Kind != yaml.MappingNode {
			at("expected a test case: a mapping with name, app, env, expect, …")
			continue
		}
		if bad := unknownKeys(n, caseFields); bad != nil {
			problems = append(problems, spec.Problem{File: file, Line: bad.Line, Column: bad.Column, Field: fmt.Sprintf("tests[%d].%s", i, bad.Value),
				Message: fmt.Sprintf("unknown field %q: expected one of %s", bad.Value, strings.Join(caseFields, ", "))})
			continue
		}
		var cf caseFile
		if err := n.Decode(&cf); err != nil {
			at(yamlError(err))
			continue
		}
		tc := TestCase{File: file, Line: n.Line, Name: cf.Name, Policy: cf.Policy, App: cf.App, Env: cf.Env,
			Action: plan.Action(cf.Action), Operation: Operation(cf.Operation), Artifact: cf.Artifact,
			Author: cf.Author, Approvers: cf.Approvers, Expect: cf.Expect, Message: cf.Message}
		ok := true
		required := []struct{ field, value string }{{"name", cf.Name}, {"app", cf.App}, {"env", cf.Env}, {"expect", cf.Expect}}
		if cf.Stack != "" {
			required = []struct{ field, value string }{{"name", cf.Name}, {"instance", cf.Instance}, {"expect", cf.Expect}}
			tc.Stack, tc.Instance = cf.Stack, cf.Instance
			if cf.App != "" || cf.Env != "" || cf.New.Kind != 0 || cf.Old.Kind != 0 || len(cf.History) > 0 || cf.Artifact != "" {
				at("a case of a stack's resource change has no app, env, artifact, new, old or history: describe the change under resource", "stack")
				ok = false
			}
			switch r := cf.Resource; {
			case r == nil:
				at("missing resource: the resource change (address, action, before, after)", "resource")
				ok = false
			case r.Address == "":
				at("missing address", "resource", "address")
				ok = false
			case !slices.Contains(stackActions, r.Action):
				at(fmt.Sprintf("expected %s, found %q", strings.Join(stackActions, ", "), r.Action), "resource", "action")
				ok = false
			default:
				typ, name := addressParts(r.Address)
				if r.Type != "" {
					typ = r.Type
				}
				tc.Resource = &StackChange{Address: r.Address, Type: typ, Name: name, Action: r.Action, Before: r.Before, After: r.After}
			}
		}
		for _, req := range required {
			if req.value == "" {
				at("missing "+req.field, req.field)
				ok = false
			}
		}
		switch cf.Expect {
		case "", ExpectAllow, ExpectDeny, ExpectWarn:
		case ExpectNone:
			if cf.Policy == "" {
				at("expect: none needs a policy: it says that the policy does not select the change", "expect")
				ok = false
			}
		default:
			at(fmt.Sprintf("expected allow, deny, warn or none, found %q", cf.Expect), "expect")
			ok = false
		}
		switch plan.Action(cf.Action) {
		case "", plan.Create, plan.Update, plan.NoOp:
		default:
			at(fmt.Sprintf("expected create, update or no-op, found %q", cf.Action), "action")
			ok = false
		}
		switch Operation(cf.Operation) {
		case "", Plan, Deploy, Promote, Rollback:
		default:
			at(fmt.Sprintf("expected plan, deploy, promote or rollback, found %q", cf.Operation), "operation")
			ok = false
		}
		for _, o := range []struct {
			field string
			node  *yaml.Node
			dst   *map[string]any
		}{{"new", &cf.New, &tc.New}, {"old", &cf.Old, &tc.Old}} {
			if o.node.Kind == 0 {
				continue
			}
			if o.node.Kind != yaml.MappingNode {
				at("expected a mapping of unit fields (containers, replicas, service, resources, …)", o.field)
				ok = false
				continue
			}
			if err := o.node.Decode(o.dst); err != nil {
				at(yamlError(err), o.field)
				ok = false
			}
		}
		tc.HasOld = cf.Old.Kind != 0
		if cf.Now != "" {
			t, err := parseTime(cf.Now)
			if err != nil {
				at(err.Error(), "now")
				ok = false
			}
			tc.Now = t
		}
		hist, _ := locate(n, "history")
		for j, r := range cf.History {
			if bad := unknownKeys(hist.Content[j], runFields); bad != nil {
				at(fmt.Sprintf("unknown field %q: expected one of %s", bad.Value, strings.Join(runFields, ", ")), "history", idx(j))
				ok = false
				continue
			}
			run := Run{App: r.App, Env: r.Env, Artifact: r.Artifact}
			if run.Env == "" {
				at("missing env: where the artifact ran healthy", "history", idx(j))
				ok = false
			}
			if r.Since != "" {
				t, err := parseTime(r.Since)
				if err != nil {
					at(err.Error(), "history", idx(j), "since")
					ok = false
				}
				run.Since = t
			}
			tc.History = append(tc.History, run)
		}
		if ok {
			cases = append(cases, tc)
		}
	}
	return cases, problems
}

func unknownKeys(n *yaml.Node, known []string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !slices.Contains(known, n.Content[i].Value) {
			return n.Content[i]
		}
	}
	return nil
}

func yamlError(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), "unmarshal errors:\n  ")
}

// parseTime reads RFC 3339 or a date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expected a time like 2026-03-03T10:00:00+01:00 or a date like 2026-03-03, found %q", s)
}

// TestResult is the outcome of one test case.
type TestResult struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Name   string `json:"name"`
	Policy string `json:"policy,omitempty"`
	Pass   bool   `json:"pass"`
	Want   string `json:"want"`
	// Got is allow, deny, warn or none; empty when the case could not run.
	Got string `json:"got,omitempty"`
	// Detail says why a case failed: the messages of the verdicts, or what
	// was wrong with the case.
	Detail string `json:"detail,omitempty"`
}

// RunTests runs test cases against the set; now is the time of cases that
// do not set one.
func (s *Set) RunTests(repo *spec.Repo, cases []TestCase, now time.Time) []TestResult {
	base := testUnits(repo)
	out := make([]TestResult, 0, len(cases))
	for _, tc := range cases {
		out = append(out, s.runTest(repo, base, tc, now))
	}
	return out
}

// testUnits resolves every enabled app in every environment at the head of
// the repository, as if every environment synced automatically.
func testUnits(repo *spec.Repo) map[plan.Key]plan.Unit {
	r := *repo
	r.Platform.Environments = slices.Clone(repo.Platform.Environments)
	for i := range r.Platform.Environments {
		r.Platform.Environments[i].Sync = spec.SyncAuto
	}
	units := map[plan.Key]plan.Unit{}
	for _, u := range plan.Desired(&r, "", nil) {
		units[u.Key()] = u
	}
	return units
}

// addressParts reads a resource's type and name from its address
// (module.net.azurerm_subnet.app["a"] → azurerm_subnet, app).
func addressParts(address string) (typ, name string) {
	if i := strings.IndexByte(address, '['); i >= 0 {
		address = address[:i]
	}
	parts := strings.Split(address, ".")
	if len(parts) < 2 {
		return "", address
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

func (s *Set) runTest(repo *spec.Repo, base map[plan.Key]plan.Unit, tc TestCase, now time.Time) TestResult {
	res := TestResult{File: tc.File, Line: tc.Line, Name: tc.Name, Policy: tc.Policy, Want: tc.Expect}
	fail := func(format string, args ...any) TestResult {
		res.Detail = fmt.Sprintf(format, args...)
		return res
	}
	if tc.Policy != "" && !slices.ContainsFunc(s.policies, func(p *compiled) bool { return p.name == tc.Policy }) {
		return fail("no policy named %q in the repository or among the built-ins that are on", tc.Policy)
	}
	if tc.Stack != "" {
		st := repo.Stack(tc.Stack)
		switch {
		case st == nil:
			return fail("no stack %q in the repository", tc.Stack)
		case !slices.Contains(st.Instances(), tc.Instance):
			return fail("stack %s is not applied to %q: its instances are %s", tc.Stack, tc.Instance, strings.Join(st.Instances(), ", "))
		}
		in := StackInput{Stack: tc.Stack, Instance: tc.Instance, PerZone: st.PerZone(), Change: *tc.Resource,
			Context: Context{Operation: tc.Operation, Now: tc.Now, Author: tc.Author, Approvers: tc.Approvers}}
		if in.Now.IsZero() {
			in.Now = now
		}
		return score(res, tc, s.EvaluateStack(in))
	}
	if repo.Environment(tc.Env) == nil {
		return fail("no environment %q in socle.yaml", tc.Env)
	}
	u, ok := base[plan.Key{App: tc.App, Env: tc.Env}]
	if !ok {
		if tc.New == nil {
			why := "no app %q in the repository"
			if repo.App(tc.App) != nil {
				why = "app %q is not enabled in " + tc.Env
			}
			return fail(why+": describe the unit under new:", tc.App)
		}
		u = plan.Unit{App: tc.App, Env: tc.Env, Zone: repo.Environment(tc.Env).Zone}
		if a := repo.App(tc.App); a != nil {
			u.Team = a.Config.Owner
		}
	}
	if tc.Artifact != "" {
		u.Artifact = tc.Artifact
	}
	desired, err := overlay(u, tc.New)
	if err != nil {
		return fail("new: %v", err)
	}
	in := Input{Change: plan.Change{Action: tc.Action, App: tc.App, Env: tc.Env, Desired: desired},
		Context: Context{Operation: tc.Operation, Now: tc.Now, Author: tc.Author, Approvers: tc.Approvers}}
	if tc.HasOld {
		if in.Old, err = overlay(u, tc.Old); err != nil {
			return fail("old: %v", err)
		}
	}
	if in.Change.Action == "" {
		in.Change.Action = plan.Create
		if tc.HasOld {
			in.Change.Action = plan.Update
		}
	}
	if in.Now.IsZero() {
		in.Now = now
	}
	if tc.History != nil {
		runs := make(Runs, len(tc.History))
		for i, r := range tc.History {
			if r.App == "" {
				r.App = tc.App
			}
			if r.Artifact == "" {
				r.Artifact = desired.Artifact
			}
			runs[i] = r
		}
		in.History = runs
	}
	return score(res, tc, s.Evaluate(in))
}

// score compares the verdicts on a case's change with what it expects.
func score(res TestResult, tc TestCase, verdicts Verdicts) TestResult {
	relevant := verdicts.Denials()
	relevant = append(relevant, verdicts.Warnings()...)
	if tc.Policy != "" {
		relevant = nil
		res.Got = ExpectNone
		for _, v := range verdicts {
			if v.Policy == tc.Policy {
				res.Got = verdictWord(v)
				relevant = Verdicts{v}
			}
		}
	} else {
		res.Got = ExpectAllow
		if verdicts.Blocked() {
			res.Got = ExpectDeny
		} else if len(verdicts.Warnings()) > 0 {
			res.Got = ExpectWarn
		}
	}
	var msgs []string
	for _, v := range relevant {
		if v.Message != "" {
			msgs = append(msgs, v.Policy+": "+v.Message)
		}
	}
	res.Pass = res.Got == tc.Expect
	if res.Pass && tc.Message != "" && !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, tc.Message) }) {
		res.Pass = false
		msgs = append([]string{fmt.Sprintf("no message contains %q", tc.Message)}, msgs...)
	}
	if !res.Pass {
		res.Detail = strings.Join(msgs, "\n")
	}
	return res
}

func verdictWord(v Verdict) string {
	switch {
	case v.Allowed:
		return ExpectAllow
	case v.Severity == spec.SeverityWarn:
		return ExpectWarn
	default:
		return ExpectDeny
	}
}

// overlay lays fields over a unit through their JSON form, as a JSON merge
// patch (RFC 7396) does: maps merge, null removes, anything else replaces.
func overlay(u plan.Unit, patch map[string]any) (*plan.Unit, error) {
	if len(patch) == 0 {
		return &u, nil
	}
	b, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	merged, err := json.Marshal(mergePatch(doc, patch))
	if err != nil {
		return nil, err
	}
	var out plan.Unit
	if err := json.Unmarshal(merged, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func mergePatch(doc, patch map[string]any) map[string]any {
	if doc == nil {
		doc = map[string]any{}
	}
	for _, k := range slices.Sorted(maps.Keys(patch)) {
		switch p := patch[k].(type) {
		case nil:
			delete(doc, k)
		case map[string]any:
			d, _ := doc[k].(map[string]any)
			doc[k] = mergePatch(d, p)
		default:
			doc[k] = p
		}
	}
	return doc
}
