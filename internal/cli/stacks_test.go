package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const stackRepo = "../stack/testdata/repo"

// TestPlanStacks: socle plan shows the stacks' resource changes beside
// the apps', in text and in JSON, with secrets redacted and the
// instances that wait for an upstream said to wait.
func TestPlanStacks(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	data := filepath.Join(t.TempDir(), "none")
	out, _, _ := run(t, "plan", stackRepo, "--data", data)
	for _, want := range []string{
		"~ network @ connectivity: 3 to add, 0 to change, 0 to replace, 0 to destroy",
		"      + terraform_data.hub\n",
		"input.secret  (sensitive value)",
		"output key  (sensitive value)\n",
		"… app-zone @ dev: not planned until its upstream applies",
		"hub: known after network @ connectivity applies (output hub_id)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("socle plan does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cr3t") {
		t.Error("the network's secret is in the plan")
	}
	out, _, _ = run(t, "plan", stackRepo, "--data", data, "--env", "prod", "-o", "json")
	var got struct {
		Stacks stackPlans `json:"stacks"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	var at []string
	for _, r := range got.Stacks.Results {
		at = append(at, r.Stack+"@"+r.Instance+":"+string(r.Status))
	}
	// prod's zone is apps-nonprod: the connectivity zone's network is not prod's.
	if s := strings.Join(at, ","); !got.Stacks.Planned || s != "app-zone@prod:Waiting" {
		t.Errorf("plan --env prod planned %s", s)
	}
}

// TestPlanStacksWithoutTerraform: no terraform on PATH is no error.
func TestPlanStacksWithoutTerraform(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	out, _, _ := run(t, "plan", stackRepo, "--data", t.TempDir())
	if !strings.Contains(out, "Stacks: stacks were not planned: neither terraform nor tofu is on PATH.") {
		t.Errorf("socle plan without terraform:\n%s", out)
	}
	if !strings.Contains(out, "+ web @ dev") {
		t.Error("the apps are planned without terraform")
	}
}

// TestValidateRunsTerraformValidate: socle validate reports what terraform
// validate finds in a stack, at the repository's file and line, and exits
// 1; without terraform on PATH the same repository is valid as far as
// socle reads it.
func TestValidateRunsTerraformValidate(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(stackRepo)); err != nil {
		t.Fatal(err)
	}
	if out, _, code := run(t, "validate", dir); code != 0 {
		t.Fatalf("the stacks' repository does not validate (exit %d):\n%s", code, out)
	}
	main := filepath.Join(dir, "stacks/network/main.tf")
	b, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(main, append(b, "\nresource \"terraform_data\" \"typo\" {\n  inptu = 1\n}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(b), "\n") + 3 // the new resource's argument
	out, _, code := run(t, "validate", dir)
	if code != ExitProblems {
		t.Errorf("exit code %d, want %d", code, ExitProblems)
	}
	if want := fmt.Sprintf("stacks/network/main.tf:%d:3: Unsupported argument", lines); !strings.Contains(out, want) {
		t.Errorf("socle validate does not say %q:\n%s", want, out)
	}
	t.Setenv("PATH", t.TempDir())
	if out, _, code := run(t, "validate", dir); code != 0 {
		t.Errorf("without terraform: exit %d\n%s", code, out)
	}
}

// TestPlanStacksInTheDataDirectory: in an existing data directory, socle
// plan keeps each instance's plan sealed with the directory's secret, to
// be applied as planned; the secret is the one the server seals with.
func TestPlanStacksInTheDataDirectory(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	data := t.TempDir()
	if out, _, code := run(t, "plan", stackRepo, "--data", data); !strings.Contains(out, "~ network @ connectivity: 3 to add") {
		t.Fatalf("socle plan (exit %d):\n%s", code, out)
	}
	saved := filepath.Join(data, "stacks", "network", "connectivity", "plan.tfplan.sealed")
	b, err := os.ReadFile(saved)
	if err != nil {
		t.Fatalf("no saved plan: %v", err)
	}
	if strings.Contains(string(b), "s3cr3t") || strings.Contains(string(b), "terraform_data") {
		t.Error("the saved plan is in clear")
	}
	if _, err := os.Stat(filepath.Join(data, "secret.key")); err != nil {
		t.Errorf("the data directory's secret: %v", err)
	}
}
