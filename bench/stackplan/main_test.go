package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
)

// TestGenerate: the generated repository validates with socle's loader,
// has the sizes asked for, and is what the bench needs it to be: every
// stack's content hash covers the shared module (a commit to it must plan
// every instance) and no app (a commit to one must plan none).
func TestGenerate(t *testing.T) {
	sz := sizes{Stacks: 2, Resources: 2, Apps: 2}
	load := func(rev, edit int) (*spec.Repo, string) {
		t.Helper()
		dir := t.TempDir()
		if _, err := generate(dir, sz, rev); err != nil {
			t.Fatal(err)
		}
		if edit > 0 {
			if err := os.WriteFile(filepath.Join(dir, "apps", appName(0), "main.go"), []byte(appMain(appName(0), edit)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		repo, problems := spec.Load(os.DirFS(dir))
		if len(problems) > 0 {
			t.Fatalf("the generated repository does not validate:\n%v", problems)
		}
		return repo, dir
	}
	repo, dir := load(1, 0)
	if len(repo.Stacks) != sz.Stacks || len(repo.Apps) != sz.Apps {
		t.Fatalf("%d stacks and %d apps, want %d and %d", len(repo.Stacks), len(repo.Apps), sz.Stacks, sz.Apps)
	}
	if got := len(stack.Targets(repo, nil)); got != sz.instances() || got != sz.Stacks*3 {
		t.Errorf("%d instances, want %d", got, sz.Stacks*3)
	}
	for _, s := range repo.Stacks {
		if got := strings.Join(s.Instances(), ","); got != "dev,preprod,prod" {
			t.Errorf("stack %s: instances %s, want dev,preprod,prod", s.Name, got)
		}
		if !strings.Contains(strings.Join(s.Files, " "), moduleFile) {
			t.Errorf("stack %s: files %v do not include %s", s.Name, s.Files, moduleFile)
		}
		tf, err := os.ReadFile(filepath.Join(dir, "stacks", s.Name, "main.tf"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(tf), `resource "terraform_data"`); got != sz.Resources {
			t.Errorf("stack %s: %d resources, want %d", s.Name, got, sz.Resources)
		}
	}
	moved, _ := load(2, 0)
	edited, _ := load(1, 1)
	for i, s := range repo.Stacks {
		if moved.Stacks[i].Source == s.Source {
			t.Errorf("stack %s: a new revision of %s leaves its hash unchanged", s.Name, moduleFile)
		}
		if edited.Stacks[i].Source != s.Source {
			t.Errorf("stack %s: an edit of apps/%s changes its hash", s.Name, appName(0))
		}
	}
}

// TestBench runs the whole bench at a small size with the real socle and
// terraform, over applied instances: the module commit plans every
// resource as an update on both sides, the app commit runs no terraform.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds socle and runs terraform")
	}
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("no terraform on PATH")
	}
	b := &bench{config: config{sizes: sizes{Stacks: 1, Resources: 2, Apps: 1}, runs: 1, dir: t.TempDir(), loop: true, show: true, applied: true, poll: 5 * time.Millisecond}, out: t.Output()}
	if err := b.setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	all, err := b.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%d runs measured, want 1", len(all))
	}
	f := all[0]
	if f.everything.planned != 3 || f.everything.runs["plan"] != 3 {
		t.Errorf("module commit: %s, want 3 instances planned", f.everything)
	}
	if f.oneApp.cached != 3 || f.oneApp.runs.total() != 0 {
		t.Errorf("app commit: %s, want 0 terraform runs and 3 instances from the cache", f.oneApp)
	}
	if f.everything.change != 6 || f.everything.add != 0 || f.loop.change != 6 {
		t.Errorf("module commit over applied instances: socle %s, loop %s; want 6 resources to change on each side", f.everything, f.loop)
	}
	if f.loop.runs["plan"] != 3 || f.loop.runs["show"] != 3 {
		t.Errorf("loop: %s, want 3 plans and 3 shows", f.loop)
	}
	if f.everything.hwm <= 0 {
		t.Errorf("socle's peak memory was not read: %d", f.everything.hwm)
	}
}
