package web

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
)

// redactedValue is the word the API puts in place of a sensitive value
// (stack.Redacted): the pages say "(sensitive)" and mark it.
const redactedValue = "(sensitive value)"

// stackItem is one stack instance as the pages show it.
type stackItem struct {
	api.StackInstance
}

// Phase is the engine's phase of the instance; Unknown before the engine
// reports one (socle does not apply stacks, or has not got to it yet).
func (s stackItem) Phase() string { return unitPhase(s.Unit) }

// unitPhase is the engine's phase in u; Unknown before the engine
// reports one.
func unitPhase(u *api.StackUnit) string {
	if u == nil || u.Phase == "" {
		return "Unknown"
	}
	return u.Phase
}

// Reason is the engine's reason code in words: "awaiting approval".
func (s stackItem) Reason() string {
	if s.Unit == nil {
		return ""
	}
	return codeWords(s.Unit.Reason)
}

// Path is the instance's page.
func (s stackItem) Path() string { return stackPath(s.Stack, s.Instance) }

func stackPath(stack, instance string) string {
	return "/stacks/" + pathEscape(stack) + "/" + pathEscape(instance)
}

// subjectPath is the page of what an audit record is about: a stack
// instance (the store keeps stacks as the app "stack:<name>", the
// instance as its env) or an app.
func subjectPath(app, env string) string {
	if name, ok := strings.CutPrefix(app, "stack:"); ok {
		if env == "" {
			return "/stacks"
		}
		return stackPath(name, env)
	}
	return "/apps/" + pathEscape(app)
}

// codeWords, planSummary and planWords have twins in static/app.js, which
// redraws the matrix's stack cells live: change them together.

// codeWords writes a reason code in words: AwaitingApproval is "awaiting
// approval"; a run of capitals stays a word (NoSavedPlan, "no saved plan").
func codeWords(code string) string {
	var b strings.Builder
	rs := []rune(code)
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// planSummary is a plan's counts as terraform's symbols: "+1 ~0 -0", with
// the replacements when there are ("+0 ~0 -/+1 -0").
func planSummary(s api.StackSummary) string {
	out := "+" + strconv.Itoa(s.Add) + " ~" + strconv.Itoa(s.Change)
	if s.Replace > 0 {
		out += " -/+" + strconv.Itoa(s.Replace)
	}
	return out + " -" + strconv.Itoa(s.Destroy)
}

// planWords is the same counts in words, for screen readers and titles.
func planWords(s api.StackSummary) string {
	out := strconv.Itoa(s.Add) + " to add, " + strconv.Itoa(s.Change) + " to change, "
	if s.Replace > 0 {
		out += strconv.Itoa(s.Replace) + " to replace, "
	}
	return out + strconv.Itoa(s.Destroy) + " to destroy"
}

// changeSymbol is a resource change as terraform prints it: "+ create",
// "~ update in-place", "-/+ replace" ("+/-" when the new object is created
// first), "- destroy".
func changeSymbol(c api.StackChange) string {
	switch c.Action {
	case "create":
		return "+ create"
	case "update":
		return "~ update in-place"
	case "replace":
		if c.CreateFirst {
			return "+/- replace (create first)"
		}
		return "-/+ replace"
	case "delete":
		return "- destroy"
	case "read":
		return "<= read"
	case "forget":
		return ". forget"
	}
	return c.Action
}

// sensitive reports whether the API redacted v.
func sensitive(v string) bool { return v == redactedValue }

// stackMatrix is the Stacks section of the home page: a table of the
// stacks applied per environment, under the same columns as the apps, and
// one of those applied per zone, a column per zone that has one.
type stackMatrix struct {
	NotRun string
	Tables []stackTable
}

type stackTable struct {
	// Of is "environment" or "zone".
	Of      string
	Columns []string
	Rows    []stackRow
}

type stackRow struct {
	Name      string
	DependsOn []string
	// Cells are one per column; nil where the stack has no instance.
	Cells []*stackItem
}

// buildStackMatrix lines the instances up under the environments (or
// zones) shown, upstream stacks first as the API lists them; instances in
// a column the filter hides are left out.
func buildStackMatrix(l api.StackList, envs []api.Environment, zones []string) *stackMatrix {
	if len(l.Items) == 0 {
		return nil
	}
	tables := []stackTable{{Of: "environment"}, {Of: "zone"}}
	for _, e := range envs {
		tables[0].Columns = append(tables[0].Columns, e.Name)
	}
	// A zone is a column where a stack is: most zones have none.
	for _, z := range zones {
		if slices.ContainsFunc(l.Items, func(it api.StackInstance) bool { return it.Of == "zone" && it.Instance == z }) {
			tables[1].Columns = append(tables[1].Columns, z)
		}
	}
	row := map[string]int{} // a stack's row in its table: it is per zone or per environment
	for _, it := range l.Items {
		t := &tables[0]
		if it.Of == "zone" {
			t = &tables[1]
		}
		col := slices.Index(t.Columns, it.Instance)
		if col < 0 {
			continue
		}
		i, ok := row[it.Stack]
		if !ok {
			i = len(t.Rows)
			row[it.Stack] = i
			t.Rows = append(t.Rows, stackRow{Name: it.Stack, DependsOn: it.DependsOn, Cells: make([]*stackItem, len(t.Columns))})
		}
		t.Rows[i].Cells[col] = &stackItem{it}
	}
	m := &stackMatrix{NotRun: l.NotRun}
	for _, t := range tables {
		if len(t.Rows) > 0 {
			m.Tables = append(m.Tables, t)
		}
	}
	return m
}

type stacksView struct {
	Revision, NotRun string
	Items            []stackItem
	// Mine: the list shows only the instances whose plan waits for the
	// user's approval, of which there are MineCount.
	Mine      bool
	MineCount int
}

// stacksPage lists every instance of every stack, upstream stacks first;
// with ?approve=mine only those whose plan waits for the user's approval.
func (p *portal) stacksPage(w http.ResponseWriter, r *http.Request, s *session) {
	l, err := s.api.Stacks(r.Context())
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	v := stacksView{Revision: l.Revision, NotRun: l.NotRun, Mine: r.URL.Query().Get("approve") == "mine"}
	for _, it := range l.Items {
		mine := p.needsApproval(it, s.me.User)
		if mine {
			v.MineCount++
		}
		if mine || !v.Mine {
			v.Items = append(v.Items, stackItem{it})
		}
	}
	p.render(w, r, http.StatusOK, "stacks", s, "Stacks", v)
}

type stackView struct {
	stackItem
	Detail api.StackDetail
	// NotRun: socle runs no stack, and says why.
	NotRun string
	// User is who looks; Admin is the API's word that they are an admin.
	User  string
	Admin bool
	// MayApprove: the rules in force let User approve this instance's
	// plans; else CannotApprove says who may.
	MayApprove    bool
	CannotApprove string
	// Notice words what the user just did; Error is the API's answer to
	// what they just tried, and Comment what they had typed.
	Notice, Error, Comment string
	// Logs are the instance's run logs, newest first; LogsError says why
	// they could not be read (the rest of the page is shown).
	Logs      []api.StackRunLog
	LogsError string
}

// stackPage is one instance: its status in words, its gate and the
// approval of the plan that waits, its last plan resource by resource,
// its inputs and outputs (secrets redacted by the API), its last apply,
// drift and history.
func (p *portal) stackPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := p.stackView(r, s)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	v.Notice = stackNotice(r.URL.Query().Get("done"))
	p.render(w, r, http.StatusOK, "stack", s, v.Stack+" @ "+v.Instance, v)
}

