package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/resource"
	"github.com/socle-dev/socle/internal/syncbuf"
	units "github.com/socle-dev/socle/internal/unit"
)

// dbStackFiles make the demo's worker use a postgres resource that, in
// dev and the sandbox, the databases stack provides: a gated stack of
// builtin terraform_data whose host comes from its inputs, whose password
// is made at apply (the resource's id) and sensitive, and which has a
// sensitive output the provisioner does not pass on. api, whose readiness
// needs a database it can really connect to, is left out.
var dbStackFiles = map[string]string{
	"stacks/databases/stack.yaml": `apiVersion: socle.dev/v1
kind: Stack
environments: [dev, sandbox]
apply: gated
inputs:
  host: db-1.internal
`,
	"stacks/databases/main.tf": `variable "host" {
  type = string
}

resource "terraform_data" "db" {
  input = var.host
}

output "host" {
  value = terraform_data.db.output
}

output "port" {
  value = 5432
}

output "password" {
  value     = terraform_data.db.id
  sensitive = true
}

output "admin_password" {
  value     = "admin-${terraform_data.db.id}"
  sensitive = true
}
`,
	"provisioners/databases.yaml": `apiVersion: socle.dev/v1
kind: Provisioners
provisioners:
  - name: postgres-databases-stack
    match:
      type: postgres
      environments: [dev, sandbox]
    driver: stack
    config: {stack: databases}
    data: true
    outputs:
      - name: host
      - name: port
      - name: password
        secret: true
`,
	"apps/worker/score.yaml": `apiVersion: score.dev/v1b1
metadata:
  name: worker
containers:
  worker:
    image: .
    variables:
      INTERVAL: "5s"
      QUEUE: bookings-confirmations
      DB: "${resources.db.host}:${resources.db.port}"
      DB_PASSWORD: "${resources.db.password}"
resources:
  db:
    type: postgres
`,
}

// TestStackProvisionedResource: a resource a stack provisioner serves
// waits, and its app with it, while the stack's instance is not applied,
// saying so; once the instance is approved and applied, the app runs with
// the stack's outputs, the secret one redacted everywhere and an output
// the provisioner does not declare not kept; the stack applied again with
// another output rolls the app onto it.
func TestStackProvisionedResource(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	t.Parallel()
	var logs syncbuf.Buffer
	repo := platformWith(t, "Ann Example", "ann@example.com", []string{"stacks", "policies/stacks.yaml", "apps/api"}, dbStackFiles)
	r := startWith(t, Config{Repo: repo, Data: t.TempDir(), ApplyStacks: true, ProvisionResources: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(r.stop)
	c := client.New(r.url, r.token)
	ctx := t.Context()
	db, worker := resource.Key("worker-db", "dev"), "worker"

	// Before the apply: the resource waits for the stack, and says so;
	// the worker waits for the resource.
	const waits = "Waiting: stack databases @ dev not applied yet (awaiting approval)"
	r.waitFor(t, "the resource to wait for the stack's approval", func(Status) bool {
		st := r.unit(db)
		return st.Phase == reconcile.Pending && st.Message == waits
	})
	st := r.waitFor(t, "the worker to wait for its resource", func(st Status) bool {
		for _, u := range st.Runtime {
			if u.App == worker && u.Env == "dev" {
				return u.Phase == api.PhasePending && strings.Contains(u.Message, "resource worker-db (postgres) waiting for stack databases @ dev")
			}
		}
		return false
	})
	for _, u := range st.Runtime {
		if u.App == worker && u.Env == "dev" && len(u.Replicas) > 0 {
			t.Fatalf("the worker runs before its database is provisioned: %+v", u)
		}
	}

	// Approved and applied: the worker runs with the stack's outputs.
	approve := func(not string) string {
		d := waitStack(t, c, "databases", "dev", "a plan held for an approval", func(d api.StackDetail) bool {
			return d.Unit != nil && d.Unit.Reason == "AwaitingApproval" && d.Plan != nil && d.Plan.PlanID != not
		})
		if _, err := c.ApproveStack(ctx, "databases", "dev", d.Plan.PlanID, "the database"); err != nil {
			t.Fatal(err)
		}
		return d.Plan.PlanID
	}
	first := approve("")
	env := r.workerEnv(t, func(env map[string]string) bool { return env["DB"] != "" })
	pw := env["DB_PASSWORD"]
	if env["DB"] != "db-1.internal:5432" || len(pw) < 16 {
		t.Fatalf("the worker's DB is %q, its password %d characters; want db-1.internal:5432 and the stack's password", env["DB"], len(pw))
	}
	one, err := c.Resource(ctx, "dev", "worker-db")
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]api.ResourceOutput{}
	for _, o := range one.Outputs {
		outs[o.Name] = o
	}
	if one.Driver != "stack" || one.Unit == nil || one.Unit.Phase != string(reconcile.Synced) || len(outs) != 3 ||
		outs["host"].Value != "db-1.internal" || outs["port"].Value != "5432" || outs["password"].Value != api.SecretOutput {
		t.Errorf("GET /api/v1/resources/dev/worker-db: %+v", one)
	}
	secrets := []string{pw, "admin-" + pw}
	shown := func(when string) {
		t.Helper()
		for _, path := range []string{"/api/v1/status", "/api/v1/apps/worker", "/api/v1/events", "/api/v1/resources", "/api/v1/resources/dev/worker-db", "/api/v1/stacks/databases/dev"} {
			resp := r.get(t, path)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s: GET %s shows a secret output of the stack", when, path)
				}
			}
		}
		for _, s := range secrets {
			if strings.Contains(logs.String(), s) {
				t.Errorf("%s: socle's log shows a secret output of the stack", when)
			}
		}
	}
	shown("applied")

	// Applied again with another host: the worker rolls onto it.
	commit(t, repo, "stacks/databases/stack.yaml", "db-1.internal", "db-2.internal", "databases: move to db-2")
	r.hook(t)
	approve(first)
	env = r.workerEnv(t, func(env map[string]string) bool { return env["DB"] == "db-2.internal:5432" })
	if env["DB_PASSWORD"] == "" {
		t.Errorf("the worker rolled onto db-2 without its password")
	}
	secrets = append(secrets, env["DB_PASSWORD"])
	shown("applied again")
}

// unit returns the engine's status of unit k (zero when it has none).
func (r *running) unit(k units.Key) reconcile.UnitStatus {
	for _, st := range r.engine.Status() {
		if st.Key() == k {
			return st
		}
	}
	return reconcile.UnitStatus{}
}

// workerEnv waits until a replica of the worker in dev runs with an
// environment cond accepts, and returns it.
func (r *running) workerEnv(t *testing.T, cond func(map[string]string) bool) map[string]string {
	t.Helper()
	var env map[string]string
	r.waitFor(t, "the worker to run with its database", func(st Status) bool {
		for _, u := range st.Runtime {
			if u.App != "worker" || u.Env != "dev" || u.Phase != api.PhaseSynced {
				continue
			}
			for _, rep := range u.Replicas {
				if rep.PID <= 0 {
					continue
				}
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", rep.PID))
				if err != nil {
					continue // stopped meanwhile
				}
				env = map[string]string{}
				for v := range bytes.SplitSeq(b, []byte{0}) {
					if k, val, ok := strings.Cut(string(v), "="); ok {
						env[k] = val
					}
				}
				if cond(env) {
					return true
				}
			}
		}
		return false
	})
	return env
}
