package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// slowWeb is the demo's web app with a slow endpoint: with ?slow=1 a request
// takes 200 ms, so that a handful of clients keeps many requests in flight.
// Every answer names the version, as the demo's does, and the port of the
// replica that served it, so that the test sees new replicas take traffic.
// Like the demo's, it does not handle SIGTERM: a replica stopped with
// requests in flight drops them. The proxy sends a dropped GET again to
// another replica, but not a POST: only taking the replica out of the route
// and draining it before it is stopped keeps a POST from failing.
const slowWeb = `// Command web is the demo's web app with a slow endpoint.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

var version = "dev"

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	greeting := os.Getenv("GREETING")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") == "1" {
			time.Sleep(200 * time.Millisecond)
		}
		fmt.Fprintf(w, "%s (version %s) on port %s\n", greeting, version, port)
	})
	log.Printf("web %s listening on :%s", version, port)
	log.Fatal(http.ListenAndServe(":"+port, mux))
}
`

// scalingPlatform writes a one-app platform repository like platform does,
// but with slowWeb as the web app, a rolling rollout and replicas between
// lo and hi.
func scalingPlatform(t *testing.T, lo, hi int) string {
	t.Helper()
	return newRepo(t, "web: a version with a slow endpoint", demoApp(t, "web", "web"), files{
		"socle.yaml":       oneEnvPlatform,
		"teams.yaml":       annTeam,
		"apps/web/main.go": slowWeb,
		"apps/web/socle.yaml": fmt.Sprintf(`apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -ldflags "-X main.version=$SOCLE_REVISION" -o "$SOCLE_OUT/web" .
rollout: {strategy: rolling, maxSurge: 1, maxUnavailable: 0}
replicas: {min: %d, max: %d}
`, lo, hi),
	})
}

var portRe = regexp.MustCompile(`\(version [0-9a-f]{40}\) on port (\d+)`)

func (l *load) servedBy() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(l.versions))
	for k, v := range l.versions {
		out[k] = v
	}
	return out
}

// size is what the test watches of web @ dev.
type size struct {
	phase                    api.Phase
	desired, ready, replicas int
}

func sizeOf(u api.UnitStatus) size {
	return size{u.Phase, u.Desired, u.Ready, len(u.Replicas)}
}

func (z size) String() string {
	return fmt.Sprintf("%s desired=%d ready=%d replicas=%d", z.phase, z.desired, z.ready, z.replicas)
}

