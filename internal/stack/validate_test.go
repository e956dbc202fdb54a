package stack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate checks what only terraform validate finds, at the
// repository's file and line: an argument the resource type does not
// take, in a stack's own file and in a local module it calls; a valid
// stack gives nothing, and a stack whose providers cannot be installed is
// said not to be checked, as a warning.
func TestValidate(t *testing.T) {
	bin := terraformBin(t)
	dir := checkout(t)
	r := &Runner{Dir: t.TempDir(), Terraform: bin}

	if ps := r.Validate(context.Background(), load(t, dir), os.DirFS(dir)); len(ps) > 0 {
		t.Fatalf("the valid repository has problems:\n%v", ps)
	}

	edit := func(file, old, new string) {
		t.Helper()
		p := filepath.Join(dir, file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q", file, old)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	edit("stacks/network/main.tf", `  input            = "peering"`, `  input            = "peering"
  inptu            = var.nope`)
	edit("modules/naming/main.tf", `  value = "subnet-${var.env}"`, `  value = "subnet-${var.enw}"`)
	edit("stacks/app-zone/stack.yaml", "apiVersion", "# edited\napiVersion") // the hash changes with the files

	ps := r.Validate(context.Background(), load(t, dir), os.DirFS(dir))
	var got []string
	for _, p := range ps {
		if p.Warning {
			t.Errorf("a warning: %v", p)
		}
		got = append(got, p.String())
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{
		"stacks/network/main.tf:30:3",   // inptu
		"Unsupported argument",          // its words
		"modules/naming/main.tf:6:",     // var.enw, in the module app-zone calls
		"Reference to undeclared input", // var.nope or var.enw
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}

	// A provider that cannot be installed here: not checked, a warning.
	if err := os.WriteFile(filepath.Join(dir, "stacks/network/providers.tf"), []byte(`terraform {
  required_providers {
    nowhere = { source = "example.invalid/socle/nowhere" }
  }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ps = r.Validate(context.Background(), load(t, dir), os.DirFS(dir))
	var warned bool
	for _, p := range ps {
		if p.File == "stacks/network/stack.yaml" && p.Warning && strings.Contains(p.Message, "not checked by terraform validate") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning that network was not checked:\n%v", ps)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ".validate", "network")); err == nil {
		t.Error("the scratch copy of network was left behind")
	}
}
