package tfprovider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/jackc/pgx/v5"

	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/test/pgtest"
)

// The server's host and port are the provider's; the admin role is the
// resource's own: both places a connection setting may be written.
const databaseTF = databaseHead + databaseResource

const databaseHead = `terraform {
  required_providers {
    socletest = {
      source  = "socle.test/socle/socletest"
      version = "0.1.0"
    }
  }
  backend "local" {
    path = "@STATE@"
  }
}

variable "env" {
  type = string
}

variable "pg_host" {
  type = string
}

variable "pg_port" {
  type = number
}

variable "pg_password" {
  type      = string
  sensitive = true
}

provider "socletest" {
  host = var.pg_host
  port = var.pg_port
}
`

const databaseResource = `
resource "socletest_postgres_database" "app" {
  admin_user     = "postgres"
  admin_password = var.pg_password
  name           = "app_${var.env}"
  owner_role     = "app_${var.env}_owner"
}

output "owner_password" {
  value     = socletest_postgres_database.app.owner_password
  sensitive = true
}
`

// TestDatabase runs a stack with a socletest_postgres_database against
// a real PostgreSQL server, through socle's Runner and the real
// terraform: planned as one to add, applied (the database exists, owned
// by a role that logs in with the generated password), dropped by hand —
// which a refresh-only plan reports as drift and the next plan and apply
// correct — and removed from the stack (database and role dropped).
func TestDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	admin := pg.Connect(t, "postgres")
	ctx := context.Background()
	b := newBench(t, "databases", map[string]string{
		"stack.yaml": fmt.Sprintf("apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\nbackend: own\ninputs:\n  env: ${environment.name}\n  pg_host: %s\n  pg_port: %d\n  pg_password: %s\n",
			pg.Host, pg.Port, pg.Password),
		"main.tf": databaseTF,
	}, map[string]string{"env": "dev", "pg_host": pg.Host, "pg_port": strconv.Itoa(pg.Port), "pg_password": pg.Password})
	const addr = "socletest_postgres_database.app"

	res := b.plan()
	wantPlan(t, res, stack.Summary{Add: 1}, addr, stack.ActionCreate)
	if j, _ := json.Marshal(res); strings.Contains(string(j), pg.Password) {
		t.Fatalf("the plan shows the admin password (a sensitive input): %s", j)
	}
	if n := databases(t, admin, "app_dev"); n != 0 {
		t.Fatalf("app_dev exists before apply")
	}
	run := b.apply()
	pw := wantDatabase(t, b, pg, admin)
	// The generated password is a sensitive output: the run shows it
	// redacted.
	if got, ok := run.Outputs["owner_password"]; !ok || strings.Contains(got, pw) {
		t.Errorf("the run shows owner_password as %q, want it there and redacted", got)
	}
	wantNoChanges(t, b.plan())
	b.wantNoDrift()

	if !t.Run("dropped by hand", func(t *testing.T) {
		b.t = t
		if _, err := admin.Exec(ctx, "DROP DATABASE app_dev"); err != nil {
			t.Fatal(err)
		}
		b.wantDrift(addr, tfjson.Actions{tfjson.ActionDelete})
		b.commit(1)
		wantPlan(t, b.plan(), stack.Summary{Add: 1}, addr, stack.ActionCreate)
		// The role outlived its database: it is kept, with a new password.
		b.apply()
		if again := wantDatabase(t, b, pg, admin); again == pw {
			t.Errorf("the owner's password is the same after the database was created again")
		}
		b.wantNoDrift()
	}) {
		return
	}
	t.Run("removed from the stack", func(t *testing.T) {
		b.t = t
		b.edit("main.tf", databaseResource, "")
		wantPlan(t, b.plan(), stack.Summary{Destroy: 1}, addr, stack.ActionDelete)
		b.apply()
		if n := databases(t, admin, "app_dev"); n != 0 {
			t.Errorf("app_dev is still there after the apply that removes it")
		}
		var roles int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = 'app_dev_owner'").Scan(&roles); err != nil {
			t.Fatal(err)
		}
		if roles != 0 {
			t.Errorf("role app_dev_owner is still there after the apply that removes it")
		}
	})
}

func databases(t *testing.T, admin *pgx.Conn, name string) int {
	t.Helper()
	var n int
	if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantDatabase checks app_dev is there, owned by app_dev_owner, and that
// the role logs in to it with the password terraform recorded, which it
// returns.
func wantDatabase(t *testing.T, b *bench, pg *pgtest.Server, admin *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	var owner string
	err := admin.QueryRow(ctx, "SELECT r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'app_dev'").Scan(&owner)
	if err != nil {
		t.Fatalf("app_dev after apply: %v", err)
	}
	if owner != "app_dev_owner" {
		t.Fatalf("app_dev is owned by %s, want app_dev_owner", owner)
	}
	outs, err := b.tf().Output(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pw string
	if err := json.Unmarshal(outs["owner_password"].Value, &pw); err != nil || len(pw) < 32 {
		t.Fatalf("owner_password output %q: %v", pw, err)
	}
	as := *pg
	as.User, as.Password = "app_dev_owner", pw
	conn, err := pgx.Connect(ctx, as.URL("app_dev"))
	if err != nil {
		t.Fatalf("the owner role does not log in with its password: %v", err)
	}
	defer conn.Close(ctx)
	var who, db string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&who, &db); err != nil {
		t.Fatal(err)
	}
	if who != "app_dev_owner" || db != "app_dev" {
		t.Fatalf("logged in as %s to %s", who, db)
	}
	return pw
}
