package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/resource"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// TestResourcesProvisioned: socle up with resources provisioned gives the
// demo's api in dev a database unit, Synced before api runs, whose
// outputs api's replica has in its environment; the password shows in no
// answer and not in socle's log.
func TestResourcesProvisioned(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	// The data directory as socle's would be, searchable by the postgres
	// user the server runs as when the test runs as root.
	data := t.TempDir()
	for _, d := range []string{data, filepath.Dir(data)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	r := startWith(t, Config{Repo: gitRepo(t), Data: data, ProvisionResources: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer r.stop()
	st := r.waitFor(t, "api to run in dev", func(st Status) bool {
		for _, u := range st.Runtime {
			if u.App == "api" && u.Env == "dev" && u.Phase == api.PhaseSynced && len(u.Replicas) > 0 && u.Replicas[0].PID > 0 {
				return true
			}
		}
		return false
	})
	var db reconcile.UnitStatus
	for _, u := range r.engine.Status() {
		if u.Key() == resource.Key("api-db", "dev") {
			db = u
		}
	}
	if db.Phase != reconcile.Synced || !strings.Contains(db.Message, "builtin/postgres") {
		t.Errorf("api's database in dev: %+v", db)
	}
	// api's replica has the real database's address and credentials: it
	// reads the table api made in it.
	var pw string
	for _, u := range st.Runtime {
		if u.App != "api" || u.Env != "dev" {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", u.Replicas[0].PID))
		if err != nil {
			t.Fatal(err)
		}
		for v := range bytes.SplitSeq(env, []byte{0}) {
			if dbURL, ok := bytes.CutPrefix(v, []byte("DATABASE_URL=")); ok {
				u, err := url.Parse(string(dbURL))
				if err != nil {
					t.Fatal("api's DATABASE_URL does not parse")
				}
				pw, _ = u.User.Password()
				if !strings.HasPrefix(u.User.Username(), "api_db") || len(pw) < 16 || u.Hostname() != "127.0.0.1" {
					t.Errorf("api's DATABASE_URL is for user %q at %s, with a %d-character password", u.User.Username(), u.Host, len(pw))
				}
				conn, err := pgx.Connect(t.Context(), string(dbURL))
				if err != nil {
					t.Fatalf("connecting with api's DATABASE_URL: %v", err)
				}
				var n int
				if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM bookings").Scan(&n); err != nil {
					t.Errorf("api's database has no bookings table: %v", err)
				}
				conn.Close(t.Context())
			}
		}
	}
	if pw == "" {
		t.Fatal("api's replica has no DATABASE_URL with a password")
	}
	// The API shows it, its secret outputs redacted.
	c := client.New(r.url, r.token)
	list, err := c.Resources(t.Context(), "dev", "")
	if err != nil {
		t.Fatalf("GET /api/v1/resources?env=dev: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "api-db" || list.Items[0].Provisioner != "builtin/postgres" || strings.Join(list.Items[0].Apps, ",") != "api" ||
		list.Items[0].Unit == nil || list.Items[0].Unit.Phase != string(reconcile.Synced) {
		t.Errorf("GET /api/v1/resources?env=dev: %+v", list)
	}
	// By app: the page of an app asks for its resources only.
	for app, want := range map[string]int{"api": 1, "web": 0} {
		if l, err := c.Resources(t.Context(), "", app); err != nil || len(l.Items) != want {
			t.Errorf("GET /api/v1/resources?app=%s: %+v %v, want %d", app, l, err, want)
		}
	}
	one, err := c.Resource(t.Context(), "dev", "api-db")
	if err != nil {
		t.Fatalf("GET /api/v1/resources/dev/api-db: %v", err)
	}
	outs := map[string]api.ResourceOutput{}
	for _, o := range one.Outputs {
		outs[o.Name] = o
	}
	if outs["password"].Value != api.SecretOutput || !outs["password"].Secret || outs["url"].Value != api.SecretOutput || outs["host"].Value != "127.0.0.1" || !one.Data {
		t.Errorf("GET /api/v1/resources/dev/api-db: %+v", one)
	}
	if resp := r.get(t, "/api/v1/resources/dev/nothing"); resp.StatusCode != 404 {
		t.Errorf("an unknown resource: %s", resp.Status)
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/apps/api", "/api/v1/events", "/api/v1/resources", "/api/v1/resources/dev/api-db"} {
		resp := r.get(t, path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte(pw)) {
			t.Errorf("GET %s shows the database's password", path)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Error("socle's log shows the database's password")
	}
}

// TestResourceViewOfARetainedResource: a data-bearing resource removed
// from Git in production is shown with no app, the apps that used it as
// its former ones, its status, and its secret outputs redacted.
func TestResourceViewOfARetainedResource(t *testing.T) {
	pw := "pw-prod-api-db-4e2a9d17c3"
	x := resource.Resource{Key: resource.Key("api-db", "prod"),
		Spec: resource.Desired{Request: provision.Request{Name: "api-db", Env: "prod", Type: "postgres"}, Provisioner: "builtin/postgres", Driver: "process",
			Outputs: []spec.ProvisionerOutput{{Name: "host"}, {Name: "password", Secret: true}}, Data: true, Production: true, Apps: []string{"api", "worker"}},
		Outputs: map[string]string{"host": "127.0.0.1", "password": pw}}
	st := &reconcile.UnitStatus{Phase: reconcile.Orphaned, Reason: resource.ReasonRetained, Message: resource.RetainedMessage(x.Key)}
	v := resourceView(x, st)
	if len(v.Apps) != 0 || strings.Join(v.FormerApps, ",") != "api,worker" {
		t.Errorf("apps %q, former apps %q: want none, and api,worker", v.Apps, v.FormerApps)
	}
	if v.Unit == nil || v.Unit.Phase != "Orphaned" || v.Unit.Reason != "Retained" || !strings.HasPrefix(v.Unit.Message, "Retained: ") {
		t.Errorf("status %+v", v.Unit)
	}
	if b, _ := json.Marshal(v); bytes.Contains(b, []byte(pw)) || len(v.Outputs) != 2 || v.Outputs[1] != (api.ResourceOutput{Name: "password", Value: api.SecretOutput, Secret: true}) {
		t.Errorf("outputs %+v, want the password as %s", v.Outputs, api.SecretOutput)
	}
	// In Git, the apps that use it are its apps, and none is former.
	x.Desired = true
	if v := resourceView(x, nil); strings.Join(v.Apps, ",") != "api,worker" || v.FormerApps != nil || v.Unit != nil {
		t.Errorf("a resource in Git: apps %q, former %q, unit %+v", v.Apps, v.FormerApps, v.Unit)
	}
}

// TestResourceDeleteRetained: api's database in an environment of the
// production zone, removed from Git, is retained; an admin deletes it
// through the API: refused while Git declares it (409), to a developer
// (403), unknown (404); then the process driver drops it (connecting with
// its old URL fails, the server answering), it leaves the list, its
// sealed outputs are gone, and the audit trail says who deleted which.
func TestResourceDeleteRetained(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	// dev shares prod's zone: it is production, and its database is
	// retained when removed from Git.
	commit(t, repo, "socle.yaml", "  - name: dev\n    zone: apps-nonprod", "  - name: dev\n    zone: apps-prod", "dev in the production zone")
	data := t.TempDir()
	for _, d := range []string{data, filepath.Dir(data)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	r := startWith(t, Config{Repo: repo, Data: data, ProvisionResources: true})
	defer r.stop()
	key := resource.Key("api-db", "dev")
	unitOf := func() (reconcile.UnitStatus, bool) {
		for _, u := range r.engine.Status() {
			if u.Key() == key {
				return u, true
			}
		}
		return reconcile.UnitStatus{}, false
	}
	r.waitFor(t, "api's database in dev", func(Status) bool { u, _ := unitOf(); return u.Phase == reconcile.Synced })
	rs, err := r.resources.Resources()
	if err != nil || len(rs) != 1 || rs[0].Outputs["url"] == "" || !rs[0].Spec.Production {
		t.Fatalf("the resources: %+v %v", rs, err)
	}
	dbURL := rs[0].Outputs["url"]
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connecting to api's database: %v", err)
	}
	conn.Close(t.Context())

	admin := client.New(r.url, r.token)
	status := func(err error) int {
		if e, ok := errors.AsType[*client.Error](err); ok {
			return e.Status
		}
		return 0
	}
	if _, err := admin.DeleteResource(t.Context(), "dev", "api-db"); status(err) != http.StatusConflict || !strings.Contains(err.Error(), "still declared in Git") {
		t.Errorf("deleting a resource Git declares: %v, want 409", err)
	}
	if _, err := admin.DeleteResource(t.Context(), "dev", "nothing"); status(err) != http.StatusNotFound {
		t.Errorf("deleting an unknown resource: %v, want 404", err)
	}

	commit(t, repo, "apps/api/score.yaml", "resources:\n  db:\n    type: postgres\n", "", "api: no database")
	commit(t, repo, "apps/api/score.yaml",
		`"postgres://${resources.db.username}:${resources.db.password}@${resources.db.host}:${resources.db.port}/${resources.db.name}?sslmode=disable"`,
		`"postgres://nobody@127.0.0.1:1/none?sslmode=disable"`, "api: no database URL")
	r.hook(t)
	r.waitFor(t, "api's database retained", func(Status) bool { u, _ := unitOf(); return u.Reason == resource.ReasonRetained })

	marcoToken, _, err := auth.Create(t.Context(), r.Store(), "marco", "test", "test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(r.url, marcoToken).DeleteResource(t.Context(), "dev", "api-db"); status(err) != http.StatusForbidden {
		t.Errorf("a developer deleting a resource: %v, want 403", err)
	}

	gone, err := admin.DeleteResource(t.Context(), "dev", "api-db")
	if err != nil {
		t.Fatalf("DELETE /api/v1/resources/dev/api-db: %v", err)
	}
	if gone.Name != "api-db" || gone.Env != "dev" || gone.Provisioner != "builtin/postgres" || strings.Join(gone.FormerApps, ",") != "api" || len(gone.Apps) != 0 {
		t.Errorf("deleted %+v", gone)
	}
	// The server answers, and the role and database are no more.
	_, err = pgx.Connect(t.Context(), dbURL)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || (pgErr.Code != "28P01" && pgErr.Code != "3D000") {
		t.Errorf("connecting to the deleted database: %v, want the server to refuse the role or the database", err)
	}
	if l, err := admin.Resources(t.Context(), "dev", ""); err != nil || len(l.Items) != 0 {
		t.Errorf("the resources of dev after the deletion: %+v %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(data, "resource-outputs", "dev", "api-db.sealed")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the sealed outputs of the deleted resource: %v", err)
	}
	var audit api.Page[api.AuditRecord]
	if err := admin.Get(t.Context(), "/api/v1/audit?action=resource.deleted", &audit); err != nil || len(audit.Items) != 1 {
		t.Fatalf("the audit trail of resource.deleted: %+v %v", audit, err)
	}
	var detail struct {
		Resource, Env, Type, Provisioner string
		FormerApps                       []string
	}
	if a := audit.Items[0]; a.Actor != "admin" || a.Env != "dev" || json.Unmarshal(a.Detail, &detail) != nil ||
		detail.Resource != "api-db" || detail.Env != "dev" || detail.Type != "postgres" || strings.Join(detail.FormerApps, ",") != "api" {
		t.Errorf("the audit record: %+v (%s)", a, a.Detail)
	}
	if _, err := admin.DeleteResource(t.Context(), "dev", "api-db"); status(err) != http.StatusNotFound {
		t.Errorf("deleting it twice: %v, want 404", err)
	}
}

// TestBuiltinResources: a workload that asks for an environment, a dns
// and a service-port resource, with no provisioner file, runs with their
// outputs in its environment: the environment's variables from
// socle.yaml, a host name under the environment's domain, and where the
// proxy serves api's http port, at which api answers through socle's
// real proxy.
func TestBuiltinResources(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	for _, d := range []string{data, filepath.Dir(data)} {
		if err := os.Chmod(d, 0o711); err != nil { // searchable by the postgres user api's database runs as, when the test runs as root
			t.Fatal(err)
		}
	}
	repo := gitRepo(t)
	platform := filepath.Join(repo, "socle.yaml")
	b, err := os.ReadFile(platform)
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.ReplaceAll(string(b), "    runtime: {type: local}\n", "    runtime: {type: local}\n    variables: {REGION: alps}\n")
	if err := os.WriteFile(platform, []byte(vars), 0o644); err != nil {
		t.Fatal(err)
	}
	// api is not in sandbox: neither is what reaches it.
	appendFile(t, filepath.Join(repo, "apps/worker/socle.yaml"), "environments:\n  sandbox: {disabled: true}\n")
	commit(t, repo, "apps/worker/score.yaml", "      QUEUE: bookings-confirmations\n", `      QUEUE: bookings-confirmations
      REGION: ${resources.env.REGION}
      SITE: ${resources.site.host}
      API_HOST: ${resources.api.hostname}
      API_PORT: ${resources.api.port}
resources:
  env: {type: environment}
  site: {type: dns}
  api:
    type: service-port
    params: {workload: api, port: http}
`, "worker reads the environment, a host name and api's address")
	r := startWith(t, Config{Repo: repo, Data: data, ProvisionResources: true})
	defer r.stop()
	st := r.waitFor(t, "worker and api to run in dev", func(st Status) bool {
		n := 0
		for _, u := range st.Runtime {
			if (u.App == "worker" || u.App == "api") && u.Env == "dev" && u.Phase == api.PhaseSynced && len(u.Replicas) > 0 && u.Replicas[0].PID > 0 {
				n++
			}
		}
		return n == 2
	})
	env := map[string]string{}
	for _, u := range st.Runtime {
		if u.App != "worker" || u.Env != "dev" {
			continue
		}
		env = replicaEnv(t, u)
	}
	_, proxyPort, _ := strings.Cut(r.ProxyAddr(), ":")
	for k, want := range map[string]string{"REGION": "alps", "SITE": "worker-site.dev.localhost", "API_HOST": "api.dev.localhost", "API_PORT": proxyPort} {
		if env[k] != want {
			t.Errorf("worker's %s = %q, want %q", k, env[k], want)
		}
	}
	// What worker was given reaches api, through socle's proxy.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1:"+env["API_PORT"]+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = env["API_HOST"]
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET / on %s through the proxy: %v", env["API_HOST"], err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "Alpenrose bookings API") {
		t.Errorf("GET / on %s through the proxy: %s %q", env["API_HOST"], resp.Status, body)
	}
	// The resources are listed, each served by its built-in provisioner.
	list, err := client.New(r.url, r.token).Resources(t.Context(), "dev", "worker")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range list.Items {
		got = append(got, x.Name+" "+x.Provisioner+" "+x.Driver)
	}
	if s := strings.Join(got, ", "); s != "worker-api builtin/service-port builtin, worker-env builtin/environment builtin, worker-site builtin/dns builtin" {
		t.Errorf("worker's resources in dev: %s", s)
	}
}

func appendFile(t *testing.T, file, text string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(text)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
}
