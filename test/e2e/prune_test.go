package e2e

import (
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// TestPrune removes an app from Git: it stops in an environment that prunes
// (its host answers 404), and keeps running as Orphaned in one that does not.
func TestPrune(t *testing.T) {
	repo := newRepo(t, "web", demoApp(t, "web", "web"), files{
		"socle.yaml": `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: e2e}
environments:
  - {name: dev, runtime: {type: local}, sync: auto}
  - {name: sandbox, runtime: {type: local}, sync: auto, prune: false}
`,
		"teams.yaml":          annTeam,
		"apps/web/socle.yaml": "apiVersion: socle.dev/v1\nkind: App\nowner: web\nbuild:\n  command: go build -o \"$SOCLE_OUT/web\" .\n",
	})
	data := t.TempDir()
	s := start(t, repo, data)
	defer s.stop(t)
	s.waitUnit(t, "web", "dev", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })
	s.waitUnit(t, "web", "sandbox", func(u api.UnitStatus) bool { return u.Phase == api.PhaseSynced })

	rm := exec.Command("git", "rm", "-rq", "apps/web")
	rm.Dir = repo
	if out, err := rm.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	gitCommit(t, repo, "remove web")
	s.hook(t)
	s.waitUnit(t, "web", "sandbox", func(u api.UnitStatus) bool { return u.Phase == api.PhaseOrphaned })
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ok := unit(s.status(t), "web", "dev"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("web @ dev was not pruned")
		}
		time.Sleep(25 * time.Millisecond)
	}
	code := func(host string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+s.proxyPort+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := code("web.dev.localhost"); c != http.StatusNotFound {
		t.Errorf("the pruned app still answers in dev: %d", c)
	}
	if c := code("web.sandbox.localhost"); c != http.StatusOK {
		t.Errorf("the orphan in sandbox does not answer: %d", c)
	}
	if n := len(replicaProcesses(t, data)); n != 1 {
		t.Errorf("%d replicas run, want the sandbox orphan alone", n)
	}
}
