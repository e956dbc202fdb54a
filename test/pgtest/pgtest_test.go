package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStart starts a real server and checks it is the one asked for: a
// password is required, and the admin may create a database.
func TestStart(t *testing.T) {
	s := Start(t)
	conn := s.Connect(t, "postgres")
	ctx := context.Background()
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s on %s:%d", v, s.Host, s.Port)
	if _, err := conn.Exec(ctx, "CREATE DATABASE pgtest_probe"); err != nil {
		t.Fatal(err)
	}
	wrong := *s
	wrong.Password = "not-" + s.Password
	if c, err := pgx.Connect(ctx, wrong.URL("postgres")); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted: the server does not check passwords")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("a wrong password failed otherwise than by authentication: %v", err)
	}
}
