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

const fileTF = `terraform {
  required_providers {
    socletest = {
      source  = "socle.test/socle/socletest"
      version = "0.1.0"
    }
  }
}

variable "path" {
  type = string
}

variable "env" {
  type = string
}

resource "socletest_file" "motd" {
  path    = var.path
  content = "hello ${var.env}\n"
}

output "sha256" {
  value = socletest_file.motd.sha256
}
`

func fileStack(path string) string {
	return "apiVersion: socle.dev/v1\nkind: Stack\nenvironments: [dev]\ninputs:\n  env: ${environment.name}\n  path: " + path + "\n"
}

// TestFile runs a stack with a socletest_file through socle's Runner and
// the real terraform: planned as one to add, applied (the file is
// written), then changed outside terraform — edited, deleted — which a
// refresh-only plan reports as drift and the next plan and apply
// correct; a new path replaces the file, and destroy removes it.
func TestFile(t *testing.T) {
	dir := t.TempDir()
	motd := filepath.Join(dir, "etc", "motd")
	b := newBench(t, "files", map[string]string{"stack.yaml": fileStack(motd), "main.tf": fileTF})
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
		b.acceptDrift()
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
		b.acceptDrift()
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
		if err := os.WriteFile(filepath.Join(b.repo, "stacks", "files", "stack.yaml"), []byte(fileStack(moved)), 0o644); err != nil {
			t.Fatal(err)
		}
		wantPlan(t, b.plan(), stack.Summary{Replace: 1}, addr, stack.ActionReplace)
		b.apply()
		wantFile(t, moved, "hello dev\n")
		wantGone(t, motd)
		motd = moved
	}) {
		return
	}
	t.Run("destroy", func(t *testing.T) {
		b.t = t
		b.destroy()
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