// waitSize polls the status until done holds, logging every change of
// web @ dev's size with the time since since, and returns the status that
// satisfied done and every size seen on the way. It fails the test if done
// does not hold within timeout.
func (s *socle) waitSize(t *testing.T, what string, since time.Time, timeout time.Duration, done func(api.UnitStatus) bool) (api.UnitStatus, []size) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []size
	for {
		u, _ := unit(s.status(t), "web", "dev")
		if z := sizeOf(u); len(seen) == 0 || seen[len(seen)-1] != z {
			seen = append(seen, z)
			t.Logf("%s: +%s %s", what, time.Since(since).Round(10*time.Millisecond), z)
		}
		if done(u) {
			return u, seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done within %s; last %+v\nsocle's log:\n%s", what, timeout, u, tail(s.log.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func steadyAt(n int) func(api.UnitStatus) bool {
	return func(u api.UnitStatus) bool {
		if u.Phase != api.PhaseSynced || u.Desired != n || u.Ready != n || len(u.Replicas) != n {
			return false
		}
		for _, r := range u.Replicas {
			if !r.Ready {
				return false
			}
		}
		return true
	}
}

// TestAutoscaling puts 30 clients of a 200 ms endpoint on a unit that may
// run 1 to 3 replicas, with a target of 5 requests in flight per replica:
// it grows to 3 replicas, and every new replica takes traffic, without a
// failed request. When the load falls to a few clients it shrinks back to
// 1 after the cool-down, again without a failed request, POSTs included.
// Scaling is no new release.
//
// The autoscaler decides at the reconciler's passes over the unit, which
// without a trigger come every --resync (10s by default), so each change
// of size comes up to a resync after the load changed, however short the
// cool-down; the test waits for conditions, and logs the times it saw.
func TestAutoscaling(t *testing.T) {
	repo, data := scalingPlatform(t, 1, 3), t.TempDir()
	s := start(t, repo, data, "--scale-target", "5", "--scale-cooldown", "1s")
	defer s.stop(t)
	rev := head(t, repo)
	u := s.waitSynced(t, rev, 3*time.Minute)
	if u.Desired != 1 || len(u.Replicas) != 1 {
		t.Fatalf("without load web @ dev runs %d replicas (desired %d), want 1", len(u.Replicas), u.Desired)
	}

	// Scale up: 30 clients of the slow endpoint keep about 30 requests in
	// flight, 6 per replica's worth of the target of 5: the maximum, 3.
	heavy := startRequests(s.proxyPort, http.MethodGet, "/?slow=1", 30, portRe)
	began := time.Now()
	u, ups := s.waitSize(t, "scale up", began, 3*time.Minute, steadyAt(3))
	grown := time.Since(began)
	for _, z := range ups {
		if z.desired < 1 || z.desired > 3 || z.replicas > 3 {
			t.Errorf("during scale-up web @ dev was %s, outside replicas {min: 1, max: 3}", z)
		}
	}
	// Every replica takes traffic: watch until each of the three ports has
	// served a request since it is up.
	want := map[string]bool{}
	for _, r := range u.Replicas {
		want[r.Address[strings.LastIndexByte(r.Address, ':')+1:]] = true
	}
	deadline := time.Now().Add(time.Minute)
	for {
		served := heavy.servedBy()
		missing := 0
		for p := range want {
			if served[p] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 3 replicas (%v) never served a request: answers by port %v", missing, want, served)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// While the load lasts, 3 replicas stay: hold it for more than the
	// scale-down cool-down (2s) and a resync (10s), so that the autoscaler
	// looks at least once more.
	hold := time.Now()
	s.waitSize(t, "under load", began, time.Minute, func(u api.UnitStatus) bool {
		if u.Desired != 3 {
			t.Fatalf("under unchanged load web @ dev went to desired=%d", u.Desired)
		}
		return time.Since(hold) > 12*time.Second
	})

	// Scale down: a light load runs through the whole scale-down, at most 5
	// requests in flight, 1 replica's worth: 1 client of the fast endpoint,
	// 1 GET and 3 POST clients of the slow one, so that the replicas that
	// go away have requests in flight, POSTs among them. The heavy load
	// stops.
	light := startRequests(s.proxyPort, http.MethodGet, "/?slow=1", 1, portRe)
	lightFast := startRequests(s.proxyPort, http.MethodGet, "/", 1, portRe)
	lightPost := startRequests(s.proxyPort, http.MethodPost, "/?slow=1", 3, portRe)
	heavy.halt()
	t.Logf("scale up: 3 replicas ready %s after the load began; heavy load: %d requests, %d failed, by port %v",
		grown.Round(10*time.Millisecond), heavy.ok.Load(), heavy.failed.Load(), heavy.servedBy())
	if n := heavy.failed.Load(); n != 0 {
		t.Errorf("%d requests of the heavy load failed during the scale-up; first: %q", n, heavy.failures)
	}
	calm := time.Now()
	_, downs := s.waitSize(t, "scale down", calm, 3*time.Minute, steadyAt(1))
	shrunk := time.Since(calm)
	for i := 1; i < len(downs); i++ {
		if downs[i].desired > downs[i-1].desired {
			t.Errorf("during scale-down web @ dev grew: %s → %s", downs[i-1], downs[i])
		}
	}
	time.Sleep(time.Second) // the remaining replica keeps serving
	light.halt()
	lightFast.halt()
	lightPost.halt()
	t.Logf("scale down: 1 replica %s after the heavy load stopped (cool-down 1s: at least 2s per step down); light load: %d slow GET, %d fast GET, %d slow POST requests served, %d, %d, %d failed",
		shrunk.Round(10*time.Millisecond), light.ok.Load(), lightFast.ok.Load(), lightPost.ok.Load(), light.failed.Load(), lightFast.failed.Load(), lightPost.failed.Load())
	if n := light.failed.Load() + lightFast.failed.Load(); n != 0 {
		t.Errorf("%d GET requests of the light load failed during the scale-down; first: %q %q", n, light.failures, lightFast.failures)
	}
	// The proxy sends a GET that a stopped replica dropped to another
	// replica; it cannot do so with a POST, which only draining the replica
	// at the proxy before stopping it keeps from failing.
	if n := lightPost.failed.Load(); n != 0 {
		t.Errorf("%d POST requests of the light load failed during the scale-down: a replica was stopped with the request in flight instead of being drained first; %q", n, lightPost.failures)
	}
	if light.ok.Load() == 0 || lightFast.ok.Load() == 0 || lightPost.ok.Load() == 0 {
		t.Errorf("the light load did not run: %d slow GET, %d fast GET, %d slow POST requests served", light.ok.Load(), lightFast.ok.Load(), lightPost.ok.Load())
	}
	if rels := s.releases(t); len(rels) != 1 {
		t.Errorf("scaling recorded %d releases, want 1 (scaling is no new release)", len(rels))
	}
	if procs := replicaProcesses(t, data); len(procs) != 1 {
		t.Errorf("%d replica processes run after scaling down, want 1: %v", len(procs), procs)
	}
	if t.Failed() {
		t.Logf("socle's log:\n%s", tail(s.log.String(), 60))
	}
}
