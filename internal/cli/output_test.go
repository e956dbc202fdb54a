package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/golden"
)

var t0 = time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)

// hostile is text an attacker commits: it clears the screen, retitles the
// terminal, hides a link, overwrites the line and reorders what follows.
const hostile = "\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\rok\u202etxt.exe\x9b1m"

// TestStatusOutput renders statuses as people read them, golden: a first
// build says for how long it runs and its log's last line; a failed build
// says when it is tried again and shows its log's last lines under the
// table, which stays aligned; blocked, orphaned and pending units say why;
// hostile commit subjects, authors and messages reach the terminal escaped.
func TestStatusOutput(t *testing.T) {
	t.Parallel()
	head := api.SourceRevision{SHA: "2281b36f0c1d2e3f4a5b6c7d8e9f00112233aabb", Author: "Mallory " + hostile, Message: "web: " + hostile + "\n\nbody"}
	good := api.SourceRevision{SHA: "e0958a9aabbccddeeff00112233445566778899a", Author: "Ann", Message: "api: add the bookings endpoint"}
	tests := []struct {
		name string
		st   api.Status
	}{
		{"building", api.Status{
			Repository: "/srv/platform", Head: &good, LastGood: &good, ProxyAddr: "127.0.0.1:7080",
			Units: []api.UnitRef{{App: "api", Env: "dev", Revision: good.SHA}, {App: "web", Env: "dev", Revision: good.SHA}, {App: "worker", Env: "dev", Revision: good.SHA}},
			Runtime: []api.UnitStatus{
				{App: "api", Env: "dev", Phase: api.PhaseBuilding, Reason: api.ReasonBuilding, Since: t0.Add(-72 * time.Second),
					Message: "building api at e0958a9; what runs is untouched", LogTail: "go: downloading github.com/lib/pq v1.10.9"},
				{App: "web", Env: "dev", Phase: api.PhaseSynced, Release: 3, Revision: good.SHA, Artifact: "sha256:0123456789abcdef0123", Ready: 2, Desired: 2, URL: "http://web.dev.localhost"},
			},
		}},
		{"sandbox-refused", api.Status{
			Repository: "/srv/platform", Head: &good, LastGood: &good, ProxyAddr: "127.0.0.1:7080",
			Units: []api.UnitRef{{App: "web", Env: "dev", Revision: good.SHA}},
			Runtime: []api.UnitStatus{
				{App: "web", Env: "dev", Phase: api.PhaseFailed, Reason: "StartFailed", Since: t0.Add(-time.Minute),
					Message: "starting replica web.dev/r1/0: no sandbox for apps on this machine: bwrap is not installed: install bubblewrap (…)"},
			},
			Sandbox: &api.SandboxStatus{Mode: "refused", Message: "bwrap is not installed: install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user namespaces, or start socle up with --insecure-no-sandbox to run apps without a sandbox"},
		}},
		{"paused", api.Status{
			Repository: "/srv/platform", Head: &good, LastGood: &good, ProxyAddr: "127.0.0.1:7080",
			Units: []api.UnitRef{{App: "api", Env: "dev", Revision: good.SHA}, {App: "web", Env: "dev", Revision: good.SHA}, {App: "web", Env: "prod", Revision: good.SHA}},
			Runtime: []api.UnitStatus{
				{App: "api", Env: "dev", Phase: api.PhaseSynced, Release: 1, Revision: good.SHA, Artifact: "sha256:feedfacefeedface", Ready: 1, Desired: 1, URL: "http://api.dev.localhost"},
				{App: "web", Env: "dev", Phase: api.PhaseSynced, Release: 3, Revision: good.SHA, Artifact: "sha256:0123456789abcdef0123", Ready: 2, Desired: 2, URL: "http://web.dev.localhost"},
				{App: "web", Env: "prod", Phase: api.PhaseSynced, Release: 2, Revision: good.SHA, Artifact: "sha256:0123456789abcdef0123", Ready: 2, Desired: 2, URL: "http://web.prod.localhost"},
			},
			Pauses: []api.Pause{
				{App: "web", Env: "dev", Message: "Back at 14:00 " + hostile, RetryAfterSeconds: 1800, By: "tom", At: t0.Add(-time.Hour)},
				{Env: "prod", By: "admin", At: t0.Add(-time.Minute)},
			},
		}},
		{"build-failed", api.Status{
			Repository: "/srv/platform", Head: &head, LastGood: &head, ProxyAddr: "127.0.0.1:7080",
			Units: []api.UnitRef{{App: "api", Env: "dev", Revision: good.SHA}, {App: "web", Env: "dev", Revision: head.SHA}},
			Runtime: []api.UnitStatus{
				{App: "api", Env: "dev", Phase: api.PhaseSynced, Release: 1, Revision: good.SHA, Artifact: "sha256:feedfacefeedface", Ready: 1, Desired: 1, URL: "http://api.dev.localhost"},
				{App: "web", Env: "dev", Phase: api.PhaseFailed, Reason: api.ReasonBuildFailed, Release: 3, Revision: good.SHA, Artifact: "sha256:0123456789abcdef0123", Ready: 2, Desired: 2,
					Message: "build of web at 2281b36 failed: exit status 1; what runs is untouched; socle builds again when apps/web changes, or after a backoff",
					LogTail: "$ go build -o $SOCLE_OUT/web .\n" + strings.Repeat("# noise\n", 12) + "# example.com/web\n./main.go:12:2: undefined: handler\n./main.go:30:5: " + hostile + "\n",
					RetryAt: t0.Add(4 * time.Minute)},
			},
		}},
		{"blocked-orphaned-failing", api.Status{
			Repository: "/srv/platform", Head: &head, LastGood: &good, FetchError: "fetching origin: " + hostile,
			Failing: &api.Failing{Revision: head, Problems: api.Problems{{File: "apps/api/socle.yaml", Line: 4, Column: 8, Message: `owner: no team "` + hostile + `"`}}},
			Units:   []api.UnitRef{{App: "web", Env: "prod", Revision: good.SHA}, {App: "api", Env: "dev", Revision: good.SHA}},
			Runtime: []api.UnitStatus{
				{App: "web", Env: "prod", Phase: api.PhaseBlocked, Reason: api.ReasonGateClosed, Message: "gate soak: healthy in preprod for 3m of the 10m soak"},
				{App: "old", Env: "dev", Phase: api.PhaseOrphaned, Reason: api.ReasonRemovedFromGit, Revision: good.SHA, Ready: 1, Desired: 1, Message: "removed from Git; 1 replica(s) keep running because dev does not prune"},
			},
			Blocked: []api.BlockedUnit{{App: "worker", Env: "sandbox", Reason: "denied by policy sandbox-memory-limits: worker in sandbox: every container needs resources.limits.memory", ReasonCode: "PolicyDenied"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			e := newEscaper(&b)
			if err := writeStatus(e, tc.st, t0); err != nil {
				t.Fatal(err)
			}
			e.Flush()
			checkHuman(t, b.String())
			golden.Check(t, filepath.Join("testdata", "status", tc.name+".txt"), b.Bytes())
		})
	}
}

// checkHuman fails when human output holds a control character other than
// newlines, or a table row is cut by one.
func checkHuman(t *testing.T, out string) {
	t.Helper()
	if needsEscape(out, true) || strings.Contains(out, "\t") {
		t.Errorf("human output holds a raw control character:\n%q", out)
	}
}

// TestReleasesOutput: every release names its author, and its notes (the
// commits it brings) follow the table instead of breaking it.
func TestReleasesOutput(t *testing.T) {
	t.Parallel()
	notes, _ := json.Marshal(map[string]any{"commits": []map[string]any{
		{"sha": "2281b36f0c1d2e3f", "author": "Bob Example", "subject": "web: quieter logs in dev"},
		{"sha": "9d8e7f6a5b4c3d2e", "author": "Mallory " + hostile, "subject": "web: " + hostile},
	}})
	rels := []api.Release{
		{ID: 4, App: "web", Env: "dev", Revision: "2281b36f0c1d2e3f", Artifact: "sha256:0123456789abcdef", Strategy: "canary", Trigger: "sync", Author: "bob",
			Status: "RolledBack", Reason: "error rate 12% over 5%\nsecond line", StartedAt: t0, FinishedAt: t0.Add(95 * time.Second), Previous: 3, Notes: notes},
		{ID: 3, App: "web", Env: "dev", Revision: "e0958a9aabbccdde", Artifact: "sha256:feedfacefeedface", Strategy: "rolling", Trigger: "promote", Author: "ann",
			Status: "Succeeded", StartedAt: t0.Add(-time.Hour), FinishedAt: t0.Add(-time.Hour + 2500*time.Millisecond)},
		{ID: 1, App: "web", Env: "dev", Revision: "aaaaaaabbbbbbb", Artifact: "sha256:abababababababab", Strategy: "rolling", Trigger: "sync",
			Status: "Succeeded", StartedAt: t0.Add(-48 * time.Hour), FinishedAt: t0.Add(-48*time.Hour + time.Second)},
	}
	var b bytes.Buffer
	e := newEscaper(&b)
	if err := writeReleases(e, rels, time.UTC); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	checkHuman(t, b.String())
	golden.Check(t, filepath.Join("testdata", "releases.txt"), b.Bytes())
}

// TestHelp: socle's help is part of the product, golden.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, golden string }{
		{"socle --help", "help-root.txt"},
		{"socle status --help", "help-status.txt"},
		{"socle releases --help", "help-releases.txt"},
		{"socle pause --help", "help-pause.txt"},
		{"socle stack --help", "help-stack.txt"},
		{"socle secret set --help", "help-secret-set.txt"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := run(t, strings.Fields(tc.name)[1:]...)
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", tc.name, code, errOut)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden), []byte(out))
		})
	}
}

// TestFlagNames: pflag takes a backquoted word in a flag's usage as the
// name of its value (--server `socle login` printed as "--server socle
// login"); every flag of every command names its value in one word.
func TestFlagNames(t *testing.T) {
	t.Parallel()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			if name, _ := pflag.UnquoteUsage(f); strings.ContainsAny(name, " \t") {
				t.Errorf("%s --%s: value named %q in its help", c.CommandPath(), f.Name, name)
			}
		}
		c.LocalFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRoot(&bytes.Buffer{}, &bytes.Buffer{}))
}
