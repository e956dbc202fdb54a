package tfprovider_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/socle-dev/socle/internal/stack"
)

// fileTF is the file stack: fileHead, then fileResource.
const fileTF = fileHead + fileResource

const fileHead = `terraform {
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

variable "path" {
  type = string
}

variable "env" {
  type = string
}
`

const fileResource = `
resource "socletest_file" "motd" {
  path    = var.path
  content = "hello ${var.env}\n"
}

output "sha256" {
  value = socletest_file.motd.sha256
}
`

func fileStack(path string) string {
	return "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\nbackend: own\ninputs:\n  env: ${environment.name}\n  path: " + path + "\n"
}

func fileBench(t *testing.T, path string) *bench {
	return newBench(t, "files", map[string]string{"stack.yaml": fileStack(path), "main.tf": fileTF},
		map[string]string{"env": "dev", "path": path})
}

// TestFile runs a stack with a socletest_file through socle's Runner
// (plan, then apply of the approved plan) and the real terraform: planned
// as one to add, applied (the file is written), then changed outside
// terraform — edited, deleted — which a refresh-only plan reports as
// drift and the Runner's next plan and apply correct; a new path replaces
// the file; removing the resource from the stack deletes the file.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	motd := filepath.Join(dir, "etc", "motd")
	b := fileBench(t, motd)
	const addr = "socletest_file.motd"

	wantPlan(t, b.plan(), stack.Summary{Add: 1}, addr, stack.ActionCreate)
	if _, err := os.Stat(motd); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the file exists before apply: %v", err)
	}
	b.apply()
	wantFile(t, motd, "hello dev\n")
	// The computed sha256 is that of what was written.
	outs, err := b.tf().Output(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.Unmarshal(outs["sha256"].Value, &got); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte("hello dev\n")); got != hex.EncodeToString(sum[:]) {
		t.Errorf("output sha256 = %s, want that of the content", got)
	}
	// Read gives back what Create wrote: no change, no drift.
	wantNoChanges(t, b.plan())
	b.wantNoDrift()

	if !t.Run("edited by hand", func(t *testing.T) {
		b.t = t
		if err := os.WriteFile(motd, []byte("edited by hand\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		b.wantDrift(addr, tfjson.Actions{tfjson.ActionUpdate})
		b.commit(1)
		wantPlan(t, b.plan(), stack.Summary{Change: 1}, addr, stack.ActionUpdate)
		b.apply()
		wantFile(t, motd, "hello dev\n")
		b.wantNoDrift()
	}) {
		return
	}
	if !t.Run("deleted by hand", func(t *testing.T) {
		b.t = t
		if err := os.Remove(motd); err != nil {
			t.Fatal(err)
		}
		b.wantDrift(addr, tfjson.Actions{tfjson.ActionDelete})
		b.commit(2)
		wantPlan(t, b.plan(), stack.Summary{Add: 1}, addr, stack.ActionCreate)
		b.apply()
		wantFile(t, motd, "hello dev\n")
		b.wantNoDrift()
	}) {
		return
	}
	if !t.Run("new path replaces", func(t *testing.T) {
		b.t = t
		moved := filepath.Join(dir, "motd.new")
		b.edit("stack.yaml", "path: "+motd, "path: "+moved)
		b.vars["path"] = moved
		wantPlan(t, b.plan(), stack.Summary{Replace: 1}, addr, stack.ActionReplace)
		b.apply()
		wantFile(t, moved, "hello dev\n")
		wantGone(t, motd)
		motd = moved
	}) {
		return
	}
	t.Run("removed from the stack", func(t *testing.T) {
		b.t = t
		b.edit("main.tf", fileResource, "")
		wantPlan(t, b.plan(), stack.Summary{Destroy: 1}, addr, stack.ActionDelete)
		b.apply()
		wantGone(t, motd)
	})
}

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("after apply: %v", err)
	}
	if string(got) != want {
		t.Fatalf("%s holds %q, want %q", path, got, want)
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s is still there: %v", path, err)
	}
}
