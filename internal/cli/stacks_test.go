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

// TestPlanStacksPolicyDeniesProtectedDestroy: through the real terraform
// binary, a prod stack whose plan destroys a protected resource (applied
// before, then removed from the configuration) is denied with the
// policy's message, and socle plan exits 1 as for a denied app; the same
// destroy in dev is allowed. The stacks keep their state in their own
// backend, which terraform itself applies to first: socle has no apply
// command yet that would put the protected resource there.
func TestPlanStacksPolicyDeniesProtectedDestroy(t *testing.T) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("no terraform on PATH: this test runs the real binary")
	}
	repo, states := t.TempDir(), t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("socle.yaml", `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: acme}
zones:
  - {name: apps-nonprod, kind: application}
  - {name: apps-prod, kind: application}
environments:
  - {name: dev, zone: apps-nonprod, runtime: {type: local}, sync: auto}
  - {name: prod, zone: apps-prod, runtime: {type: local}, sync: manual, promotion: {from: dev}}
`)
	write("teams.yaml", "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: platform\n    members: [{user: ann, role: admin}]\n")
	write("policies/builtins/overrides.yaml", "apiVersion: socle.dev/v1\nkind: BuiltinPolicies\nstacks:\n  protect: [terraform_data.vault]\n")
	write("policies/stacks.yaml", `apiVersion: socle.dev/v1
kind: Policies
policies:
  - name: keep-the-vault
    severity: deny
    target: stacks
    match: {environments: [prod]}
    expression: "!(change.action in ['delete', 'replace'] && change.before.input.startsWith('vault-'))"
    message: "{{address}} holds prod's secrets: {{stack}} @ {{instance}} must not {{action}} it"
`)
	// One stack per environment, each with its own state file.
	config := func(env string, vault bool) string {
		c := "terraform {\n  backend \"local\" { path = \"" + filepath.Join(states, env+".tfstate") + "\" }\n}\n\n" +
			"variable \"env\" {\n  type = string\n}\n\nresource \"terraform_data\" \"keep\" {\n  input = var.env\n}\n"
		if vault {
			c += "\nresource \"terraform_data\" \"vault\" {\n  input = \"vault-${var.env}\"\n}\n"
		}
		return c
	}
	for _, env := range []string{"dev", "prod"} {
		write("stacks/db-"+env+"/stack.yaml", "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: ["+env+"]\nbackend: own\ninputs:\n  env: ${environment.name}\n")
		write("stacks/db-"+env+"/main.tf", config(env, true))
		// terraform applies the configuration with the vault, in a copy.
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config(env, true)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"init", "-input=false", "-no-color"}, {"apply", "-auto-approve", "-input=false", "-no-color", "-var", "env=" + env}} {
			cmd := exec.Command(tf, args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("terraform %s in %s: %v\n%s", args[0], env, err, b)
			}
		}
		write("stacks/db-"+env+"/main.tf", config(env, false))
	}
	data := t.TempDir()
	out, errOut, code := run(t, "plan", repo, "--data", data)
	if code != ExitProblems || !strings.Contains(errOut, "1 stack instance denied by policy") {
		t.Errorf("plan of a denied destroy: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"  ~ db-dev @ dev: 0 to add, 0 to change, 0 to replace, 1 to destroy\n      - terraform_data.vault\n  ✗ db-prod @ prod",
		"  ✗ db-prod @ prod: 0 to add, 0 to change, 0 to replace, 1 to destroy (denied by policy: not applied)\n      - terraform_data.vault\n",
		"          ✗ deny  stack-protected-in-production: terraform_data.vault (stack db-prod @ prod): the plan would destroy it, and it is protected in production (stacks.protect: terraform_data.vault in policies/builtins/overrides.yaml)",
		"          ✗ deny  keep-the-vault: terraform_data.vault holds prod's secrets: db-prod @ prod must not delete it\n",
		"Policies on stacks: 1 instance denied, 0 warnings.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("socle plan does not say %q:\n%s", want, out)
		}
	}
	out, _, _ = run(t, "plan", repo, "--data", data, "-o", "json")
	var got struct {
		Stacks stackPlans `json:"stacks"`
		Policy struct {
			DeniedStacks int `json:"deniedStacks"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	denied := map[string]bool{}
	for _, r := range got.Stacks.Results {
		denied[r.Instance] = r.Denied
		if len(r.Decisions) != len(r.Changes) || len(r.Changes) != 1 {
			t.Errorf("%s: %d decisions for %d changes", r.Instance, len(r.Decisions), len(r.Changes))
		}
	}
	if !denied["prod"] || denied["dev"] || got.Policy.DeniedStacks != 1 {
		t.Errorf("-o json: denied %v, policy.deniedStacks %d", denied, got.Policy.DeniedStacks)
	}
	// socle stack plan judges one stack as socle plan does.
	out, errOut, code = run(t, "stack", "plan", "db-prod", repo, "--data", data)
	if code != ExitProblems || !strings.Contains(errOut, "1 stack instance denied by policy") || !strings.Contains(out, "✗ deny  keep-the-vault: terraform_data.vault holds prod's secrets") || strings.Contains(out, "db-dev") {
		t.Errorf("stack plan db-prod: exit %d, stderr %q\n%s", code, errOut, out)
	}
	if out, errOut, code := run(t, "stack", "plan", "db-dev", repo, "--data", data, "--env", "dev", "-o", "json"); code != ExitOK || !strings.Contains(out, `"instance": "dev"`) || strings.Contains(out, `"denied": true`) {
		t.Errorf("stack plan db-dev: exit %d, stderr %q\n%s", code, errOut, out)
	}
}
