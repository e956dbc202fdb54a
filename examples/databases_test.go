package examples

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/test/pgtest"
)

// The demo's databases stack is the one stack of the landing zone that
// does real work: these tests apply it with the real terraform and psql
// against a PostgreSQL server of their own.

// dbServer starts PostgreSQL for t and gives its admin's password to the
// processes the test starts (terraform, and psql under it) as PGPASSWORD,
// as a platform team gives it to socle.
func dbServer(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	tf, err := stack.Binary()
	if err != nil || tf == "" {
		t.Skip("no terraform or tofu on PATH: the databases stack needs one")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("the databases stack runs psql, which is not on PATH: install Debian's postgresql-client (scripts/test installs postgresql)")
	}
	srv := pgtest.Start(t)
	t.Setenv("PGPASSWORD", srv.Password)
	return srv, tf
}

// exists reports whether the role and the database exist, and who owns
// the database.
func exists(t *testing.T, srv *pgtest.Server, role, db string) (roleOK, dbOK bool, owner string) {
	t.Helper()
	conn := srv.Connect(t, "postgres")
	ctx := context.Background()
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1 AND rolcanlogin)`, role).Scan(&roleOK); err != nil {
		t.Fatal(err)
	}
	err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1`, db).Scan(&owner)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return roleOK, err == nil, owner
}

// TestDatabasesStackThroughSocle: socle plans and applies the demo's
// databases stack in dev with the inputs its stack.yaml gives (the port
// aside: the test's server has its own), and the database exists, owned
// by its role; the next plan has nothing to do.
func TestDatabasesStackThroughSocle(t *testing.T) {
	srv, tf := dbServer(t)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("platform")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "stacks/databases/stack.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\n  host: 127.0.0.1\n  port: 5432\n") {
		t.Fatalf("%s no longer says host: 127.0.0.1 and port: 5432: update the test", p)
	}
	b = []byte(strings.Replace(string(b), "port: 5432", "port: "+strconv.Itoa(srv.Port), 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := os.DirFS(dir)
	repo, ps := spec.Load(fsys)
	if ps.Errors() > 0 {
		t.Fatal(ps.Err())
	}
	s := repo.Stack("databases")
	r := &stack.Runner{Dir: t.TempDir(), Terraform: tf, Secret: []byte("the test's data directory secret, 32 bytes or more")}
	ctx := context.Background()
	res := r.Plan(ctx, repo, fsys, s, "dev")
	if res.Status != stack.StatusPlanned || res.Summary.Add != 2 {
		t.Fatalf("plan of databases @ dev: %s %s %s, %+v", res.Status, res.Reason, res.Message, res.Summary)
	}
	if role, db, _ := exists(t, srv, "bookings_dev", "bookings_dev"); role || db {
		t.Fatalf("planning created something: role %v, database %v", role, db)
	}
	run := r.Apply(ctx, s, "dev", stack.Approved{PlanID: res.PlanID, Hash: res.Hash})
	if run.Status != stack.RunApplied {
		t.Fatalf("apply of databases @ dev: %s %s %s", run.Status, run.Reason, run.Message)
	}
	role, db, owner := exists(t, srv, "bookings_dev", "bookings_dev")
	if !role || !db || owner != "bookings_dev" {
		t.Errorf("after the apply: role %v, database %v owned by %q; want both, owned by bookings_dev", role, db, owner)
	}
	outs, ok, err := r.ShowOutputs("databases", "dev")
	if err != nil || !ok {
		t.Fatalf("outputs: %v (recorded: %v)", err, ok)
	}
	if outs["name"] != `"bookings_dev"` || outs["username"] != `"bookings_dev"` || outs["port"] != strconv.Itoa(srv.Port) || strings.Contains(fmt.Sprint(outs), srv.Password) {
		t.Errorf("outputs = %v", outs)
	}
	if again := r.Plan(ctx, repo, fsys, s, "dev"); again.Status != stack.StatusNoChanges {
		t.Errorf("plan after the apply: %s %s %+v, want NoChanges", again.Status, again.Message, again.Summary)
	}
}

// TestDatabasesStackLifecycle runs the stack's configuration with terraform
// alone, as socle would resolve its inputs for an environment, through
// what socle does not do itself: the role logs in with the password the
// stack made; a second create over an existing database and role succeeds
// (the SQL is idempotent); destroy drops both, and the server is left as
// it was.
func TestDatabasesStackLifecycle(t *testing.T) {
	srv, tf := dbServer(t)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("platform/stacks/databases")); err != nil {
		t.Fatal(err)
	}
	vars, _ := json.Marshal(map[string]any{"environment": "preprod", "host": srv.Host, "port": srv.Port, "admin_user": srv.User,
		"database": "bookings_preprod", "role": "bookings_preprod", "owner": "bookings", "cost_center": "cc-3000-bookings"})
	if err := os.WriteFile(filepath.Join(dir, "terraform.tfvars.json"), vars, 0o600); err != nil {
		t.Fatal(err)
	}
	terraform := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tf, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr // warnings too, which are no output
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	terraform("init", "-input=false", "-no-color")
	terraform("apply", "-input=false", "-no-color", "-auto-approve")
	role, db, owner := exists(t, srv, "bookings_preprod", "bookings_preprod")
	if !role || !db || owner != "bookings_preprod" {
		t.Fatalf("after apply: role %v, database %v owned by %q", role, db, owner)
	}
	password := strings.TrimSpace(terraform("output", "-raw", "password"))
	login := *srv // the same server, as the stack's role
	login.User, login.Password = "bookings_preprod", password
	conn, err := pgx.Connect(context.Background(), login.URL("bookings_preprod"))
	if err != nil {
		t.Fatalf("the role does not log in with the stack's password: %v", err)
	}
	if _, err := conn.Exec(context.Background(), "CREATE TABLE bookings (id bigint PRIMARY KEY)"); err != nil {
		t.Errorf("the role cannot create a table in its database: %v", err)
	}
	conn.Close(context.Background())

	if out := terraform("plan", "-input=false", "-no-color", "-detailed-exitcode"); !strings.Contains(out, "No changes") {
		t.Errorf("plan after apply:\n%s", out)
	}
	// Created again over what exists: the provisioner runs its SQL again.
	terraform("apply", "-input=false", "-no-color", "-auto-approve", "-replace=terraform_data.database")
	if role, db, _ := exists(t, srv, "bookings_preprod", "bookings_preprod"); !role || !db {
		t.Fatalf("after the second create: role %v, database %v", role, db)
	}

	terraform("destroy", "-input=false", "-no-color", "-auto-approve")
	if role, db, _ := exists(t, srv, "bookings_preprod", "bookings_preprod"); role || db {
		t.Errorf("after destroy: role %v, database %v; want both gone", role, db)
	}
}
