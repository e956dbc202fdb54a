package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/apitest"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/source"
)

// TestMain checks every request the client sends and every answer it gets
// against the OpenAPI document (see apitest.Watch).
func TestMain(m *testing.M) {
	apitest.Install()
	os.Exit(m.Run())
}

// serve runs a socle on the demo platform and returns a client of it as
// lena, an admin, once the platform is in force.
func serve(t *testing.T) (*client.Client, *server.Server) {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "platform")
	if _, err := source.Init(t.Context(), "../../../examples/platform", repo, "Ann Example", "ann@example.com", "initial platform"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, server.Config{Repo: repo, Data: t.TempDir(), Addr: "127.0.0.1:0", Poll: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	token, _, err := auth.Create(ctx, s.Store(), "lena", "client test", "test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	apitest.Watch(t, base)
	c := client.New(base, token)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st api.Status
		if err := c.Get(t.Context(), "/api/v1/status", &st); err != nil {
			t.Fatal(err)
		}
		if st.LastGood != nil {
			return c, s
		}
		if time.Now().After(deadline) {
			t.Fatal("the demo platform never came in force")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClient calls every method of the client against a real server: what
// it decodes is what the server answers, and (apitest) what the document
// says.
func TestClient(t *testing.T) {
	c, _ := serve(t)
	ctx := t.Context()

	me, err := c.Me(ctx)
	if err != nil || me.User != "lena" || !me.Admin {
		t.Errorf("Me: %+v %v", me, err)
	}
	p, err := c.Platform(ctx)
	if err != nil || len(p.Environments) < 3 || p.Environments[0].Name != "dev" || p.Revision == "" {
		t.Errorf("Platform: %+v %v", p, err)
	}
	apps, err := c.Apps(ctx, nil)
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = a.Name
	}
	if err != nil || !slices.Contains(names, "web") || !slices.Contains(names, "api") {
		t.Errorf("Apps: %v %v", names, err)
	}
	web, err := c.App(ctx, "web")
	if err != nil || web.Name != "web" || web.Config["dev"].App != "web" {
		t.Errorf("App web: %+v %v", web, err)
	}
	if _, err := c.Releases(ctx, "web", "dev", 10); err != nil {
		t.Errorf("Releases: %v", err)
	}
	pv, err := c.Preview(ctx, "deploy", "web", "dev")
	if err != nil || pv.Action != "deploy" || !pv.Allowed || pv.Target.Env != "dev" {
		t.Errorf("Preview: %+v %v", pv, err)
	}
	if res, err := c.Deploy(ctx, "web", "dev", "", "from the client test"); err != nil || res.Env != "dev" || res.Revision != p.Revision {
		t.Errorf("Deploy: %+v %v", res, err)
	}
	// Actions the gates refuse come back as *client.Error with the code.
	var e *client.Error
	if _, err := c.Promote(ctx, "web", "prod", "too early"); !errors.As(err, &e) || e.Status != http.StatusConflict || e.Code != "blocked" && e.Code != "refused" {
		t.Errorf("Promote to prod at once: %v, want 409 blocked or refused", err)
	}
	if _, err := c.Rollback(ctx, "web", "prod", 0, "nothing to roll back"); !errors.As(err, &e) || e.Status < 400 {
		t.Errorf("Rollback with no release: %v, want an error", err)
	}
	if _, err := c.Approve(ctx, "web", "prod", "nothing to approve"); !errors.As(err, &e) || e.Status < 400 {
		t.Errorf("Approve with nothing incoming: %v, want an error", err)
	}
	if _, err := c.App(ctx, "nothing"); !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Code != "not_found" {
		t.Errorf("App nothing: %v, want 404 not_found", err)
	}

	made, err := c.CreateToken(ctx, api.NewToken{User: "paul", Description: "from the client", Expires: "1d"})
	if err != nil || made.User != "paul" || made.Secret == "" || made.ExpiresAt.IsZero() {
		t.Fatalf("CreateToken: %+v %v", made, err)
	}
	ts, err := c.Tokens(ctx, "paul")
	if err != nil || len(ts) != 1 || ts[0].ID != made.ID {
		t.Errorf("Tokens of paul: %+v %v", ts, err)
	}
	revoked, err := c.RevokeToken(ctx, made.ID)
	if err != nil || revoked.RevokedAt.IsZero() {
		t.Errorf("RevokeToken: %+v %v", revoked, err)
	}
	if _, err := client.New(c.BaseURL, made.Secret).Me(ctx); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Errorf("a revoked token: %v, want 401", err)
	}
	var v struct {
		Verified int64 `json:"verified"`
		LastSeq  int64 `json:"lastSeq"`
	}
	if err := c.Get(ctx, "/api/v1/audit/verify", &v); err != nil || v.Verified == 0 || v.LastSeq != v.Verified {
		t.Errorf("audit verify: %+v %v", v, err)
	}
}
