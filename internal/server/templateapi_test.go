package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/source"
)

// TestNewAppFromTemplate creates an app from the demo's go-service
// template on a real server and a real git repository: the roles, a dry
// run, the commit by the caller, the app answering through the proxy in
// dev; then a template change upgraded into the app with a local edit
// kept, and a conflicting edit refused.
func TestNewAppFromTemplate(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	r := start(t, repo, t.TempDir())
	defer r.stop()
	ctx := t.Context()
	as := map[string]*client.Client{}
	for _, u := range []string{"marco", "tom", "paul"} {
		tok, _, err := auth.Create(ctx, r.Store(), u, "template test", "test", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		as[u] = client.New(r.url, tok)
	}
	r.waitFor(t, "the demo in force", func(st Status) bool { return st.LastGood != nil })
	apiErr := func(err error) *client.Error {
		t.Helper()
		var e *client.Error
		if !errors.As(err, &e) {
			t.Fatalf("not an API error: %v", err)
		}
		return e
	}
	head := func() string { return strings.TrimSpace(gitOut(t, repo, "rev-parse", "HEAD")) }
	before := head()
	owner := map[string]any{"owner": "bookings"}

	// The templates, with the owner picker listing the caller's teams.
	list, err := as["marco"].Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Name != "go-service" || list.Items[1].Name != "worker" {
		t.Fatalf("templates: %+v", list.Items)
	}
	if p := list.Items[0].Parameters[0]; p.Name != "owner" || p.Source != "teams" || len(p.Enum) != 1 || p.Enum[0] != "bookings" {
		t.Errorf("marco's owner picker: %+v", p)
	}
	if owner, _ := list.Items[0].Schema["properties"].(map[string]any)["owner"].(map[string]any); owner == nil || len(owner["enum"].([]any)) != 1 || owner["enum"].([]any)[0] != "bookings" {
		t.Errorf("the schema's owner: %v", list.Items[0].Schema)
	}

	// Another team's developer and a viewer are refused; a missing
	// parameter is named.
	_, err = as["tom"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service", Parameters: owner})
	if e := apiErr(err); e.Status != http.StatusForbidden || !strings.Contains(e.Message, "tom may not create an app for team bookings") {
		t.Errorf("tom for bookings: %d %s", e.Status, e.Message)
	}
	_, err = as["paul"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service", Parameters: map[string]any{"owner": "guest-experience"}})
	if e := apiErr(err); e.Status != http.StatusForbidden {
		t.Errorf("paul, a viewer: %d %s", e.Status, e.Message)
	}
	_, err = as["marco"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service"})
	if e := apiErr(err); e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "owner") {
		t.Errorf("no owner: %d %s", e.Status, e.Message)
	}
	_, err = as["marco"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service", Parameters: map[string]any{"owner": "bookings", "replicas": "many"}})
	if e := apiErr(err); e.Status != http.StatusBadRequest || !strings.Contains(e.Message, "replicas") {
		t.Errorf("replicas=many: %d %s", e.Status, e.Message)
	}

	// A dry run shows the files and the plan, and commits nothing.
	dry, err := as["marco"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service", Parameters: owner, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	for _, f := range dry.Files {
		paths[f.Path] = f.Content
	}
	if !strings.Contains(paths["apps/payments/socle.yaml"], "owner: bookings") || !strings.Contains(paths["apps/payments/.template.yaml"], "template: go-service") || paths["apps/payments/main.go"] == "" {
		t.Errorf("dry run's files: %v", dry.Files)
	}
	creates := 0
	for _, c := range dry.Changes {
		if c.Action == "create" && c.App == "payments" {
			creates++
		}
	}
	if creates == 0 || len(dry.Decisions) == 0 || dry.Commit != nil || head() != before {
		t.Errorf("dry run: %d creates, %d decisions, commit %v, head %s (was %s)", creates, len(dry.Decisions), dry.Commit, head(), before)
	}

	// The commit, by marco; then payments answers through the proxy in
	// dev with no other step.
	res, err := as["marco"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service", Parameters: owner})
	if err != nil {
		t.Fatal(err)
	}
	if got := gitOut(t, repo, "log", "-1", "--format=%an <%ae>|%s", res.Commit.SHA); got != "marco <marco.rossi@alpenrose.example>|new app payments from template go-service v1\n" {
		t.Errorf("the commit: %q", got)
	}
	if _, err := as["marco"].CreateApp(ctx, api.NewApp{App: "payments", Template: "go-service", Parameters: owner}); apiErr(err).Status != http.StatusConflict {
		t.Errorf("payments again: %v", err)
	}
	answer := func(want string) func(Status) bool {
		return func(Status) bool {
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.ProxyAddr()+"/", nil)
			req.Host = "payments.dev.localhost"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK && strings.Contains(string(b), want)
		}
	}
	r.waitFor(t, "payments to answer in dev", answer("Hello from payments"))

	// A local edit of the app, and version 2 of the template that changes
	// other lines: the upgrade keeps both.
	gitOut(t, repo, "reset", "-q", "--hard")
	editFile(t, repo, "apps/payments/main.go", "\tmux.HandleFunc(\"/readyz\"", "\tmux.HandleFunc(\"/pay\", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, \"paid\") })\n\tmux.HandleFunc(\"/readyz\"")
	commitAll(t, repo, "payments: a route of its own")
	editFile(t, repo, "templates/go-service/files/main.go", "listening on :%s", "listening on port %s")
	editFile(t, repo, "templates/go-service/template.yaml", "version: 1", "version: 2")
	commitAll(t, repo, "go-service v2: says the port")
	r.hook(t)
	r.waitFor(t, "go-service v2 in force", func(Status) bool {
		l, err := as["marco"].Templates(ctx)
		return err == nil && l.Items[0].Version == 2
	})
	list, err = as["marco"].Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if apps := list.Items[0].Apps; len(apps) != 1 || apps[0].App != "payments" || apps[0].Version != 1 || apps[0].Behind != 1 {
		t.Errorf("template status: %+v", apps)
	}
	if _, err := as["tom"].UpgradeApp(ctx, "payments", api.TemplateUpgradeRequest{}); apiErr(err).Status != http.StatusForbidden {
		t.Errorf("tom upgrades bookings' app: %v", err)
	}
	// A developer of bookings may not move the app to a team of which
	// he is not: refused, nothing committed.
	before = head()
	_, err = as["marco"].UpgradeApp(ctx, "payments", api.TemplateUpgradeRequest{Parameters: map[string]any{"owner": "platform"}})
	if e := apiErr(err); e.Status != http.StatusForbidden || !strings.Contains(e.Message, "marco may not create an app for team platform") {
		t.Errorf("marco moves payments to platform: %d %s", e.Status, e.Message)
	}
	if head() != before {
		t.Errorf("an upgrade to another team's owner committed")
	}
	up, err := as["marco"].UpgradeApp(ctx, "payments", api.TemplateUpgradeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	main := gitOut(t, repo, "show", up.Commit.SHA+":apps/payments/main.go")
	if !strings.Contains(main, `"/pay"`) || !strings.Contains(main, "listening on port %s") || up.From != 1 || up.To != 2 || up.Conflicts != 0 {
		t.Errorf("upgrade %+v gave main.go:\n%s", up, main)
	}
	if rec := gitOut(t, repo, "show", up.Commit.SHA+":apps/payments/.template.yaml"); !strings.Contains(rec, "version: 2") {
		t.Errorf("the record after the upgrade:\n%s", rec)
	}
	if got := gitOut(t, repo, "log", "-1", "--format=%an|%s", up.Commit.SHA); got != "marco|template upgrade payments to go-service v2\n" {
		t.Errorf("the upgrade's commit: %q", got)
	}
	if len(up.Files) != 1 || !strings.Contains(up.Files[0].Diff, "+\tlog.Printf(\"payments %s listening on port %s\"") {
		t.Errorf("the upgrade's diff: %+v", up.Files)
	}

	// The app and version 3 change the same line: refused, the conflict
	// shown, nothing committed.
	gitOut(t, repo, "reset", "-q", "--hard")
	editFile(t, repo, "apps/payments/main.go", "listening on port %s", "up on %s")
	commitAll(t, repo, "payments: its own log line")
	editFile(t, repo, "templates/go-service/files/main.go", "listening on port %s", "serving on port %s")
	editFile(t, repo, "templates/go-service/template.yaml", "version: 2", "version: 3")
	commitAll(t, repo, "go-service v3")
	before = head()
	_, err = as["marco"].UpgradeApp(ctx, "payments", api.TemplateUpgradeRequest{})
	e := apiErr(err)
	var shown api.TemplateUpgrade
	if e.Status != http.StatusConflict || e.Code != "conflict" || !details(t, e, &shown) || shown.Conflicts != 1 {
		t.Fatalf("a conflicting upgrade: %d %s %+v", e.Status, e.Message, e.Details)
	}
	if d := shown.Files[0].Diff; !strings.Contains(d, "<<<<<<< app payments") || !strings.Contains(d, "up on %s") || !strings.Contains(d, "serving on port %s") || !strings.Contains(d, ">>>>>>> template go-service v3") {
		t.Errorf("the conflict shown:\n%s", d)
	}
	if head() != before {
		t.Errorf("a conflicting upgrade committed")
	}
}

// details decodes an API error's details into v.
func details(t *testing.T, e *client.Error, v any) bool {
	t.Helper()
	b, err := json.Marshal(e.Details)
	if err != nil || e.Details == nil {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Errorf("details: %v", err)
		return false
	}
	return true
}

// TestRecognizeTemplateCommits: the writer knows the commits of socle new
// and template upgrade, to mend an audit record a crash lost.
func TestRecognizeTemplateCommits(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]string{
		"new app payments from template go-service v1\n\nParameters:\n- owner: bookings": "marco app.create payments go-service",
		"template upgrade payments to go-service v2\n\nFrom v1":                          "marco app.template-upgrade payments go-service",
		"new app payments, by hand":                                                      "",
	} {
		rec, d, ok := recognize(source.Revision{Author: "marco", Message: msg})
		got := ""
		if ok {
			tmpl, _ := d["template"].(string)
			got = strings.Join([]string{rec.Actor, rec.Action, rec.App, tmpl}, " ")
		}
		if got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
}

// TestUpgradeEditRefusesAChangedFile: the upgrade's write of a file
// refuses with source.ErrConflict if the file at the head is no longer
// what the merge was computed from, a file that was not there included.
func TestUpgradeEditRefusesAChangedFile(t *testing.T) {
	t.Parallel()
	ours, result := []byte("a\n"), []byte("b\n")
	for _, c := range []struct {
		name      string
		want, old []byte
		ok        bool
	}{
		{"unchanged", ours, ours, true},
		{"changed", ours, []byte("a\nc\n"), false},
		{"deleted", ours, nil, false},
		{"still absent", nil, nil, true},
		{"created since", nil, []byte{}, false},
		{"created with content", nil, []byte("x"), false},
	} {
		got, err := unchangedSince("apps/x/main.go", c.want, result)(c.old)
		switch {
		case c.ok && (err != nil || string(got) != string(result)):
			t.Errorf("%s: %q %v", c.name, got, err)
		case !c.ok && (!errors.Is(err, source.ErrConflict) || !strings.Contains(err.Error(), "apps/x/main.go")):
			t.Errorf("%s: %q %v, want a conflict naming the file", c.name, got, err)
		}
	}
}
