package stack

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/unit"
)

// TestKindDestroysRemoved: app-zone says onRemove: destroy; dev is
// removed from its environments. The destroy plan is judged: denied, the
// instance is kept (Degraded, with the policy's message) and nothing is
// destroyed; allowed, terraform destroys what dev's state holds, from the
// configuration and the (sealed) inputs of dev's last plan, the
// destroy-time provisioner runs, the run is told to OnRun as a destroy,
// its log ends with how it went, and the unit is forgotten. prod, still
// in Git, is untouched; no secret is left in clear.
func TestKindDestroysRemoved(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "destroyed")
	dir := checkout(t)
	edit(t, dir, "stacks/app-zone/stack.yaml", "dependsOn:", "apply: auto\nonRemove: destroy\ndependsOn:")
	edit(t, dir, "stacks/app-zone/main.tf", `output "subnet_id"`, `resource "terraform_data" "marker" {
  input = var.env
  provisioner "local-exec" {
    when    = destroy
    command = "echo ${self.input} >> '`+marker+`'"
  }
}

output "subnet_id"`)
	f := &inForce{}
	f.set(t, "rev1", dir)
	e := startKind(t, f, newRunner(t), time.Hour)
	e.apply()
	e.wait("app-zone", "dev", "Synced", phase(reconcile.Synced, ""))
	e.wait("app-zone", "prod", "Synced", phase(reconcile.Synced, ""))
	if rm, ok, err := e.r.RemovalOf("app-zone", "dev"); err != nil || !ok || !rm.Destroy || rm.PerZone {
		t.Fatalf("removal recorded for app-zone @ dev: %+v %v %v", rm, ok, err)
	}

	f.mu.Lock()
	f.deny = "dev"
	f.mu.Unlock()
	dir2 := checkout(t)
	os.RemoveAll(dir2)
	if err := os.CopyFS(dir2, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	edit(t, dir2, "stacks/app-zone/stack.yaml", "environments: [dev, prod]", "environments: [prod]")
	f.set(t, "rev2", dir2)
	e.apply()
	denied := e.wait("app-zone", "dev", "denied its destroy", phase(reconcile.Degraded, reconcile.Reason(ReasonDestroyDenied)))
	if !strings.Contains(denied.Message, "no change in dev today") || !strings.Contains(denied.Message, "removed from Git") {
		t.Errorf("denied says %q", denied.Message)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a denied destroy destroyed")
	}

	f.mu.Lock()
	f.deny = ""
	f.mu.Unlock()
	k := unit.Key{Kind: KindID, Name: "app-zone", Env: "dev"}
	deadline := time.Now().Add(3 * time.Minute)
	for slices.ContainsFunc(e.Status(), func(s reconcile.UnitStatus) bool { return s.Key() == k }) {
		if time.Now().After(deadline) {
			t.Fatalf("app-zone @ dev was never pruned: %+v", e.Status())
		}
		time.Sleep(20 * time.Millisecond) // polling, not a synchronisation
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "dev\n" {
		t.Errorf("the destroy-time provisioner wrote %q, %v; want dev's, once", b, err)
	}
	var told []Run
	for _, r := range f.applied() {
		if r.Destroy {
			told = append(told, r)
		}
	}
	if len(told) != 1 || told[0].Instance != "dev" || told[0].Status != RunApplied || told[0].Summary.Destroy != 2 || told[0].PlanID == "" {
		t.Errorf("destroys told: %+v; want app-zone @ dev's, applied, 2 to destroy", told)
	}
	last, ok := e.lastRun("app-zone", "dev")
	if !ok || !last.Destroy || last.Status != RunApplied {
		t.Errorf("last run of app-zone @ dev: %+v", last)
	}
	st, err := (&files{dir: instanceDir(e.r.Dir, "app-zone", "dev"), stack: "app-zone", instance: "dev", key: e.r.sealKey()}).readState()
	if err != nil || !st.found || hasResources(st.plain) {
		t.Errorf("dev's state after the destroy: found %v, resources %v, %v", st.found, hasResources(st.plain), err)
	}
	logs, _ := e.r.Logs("app-zone", "dev")
	if len(logs) == 0 || logs[0].Kind != LogDestroy || !logs[0].Ended {
		t.Fatalf("dev's logs: %+v", logs)
	}
	rc, _ := e.r.OpenLog("app-zone", "dev", logs[0].Name)
	b := make([]byte, 64<<10)
	n, _ := rc.Read(b)
	rc.Close()
	if text := string(b[:n]); !strings.Contains(text, "$ terraform plan") || !strings.Contains(text, "2 to destroy") {
		t.Errorf("the destroy's log:\n%s", text)
	}
	noSecretIn(t, string(b[:n]), "the destroy's log")
	noSecretUnder(t, e.r.Dir)
	if run, ok := e.lastRun("app-zone", "prod"); !ok || run.Destroy || run.Status != RunApplied {
		t.Errorf("prod's last run: %+v", run)
	}
}
