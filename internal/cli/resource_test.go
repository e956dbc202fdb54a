package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
)

// TestResourceCommands: socle resource list, get and delete print what
// the server answers, as a table or as JSON; an unknown resource is the
// server's 404, a refusal its 409, exit code 1.
func TestResourceCommands(t *testing.T) {
	t.Parallel()
	db := api.Resource{Name: "api-db", Env: "dev", Type: "postgres", Provisioner: "builtin/postgres", Driver: "process", Apps: []string{"api"}, Data: true,
		Outputs: []api.ResourceOutput{{Name: "host", Value: "127.0.0.1"}, {Name: "password", Value: api.SecretOutput, Secret: true}},
		Unit:    &api.StackUnit{Phase: "Synced", Message: "postgres provisioned by builtin/postgres (process) for api"}}
	kept := api.Resource{Name: "orders", Env: "prod", Type: "postgres", Provisioner: "cloud-pg", Driver: "stack", Apps: []string{}, Data: true, Production: true,
		Unit: &api.StackUnit{Phase: "Orphaned", Reason: "Retained", Message: "Retained: data-bearing resource kept in production; an admin deletes it with socle resource delete orders --env prod"}}
	var envs []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/resources", func(w http.ResponseWriter, r *http.Request) {
		envs = append(envs, r.URL.Query().Get("env"))
		json.NewEncoder(w).Encode(api.ResourceList{Items: []api.Resource{db, kept}})
	})
	mux.HandleFunc("GET /api/v1/resources/{env}/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("env") != "dev" || r.PathValue("name") != "api-db" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{Error: api.ErrorBody{Code: "not_found", Message: "no resource " + r.PathValue("name") + " in " + r.PathValue("env")}})
			return
		}
		json.NewEncoder(w).Encode(db)
	})
	var deleted []string
	mux.HandleFunc("DELETE /api/v1/resources/{env}/{name}", func(w http.ResponseWriter, r *http.Request) {
		deleted = append(deleted, r.PathValue("env")+"/"+r.PathValue("name"))
		if r.PathValue("name") != "orders" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(api.Error{Error: api.ErrorBody{Code: "conflict", Message: "resource api-db in dev is still declared in Git"}})
			return
		}
		gone := kept
		gone.FormerApps, gone.Unit = []string{"billing", "orders"}, nil
		json.NewEncoder(w).Encode(gone)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	at := []string{"--server", srv.URL, "--token", "t"}

	out, errOut, code := run(t, append([]string{"resource", "list", "--env", "dev"}, at...)...)
	if code != ExitOK || !strings.Contains(out, "ENV   NAME    TYPE      PROVISIONER") ||
		!strings.Contains(out, "dev   api-db  postgres  builtin/postgres (process)  api   Synced\n") ||
		!strings.Contains(out, "Orphaned: Retained: data-bearing resource kept in production") || len(envs) != 1 || envs[0] != "dev" {
		t.Errorf("resource list: %d %s%s (env asked %q)", code, out, errOut, envs)
	}
	out, errOut, code = run(t, append([]string{"resource", "get", "api-db", "--env", "dev"}, at...)...)
	if code != ExitOK || !strings.Contains(out, "api-db @ dev: postgres, provisioned by builtin/postgres (process)") || !strings.Contains(out, "password  (secret)") {
		t.Errorf("resource get: %d %s%s", code, out, errOut)
	}
	out, _, code = run(t, append([]string{"resource", "get", "api-db", "--env", "dev", "-o", "json"}, at...)...)
	var got api.Resource
	if code != ExitOK || json.Unmarshal([]byte(out), &got) != nil || got.Name != "api-db" || len(got.Outputs) != 2 {
		t.Errorf("resource get -o json: %d %s", code, out)
	}
	if _, errOut, code := run(t, append([]string{"resource", "get", "nothing", "--env", "dev"}, at...)...); code != ExitProblems || !strings.Contains(errOut, "no resource nothing in dev") {
		t.Errorf("an unknown resource: %d %s", code, errOut)
	}
	if _, _, code := run(t, append([]string{"resource", "get", "api-db"}, at...)...); code != ExitUsage {
		t.Errorf("get without --env: %d", code)
	}

	out, errOut, code = run(t, append([]string{"resource", "delete", "orders", "--env", "prod"}, at...)...)
	if code != ExitOK || out != "Deleted orders @ prod: postgres, provisioned by cloud-pg (stack), and its data.\nIt was used by billing, orders.\n" {
		t.Errorf("resource delete: %d %q %s", code, out, errOut)
	}
	out, _, code = run(t, append([]string{"resource", "delete", "orders", "--env", "prod", "-o", "json"}, at...)...)
	if code != ExitOK || json.Unmarshal([]byte(out), &got) != nil || got.Name != "orders" || len(got.FormerApps) != 2 {
		t.Errorf("resource delete -o json: %d %s", code, out)
	}
	if _, errOut, code := run(t, append([]string{"resource", "delete", "api-db", "--env", "dev"}, at...)...); code != ExitProblems || !strings.Contains(errOut, "still declared in Git") {
		t.Errorf("deleting a resource in Git: %d %s", code, errOut)
	}
	if _, _, code := run(t, append([]string{"resource", "delete", "orders"}, at...)...); code != ExitUsage {
		t.Errorf("delete without --env: %d", code)
	}
	if strings.Join(deleted, ",") != "prod/orders,prod/orders,dev/api-db" {
		t.Errorf("deleted %q", deleted)
	}
}
