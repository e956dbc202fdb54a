package cli

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/source"
)

// TestStackApprove: socle up applies the stacks of a platform; the prod
// instance, gated, waits until socle stack approve (the current plan,
// read from the server) approves it, then it is applied, as planned.
func TestStackApprove(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	repo := filepath.Join(t.TempDir(), "platform")
	// Carl wrote the revision, so ann's approval counts.
	if _, err := source.Init(context.Background(), stackRepo, repo, "Carl", "carl@example.com", "stacks"); err != nil {
		t.Fatal(err)
	}
	url, admin, _, _ := startUp(t, "--repo", repo)
	as := func(args ...string) (string, string, int) {
		return run(t, append(args, "--server", url, "--token", admin)...)
	}
	c := client.New(url, admin)
	deadline := time.Now().Add(3 * time.Minute)
	var d api.StackDetail
	for d.Gate == nil {
		if time.Now().After(deadline) {
			t.Fatalf("app-zone @ prod never waited for an approval: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
		d, _ = c.Stack(t.Context(), "app-zone", "prod")
	}
	if _, e, code := as("stack", "approve", "app-zone"); code != ExitUsage || !strings.Contains(e, "--env is required") {
		t.Errorf("without --env: %d %s", code, e)
	}
	out, e, code := as("stack", "approve", "app-zone", "--env", "prod", "--comment", "ship it", "-o", "json")
	var a api.StackApproval
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a.Plan != d.Gate.PlanID || a.User != "ann" || a.Comment != "ship it" {
		t.Fatalf("socle stack approve: %d %s %s", code, out, e)
	}
	for {
		d, _ = c.Stack(t.Context(), "app-zone", "prod")
		if d.Apply != nil && d.Apply.Status == "Applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app-zone @ prod was not applied after the approval: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.Apply.PlanID != a.Plan {
		t.Errorf("applied plan %s, approved %s", d.Apply.PlanID, a.Plan)
	}
	if _, e, code := as("stack", "approve", "app-zone", "--env", "prod", "--plan", a.Plan); code == 0 || !strings.Contains(e, "no plan waiting") {
		t.Errorf("approving the plan applied: %d %s", code, e)
	}
}