// stackView gathers what the instance's page shows.
func (p *portal) stackView(r *http.Request, s *session) (stackView, error) {
	d, err := s.api.Stack(r.Context(), r.PathValue("stack"), r.PathValue("instance"))
	if err != nil {
		return stackView{}, err
	}
	v := stackView{stackItem: stackItem{d.StackInstance}, Detail: d, NotRun: d.NotRun, User: s.me.User, Admin: s.me.Admin, MayApprove: true}
	if a := p.cfg.Stacks; a != nil && d.Gated {
		v.MayApprove, v.CannotApprove = a.MayApproveStack(s.me.User, d.Stack, d.Instance)
	}
	if d.NotRun == "" {
		if l, err := s.api.StackLogs(r.Context(), d.Stack, d.Instance); err != nil {
			v.LogsError = "The run logs could not be read: " + err.Error()
		} else {
			v.Logs = l.Items
		}
	}
	return v, nil
}

// stackLogView is one run log of a stack instance, whole.
type stackLogView struct {
	stackItem
	Log   api.StackRunLog
	Lines []string
}

// maxStackLog bounds what the page reads of a run log: twice what socle
// keeps of one (1 MiB).
const maxStackLog = 2 << 20

// stackLogPage shows one run log of a stack instance, whole, as the API
// redacts it.
func (p *portal) stackLogPage(w http.ResponseWriter, r *http.Request, s *session) {
	name, inst := r.PathValue("stack"), r.PathValue("instance")
	l, err := s.api.StackLogs(r.Context(), name, inst)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	i := slices.IndexFunc(l.Items, func(it api.StackRunLog) bool { return it.Name == r.PathValue("log") })
	if i < 0 {
		p.fail(w, r, s, &client.Error{Status: http.StatusNotFound, ErrorBody: api.ErrorBody{Code: "not_found",
			Message: fmt.Sprintf("%s @ %s keeps no log %q: socle keeps the last 20 of each kind", name, inst, r.PathValue("log"))}})
		return
	}
	rc, err := s.api.StackLog(r.Context(), name, inst, l.Items[i].Name, false)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxStackLog))
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	v := stackLogView{stackItem: stackItem{api.StackInstance{Stack: name, Instance: inst}}, Log: l.Items[i],
		Lines: strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")}
	p.render(w, r, http.StatusOK, "stacklog", s, l.Items[i].Kind+" of "+name+" @ "+inst, v)
}

// ApprovePlan is the plan an approval is for: the plan of a gated
// instance that waits at its gates, and is still what an apply would be
// approved for; "" when none waits.
func (v stackView) ApprovePlan() string { return approvePlan(v.StackInstance) }

func approvePlan(it api.StackInstance) string {
	g, pl := it.Gate, it.Plan
	if g == nil || g.PlanID == "" || pl == nil || pl.PlanID != g.PlanID || pl.Outdated {
		return ""
	}
	return g.PlanID
}

// needsApproval reports whether it's plan waits for more approvals that
// user may give: not theirs already, not of their own change.
func (p *portal) needsApproval(it api.StackInstance, user string) bool {
	g := it.Gate
	if approvePlan(it) == "" || len(g.Approvals) >= g.Need || g.Author == user || slices.Contains(g.Approvals, user) {
		return false
	}
	if p.cfg.Stacks == nil {
		return true
	}
	ok, _ := p.cfg.Stacks.MayApproveStack(user, it.Stack, it.Instance)
	return ok
}

// Approved reports whether the user has approved the plan that waits.
func (v stackView) Approved() bool {
	return v.Gate != nil && slices.Contains(v.Gate.Approvals, v.User)
}

// stackNotice words what an action on a stack just did, after the
// redirect that follows it; only known actions are worded.
func stackNotice(done string) string {
	switch done {
	case "approve":
		return "Your approval is recorded: the plan is applied once every gate is open."
	case "unlock":
		return "The run lock is removed."
	}
	return ""
}
