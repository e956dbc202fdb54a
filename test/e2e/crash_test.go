package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/audit"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/store"
)

// The crash test's knobs, as environment variables, so that a failure can
// be replayed: SOCLE_CRASH_SEED fixes the random choices (actions and kill
// delays; the timing of socle itself still varies from run to run), and
// SOCLE_CRASH_ROUNDS the number of rounds.
const (
	crashSeedVar   = "SOCLE_CRASH_SEED"
	crashRoundsVar = "SOCLE_CRASH_ROUNDS"
)

// crashEnvs are promotionPlatform's environments, in promotion order.
var crashEnvs = []string{"dev", "preprod", "prod"}

// crashConverge bounds how long socle may take, once restarted, to run what
// Git says everywhere; a rebuild of web is the slowest part of it.
const crashConverge = 90 * time.Second

// TestCrashDuringPromotionsAndRollouts kills socle with SIGKILL at random
// moments while it builds and rolls out a new commit in dev, promotes to
// preprod, promotes to prod (after the soak, with an approval) or rolls prod
// back, 20 times on one repository and one data directory. The kill comes
// after a random delay from the start of the action, or from the start of
// its rollout, or from the return of its HTTP call, often before the CLI
// call returns. After each kill the repository is as a git user expects it
// and the audit chain of the data directory left behind verifies; after
// each restart socle converges on what Git says (dev the newest version of
// web, preprod and prod what releases/<env>.yaml pins), no release record
// seen before the kill is lost or changed, no rollout is recorded twice,
// every release has ended, the replica processes are exactly those the
// status names and those of a release that kept running were adopted, not
// restarted, and the audit trail has each release and each promotion once
// and only grows.
func TestCrashDuringPromotionsAndRollouts(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	if v := os.Getenv(crashRoundsVar); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashRoundsVar, v)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedVar); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned number", crashSeedVar, v)
		}
		seed = n
	}
	t.Logf("seed %d, %d rounds (replay: %s=%d go test ./test/e2e -run TestCrash -v -count=1)", seed, rounds, crashSeedVar, seed)

	hook := newReceiver(t)
	repo, data := promotionPlatform(t, hook.srv.URL), t.TempDir()
	c := &crashRun{t: t, repo: repo, data: data, rng: rand.New(rand.NewPCG(seed, seed^0x5eed_c0de)), seen: map[int64]store.Release{}}
	// Registered after data's TempDir, so run before it is removed: whatever
	// a failed run leaves, socle or its apps, goes.
	t.Cleanup(c.cleanup)

	began := time.Now()
	c.s = start(t, repo, data)
	c.waitConverged("initial start")
	t.Logf("socle up and web built and live in dev in %s", time.Since(began).Round(time.Millisecond))

	for i := 1; i <= rounds; i++ {
		c.round(i)
	}

	// The end: a clean stop takes every replica down, and the chain left on
	// disk verifies once more.
	st := c.status()
	c.s.stop(t)
	c.s = nil
	if procs := replicaProcesses(t, data); len(procs) != 0 {
		t.Errorf("after socle stopped, replica processes still run: %v", procs)
	}
	c.verifyAuditOnDisk("the end")
	for _, env := range crashEnvs {
		if u, ok := unit(st, "web", env); ok {
			t.Logf("web @ %-7s %s release %d %s (%s)", env, u.Phase, u.Release, short7(u.Revision), short12(u.Artifact))
		}
	}
	t.Logf("%d rounds in %s; actions %v; %d releases recorded, %d audit records", rounds, time.Since(began).Round(time.Millisecond), c.tally, len(c.seen), c.audited.LastSeq)
}

// crashRun is the state of the crash test across rounds.
type crashRun struct {
	t          *testing.T
	repo, data string
	rng        *rand.Rand
	s          *socle // nil while socle is down

	mu   sync.Mutex
	seen map[int64]store.Release // every release ever observed, as last observed
	// progressing notes what observe saw go wrong: a unit with two
	// Progressing releases at once, a release whose end changed.
	progressing []string

	killedLog string // the log of the socle killed last

	audited audit.VerifyResult // the last verification: the chain may only grow from it
	tally   map[string]int
	commits int
}

// How a round times its kill.
const (
	killOnTimer   = iota // a random delay after the action starts
	killOnRollout        // a random delay after the action's rollout begins
	killOnReturn         // a random delay after the action's HTTP call returns
)

// A crashAction is one operator action that a round starts and kills
// socle during.
type crashAction struct {
	name string
	env  string // the unit it rolls out
	// maxDelay bounds the random delay of a kill on a timer.
	maxDelay time.Duration
	// run runs in a goroutine and says how it ended; an error is a fault
	// of the test's own part of the action (a git commit).
	run func(api string) (string, error)
}

func (c *crashRun) round(i int) {
	t := c.t
	st := c.status()
	a := c.pick(st)
	if c.tally == nil {
		c.tally = map[string]int{}
	}
	c.tally[a.name]++
	before := c.releases()
	lastID := int64(0)
	for _, r := range before[a.env] {
		lastID = max(lastID, r.ID)
	}

	// How the kill is timed: after a random delay from the start of the
	// action; a random moment after the action's rollout has begun; or just
	// after the action's HTTP call returned, when socle has committed a
	// promotion and is recording and reconciling it.
	mode := c.rng.IntN(3)
	var delay time.Duration
	switch mode {
	case killOnTimer:
		delay = time.Duration(c.rng.Int64N(int64(a.maxDelay)))
	case killOnRollout:
		delay = time.Duration(c.rng.Int64N(int64(400 * time.Millisecond)))
	case killOnReturn:
		delay = time.Duration(c.rng.Int64N(int64(60 * time.Millisecond)))
	}

	api := c.s.api
	done := make(chan string, 1)
	stopWatch := c.watch(api)
	began := time.Now()
	go func() {
		out, err := a.run(api)
		if err != nil {
			out = "FAILED: " + err.Error()
		}
		done <- out
	}()
	how := fmt.Sprintf("%s after the start", delay.Round(time.Millisecond))
	var outcome string
	returned := false
	switch mode {
	case killOnRollout:
		if c.waitRollout(api, a.env, lastID, 15*time.Second) {
			how = fmt.Sprintf("%s after %s's rollout began at +%s", delay.Round(time.Millisecond), a.env, time.Since(began).Round(time.Millisecond))
		} else {
			how = fmt.Sprintf("%s after no rollout began in %s within 15s", delay.Round(time.Millisecond), a.env)
		}
	case killOnReturn:
		select {
		case outcome = <-done:
			returned = true
			how = fmt.Sprintf("%s after the action returned at +%s", delay.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			how = fmt.Sprintf("%s after the action did not return within 30s", delay.Round(time.Millisecond))
		}
	}
	time.Sleep(delay)
	stopWatch()
	c.observe(api) // what socle has recorded the instant before the kill
	killedAt := time.Since(began)
	inflight := c.newSince(a.env, lastID)
	c.s.kill()
	c.killedLog = c.s.log.String()
	c.s = nil
	if !returned {
		select {
		case outcome = <-done:
		case <-time.After(30 * time.Second):
			outcome = "the action did not return within 30s of the kill"
			t.Errorf("round %d: %s", i, outcome)
		}
	}
	if strings.HasPrefix(outcome, "FAILED: ") {
		t.Errorf("round %d: %s: %s", i, a.name, outcome)
	}
	phase := "?"
	if u, ok := unit(st, "web", a.env); ok {
		phase = string(u.Phase)
	}
	t.Logf("round %2d: %-15s killed at +%s (%s); in flight: %s; action: %s", i, a.name, killedAt.Round(time.Millisecond), how, inflight, outcome)

	// socle is down: the chain on disk verifies.
	c.verifyAuditOnDisk(fmt.Sprintf("round %d, after the kill", i))

	restarted := time.Now()
	c.s = start(t, c.repo, c.data)
	was := st
	st = c.waitConverged(fmt.Sprintf("round %d", i))
	took := time.Since(restarted)

	// A push interrupted by the kill is finished when socle starts again.
	c.checkRepository(i)
	c.checkReleases(i, st)
	c.checkReplicas(i, st)
	c.checkAdopted(i, was, st)
	c.checkAudit(i)
	after := c.releases()
	t.Logf("round %2d: converged %s after the restart; %s now: %s; releases dev/preprod/prod %d/%d/%d (were %d/%d/%d); %s was %s before",
		i, took.Round(time.Millisecond), a.env, c.newSince(a.env, lastID), len(after["dev"]), len(after["preprod"]), len(after["prod"]),
		len(before["dev"]), len(before["preprod"]), len(before["prod"]), a.env, phase)
}

// newSince describes the releases of env newer than lastID, as last seen.
func (c *crashRun) newSince(env string, lastID int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(c.seen)) {
		r := c.seen[id]
		if r.Env != env || id <= lastID {
			continue
		}
		p := fmt.Sprintf("release %d %s %s", id, r.Trigger, r.Status)
		if !r.FinishedAt.IsZero() {
			p += fmt.Sprintf(" in %s", r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "no new release"
	}
	return strings.Join(parts, ", ")
}

// pick chooses the round's action among those that change something now.
func (c *crashRun) pick(st server.Status) crashAction {
	art := map[string]string{}
	for _, env := range crashEnvs {
		if u, ok := unit(st, "web", env); ok {
			art[env] = u.Artifact
		}
	}
	var choices []crashAction
	add := func(weight int, a crashAction) {
		for range weight {
			choices = append(choices, a)
		}
	}
	add(1, crashAction{name: "commit to dev", env: "dev", maxDelay: 2500 * time.Millisecond, run: c.commitAction})
	if art["dev"] != "" && art["dev"] != art["preprod"] {
		add(2, crashAction{name: "promote preprod", env: "preprod", maxDelay: 1200 * time.Millisecond, run: c.promoteAction("preprod")})
	}
	if art["preprod"] != "" && art["preprod"] != art["prod"] {
		add(2, crashAction{name: "promote prod", env: "prod", maxDelay: 1200 * time.Millisecond, run: c.promoteAction("prod")})
	}
	if c.canRollBack() {
		add(2, crashAction{name: "rollback prod", env: "prod", maxDelay: 1200 * time.Millisecond, run: func(api string) (string, error) {
			return cliOutcome(socleCLI(api, "rollback", "web", "--env", "prod", "--user", "sofia")), nil
		}})
	}
	a := choices[c.rng.IntN(len(choices))]
	if a.env == "prod" && a.name == "promote prod" {
		c.waitSoak()
	}
	return a
}

// commitAction commits a new version of web and tells socle, which builds
// it and rolls it out in dev.
func (c *crashRun) commitAction(api string) (string, error) {
	c.commits++
	note := fmt.Sprintf("crash test version %d", c.commits)
	f, err := os.OpenFile(filepath.Join(c.repo, "apps/web/main.go"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(f, "\n// %s\n", note)
	f.Close()
	// Only main.go: should socle have left the index behind its branch,
	// `commit -a` would silently revert what it committed.
	cmd := exec.Command("git", "-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-q", "-m", "web: "+note, "--", "apps/web/main.go")
	cmd.Dir = c.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git commit: %v: %s", err, out)
	}
	resp, err := apiRequest(http.MethodPost, api+"/api/v1/hooks/git")
	if err != nil {
		return "committed; hook: " + err.Error(), nil
	}
	resp.Body.Close()
	return "committed; hook: " + resp.Status, nil
}

// promoteAction promotes web to env; to prod with an admin's approval
// first, given by lena, who wrote none of web's versions.
func (c *crashRun) promoteAction(env string) func(string) (string, error) {
	return func(api string) (string, error) {
		var parts []string
		if env == "prod" {
			out, code, err := socleCLI(api, "approve", "web", "--env", "prod", "--user", "lena")
			parts = append(parts, "approve: "+cliOutcome(out, code, err))
			if code != 0 || err != nil {
				return strings.Join(parts, "; "), nil
			}
		}
		parts = append(parts, "promote: "+cliOutcome(socleCLI(api, "promote", "web", "--to", env, "--user", "lena")))
		return strings.Join(parts, "; "), nil
	}
}

// waitSoak moves socle's clock until preprod's release has been live for
// prod's soak (recorded on socle's clock). It is called between rounds,
// when socle has converged: nothing rolls out while the clock moves.
func (c *crashRun) waitSoak() {
	for _, r := range c.releases()["preprod"] {
		if r.Status == store.Succeeded {
			if d := r.FinishedAt.Add(promotionSoak + time.Second).Sub(c.s.clock.Now()); d > 0 {
				c.s.clock.advance(c.t, d)
			}
			return
		}
	}
}

// canRollBack reports whether prod has an earlier release that succeeded
// with another target than what runs.
func (c *crashRun) canRollBack() bool {
	rels := c.releases()["prod"] // newest first
	cur := slices.IndexFunc(rels, func(r store.Release) bool { return r.Status == store.Succeeded })
	if cur < 0 {
		return false
	}
	for _, r := range rels[cur+1:] {
		if r.Status == store.Succeeded && (r.Artifact != rels[cur].Artifact || r.Revision != rels[cur].Revision) {
			return true
		}
	}
	return false
}

// watch records the releases socle reports every 50 ms until stopped.
func (c *crashRun) watch(api string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			c.observe(api)
			select {
			case <-quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(quit); <-done }
}

// observe takes note of every release socle reports now; an error (socle
// is going down) is ignored.
func (c *crashRun) observe(api string) {
	for _, env := range crashEnvs {
		rels, err := fetchReleases(api, env)
		if err != nil {
			return
		}
		c.mu.Lock()
		n := 0
		for _, r := range rels {
			if was, ok := c.seen[r.ID]; ok && was.Status.Final() && r.Status != was.Status {
				c.progressing = append(c.progressing, fmt.Sprintf("release %d ended %s, then was %s", r.ID, was.Status, r.Status))
			}
			c.seen[r.ID] = r
			if r.Status == store.Progressing {
				n++
			}
		}
		if n > 1 {
			c.progressing = append(c.progressing, fmt.Sprintf("web @ %s had %d Progressing releases at once: %s", env, n, describe(rels)))
		}
		c.mu.Unlock()
	}
}

// waitRollout waits until env has a release newer than lastID, or its unit
// says Progressing.
func (c *crashRun) waitRollout(base, env string, lastID int64, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if rels, err := fetchReleases(base, env); err == nil && len(rels) > 0 && rels[0].ID > lastID {
			return true
		}
		var st server.Status
		if getJSON(base+"/api/v1/status", &st) == nil {
			if u, ok := unit(st, "web", env); ok && u.Phase == api.PhaseProgressing {
				return true
			}
		}
	}
	return false
}

// gitTarget is what Git says a unit runs: a revision, and for a manual
// environment the artifact releases/<env>.yaml pins; ok is false if Git
// says nothing runs there.
func (c *crashRun) gitTarget(env string) (rev, artifact string, ok bool) {
	if env == "dev" {
		// dev follows the newest commit that changed web; commits that
		// only pin releases leave its desired state as it was.
		return strings.TrimSpace(c.git("log", "-1", "--format=%H", "HEAD", "--", "apps/web")), "", true
	}
	var rel struct {
		Apps map[string]struct{ Revision, Artifact string }
	}
	if err := yaml.Unmarshal([]byte(c.git("show", "HEAD:releases/"+env+".yaml")), &rel); err != nil {
		c.t.Fatalf("releases/%s.yaml: %v", env, err)
	}
	pin, ok := rel.Apps["web"]
	return pin.Revision, pin.Artifact, ok
}

// waitConverged waits until every unit runs, Synced, what Git says, every
// release has ended, and the replica processes are those the status names.
func (c *crashRun) waitConverged(what string) server.Status {
	t := c.t
	head := strings.TrimSpace(c.git("rev-parse", "HEAD"))
	var why string
	for deadline := time.Now().Add(crashConverge); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var st server.Status
		if err := getJSON(c.s.api+"/api/v1/status", &st); err != nil {
			why = err.Error()
			continue
		}
		if why = c.converged(st, head); why == "" {
			return st
		}
	}
	t.Fatalf("%s: socle did not converge within %s after its start: %s\n%s\nthe log of the socle killed before:\n%s\nsocle's log since its restart:\n%s",
		what, crashConverge, why, c.diagnose(), tail(c.killedLog, 15), tail(c.s.log.String(), 40))
	return server.Status{}
}

// diagnose says what socle recorded: the newest revisions, the desired
// state of each unit and the newest audit records.
func (c *crashRun) diagnose() string {
	var b strings.Builder
	var revs struct {
		Items []struct {
			SHA, Message string
			Valid        bool
			SeenAt       time.Time
		}
	}
	if err := getJSON(c.s.api+"/api/v1/revisions?limit=3", &revs); err == nil {
		for _, r := range revs.Items {
			fmt.Fprintf(&b, "recorded revision %s valid=%v seen %s: %s\n", short7(r.SHA), r.Valid, r.SeenAt.Format(time.StampMilli), strings.TrimSpace(r.Message))
		}
	}
	var st server.Status
	if err := getJSON(c.s.api+"/api/v1/status", &st); err == nil {
		for _, u := range st.Units {
			fmt.Fprintf(&b, "desired web @ %s: revision %s artifact %s (updated %s)\n", u.Env, short7(u.Revision), short12(u.Artifact), u.UpdatedAt.Format(time.StampMilli))
		}
		if st.LastPlan != nil {
			fmt.Fprintf(&b, "last plan %d: %+v\n", st.LastPlan.ID, st.LastPlan.Summary)
		}
	}
	var page struct{ Items []audit.Record }
	after := max(c.audited.LastSeq-3, 0)
	if err := getJSON(fmt.Sprintf("%s/api/v1/audit?limit=10&after=%d", c.s.api, after), &page); err == nil {
		for _, r := range page.Items {
			fmt.Fprintf(&b, "audit #%d %s %s %s %s %s\n", r.Seq, r.At.Format(time.StampMilli), r.Actor, r.Action, short7(r.Revision), r.Detail)
		}
	}
	return b.String()
}

// converged says why st is not converged on head, "" if it is.
func (c *crashRun) converged(st server.Status, head string) string {
	if st.Head == nil || st.Head.SHA != head {
		return fmt.Sprintf("socle's head is %v, not %s", st.Head, short7(head))
	}
	if st.LastGood == nil || st.LastGood.SHA != head {
		return fmt.Sprintf("the revision in force is %v, not %s", st.LastGood, short7(head))
	}
	pids := map[int]bool{}
	for _, env := range crashEnvs {
		rev, art, ok := c.gitTarget(env)
		u, has := unit(st, "web", env)
		if !ok {
			if has {
				return fmt.Sprintf("web @ %s runs (%s) but Git pins nothing there", env, u.Phase)
			}
			continue
		}
		switch {
		case !has:
			return fmt.Sprintf("web @ %s is not in the status", env)
		case u.Phase != api.PhaseSynced:
			return fmt.Sprintf("web @ %s is %s: %s", env, u.Phase, u.Message)
		case u.Revision != rev || (art != "" && u.Artifact != art):
			return fmt.Sprintf("web @ %s runs %s (%s); Git says %s (%s)", env, short12(u.Revision), short12(u.Artifact), short12(rev), short12(art))
		case u.Desired < 1 || u.Ready != u.Desired || len(u.Replicas) != u.Desired:
			return fmt.Sprintf("web @ %s: %d of %d replicas ready, %d listed", env, u.Ready, u.Desired, len(u.Replicas))
		}
		rels, err := fetchReleases(c.s.api, env)
		if err != nil {
			return err.Error()
		}
		for _, r := range rels {
			if r.Status == store.Progressing {
				return fmt.Sprintf("web @ %s: release %d is still Progressing", env, r.ID)
			}
		}
		if i := slices.IndexFunc(rels, func(r store.Release) bool { return r.Status == store.Succeeded }); i < 0 || rels[i].ID != u.Release {
			return fmt.Sprintf("web @ %s runs release %d, not its newest that succeeded: %s", env, u.Release, describe(rels))
		}
		for _, r := range u.Replicas {
			if r.Release != "r"+strconv.FormatInt(u.Release, 10) || r.PID == 0 {
				return fmt.Sprintf("web @ %s: replica %s (pid %d) is not of release %d", env, r.Name, r.PID, u.Release)
			}
		}
	}
	for _, u := range st.Runtime {
		for _, r := range u.Replicas {
			pids[r.PID] = true
		}
	}
	procs := replicaProcesses(c.t, c.data)
	if len(procs) != len(pids) || slices.ContainsFunc(procs, func(p int) bool { return !pids[p] }) {
		return fmt.Sprintf("replica processes %v, but the status names %v", procs, slices.Sorted(maps.Keys(pids)))
	}
	return ""
}

// checkReleases: no release seen is lost or changed, none is recorded
// twice, none was seen Progressing beside another.
func (c *crashRun) checkReleases(round int, st server.Status) {
	t := c.t
	now := c.releases()
	byID := map[int64]store.Release{}
	for env, rels := range now {
		for _, r := range rels {
			if r.App != "web" || r.Env != env {
				t.Errorf("round %d: release %d of %s @ %s listed for web @ %s", round, r.ID, r.App, r.Env, env)
			}
			byID[r.ID] = r
		}
	}
	c.mu.Lock()
	for id, was := range c.seen {
		r, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("round %d: release %d (web @ %s, %s, %s) was recorded before the kill and is gone", round, id, was.Env, short12(was.Revision), was.Status)
		case r.Env != was.Env || r.Revision != was.Revision || r.Artifact != was.Artifact || r.ConfigHash != was.ConfigHash || r.Trigger != was.Trigger || !r.StartedAt.Equal(was.StartedAt):
			t.Errorf("round %d: release %d changed: was %+v, is %+v", round, id, was, r)
		case was.Status.Final() && r.Status != was.Status:
			t.Errorf("round %d: release %d ended %s, and is now %s", round, id, was.Status, r.Status)
		}
	}
	for _, p := range c.progressing {
		t.Errorf("round %d: %s", round, p)
	}
	c.progressing = nil
	for id, r := range byID {
		c.seen[id] = r
	}
	c.mu.Unlock()

	for env, rels := range now {
		asc := slices.Clone(rels)
		slices.Reverse(asc)
		var lastOK *store.Release
		for i, r := range asc {
			if r.Status == store.Progressing {
				t.Errorf("round %d: web @ %s: release %d is still Progressing after socle converged", round, env, r.ID)
			}
			if r.Previous != 0 {
				if p, ok := byID[r.Previous]; !ok || p.Env != env || p.ID >= r.ID {
					t.Errorf("round %d: web @ %s: release %d replaces release %d, which is not an earlier release of the unit", round, env, r.ID, r.Previous)
				}
			}
			if i > 0 && sameTarget(asc[i-1], r) && (asc[i-1].Status == store.Superseded || asc[i-1].Status == store.Interrupted) {
				t.Errorf("round %d: web @ %s: the rollout of release %d (%s) was recorded again as release %d (%s)", round, env, asc[i-1].ID, asc[i-1].Status, r.ID, r.Status)
			}
			if r.Status == store.Succeeded {
				if lastOK != nil && sameTarget(*lastOK, r) {
					t.Errorf("round %d: web @ %s: releases %d and %d both deployed %s (%s) one after the other: a duplicate", round, env, lastOK.ID, r.ID, short12(r.Revision), short12(r.Artifact))
				}
				lastOK = &r
			}
		}
	}
}

// checkReplicas: the replicas that run are those the status names, one
// release's per unit.
func (c *crashRun) checkReplicas(round int, st server.Status) {
	named := map[int]string{}
	for _, u := range st.Runtime {
		for _, r := range u.Replicas {
			named[r.PID] = r.Name
		}
	}
	procs := replicaProcesses(c.t, c.data)
	for _, p := range procs {
		if _, ok := named[p]; !ok {
			c.t.Errorf("round %d: replica process %d runs, and the status does not name it: an orphan", round, p)
		}
	}
	for p, name := range named {
		if !slices.Contains(procs, p) {
			c.t.Errorf("round %d: replica %s (pid %d) is in the status but does not run", round, name, p)
		}
	}
}

// checkAdopted: a unit that runs the same release before the action and
// after the restart kept its replica processes: socle adopts what runs
// rather than restart it, so a crash costs the apps nothing.
func (c *crashRun) checkAdopted(round int, before, after server.Status) {
	for _, env := range crashEnvs {
		u0, ok0 := unit(before, "web", env)
		u1, ok1 := unit(after, "web", env)
		if !ok0 || !ok1 || u0.Release == 0 || u0.Release != u1.Release {
			continue
		}
		p0, p1 := pidsOf(u0), pidsOf(u1)
		if !slices.Equal(p0, p1) {
			pick := func(log string) string {
				var out []string
				for _, l := range strings.Split(log, "\n") {
					if strings.Contains(l, "env="+env+" ") && (strings.Contains(l, "replica stopped") || strings.Contains(l, "replica started") || strings.Contains(l, "replica adopted")) ||
						strings.Contains(l, "route=web."+env+" ") && strings.Contains(l, "route changed") || strings.Contains(l, "revision planned") || strings.Contains(l, "new revision") {
						out = append(out, "  "+l)
					}
				}
				return strings.Join(out, "\n")
			}
			c.t.Errorf("round %d: web @ %s ran release %d before and after the restart, but its replicas were restarted (pids %v, now %v)\nthe log of the socle killed:\n%s\nthe log of the socle restarted:\n%s",
				round, env, u1.Release, p0, p1, pick(c.killedLog), pick(c.s.log.String()))
		}
	}
}

func pidsOf(u api.UnitStatus) []int {
	var out []int
	for _, r := range u.Replicas {
		out = append(out, r.PID)
	}
	slices.Sort(out)
	return out
}

// checkAudit verifies the chain through the API, checks that it extends
// the last one verified, and that every release and every promotion or
// rollback commit is in it once.
func (c *crashRun) checkAudit(round int) {
	t := c.t
	out, code, err := socleCLI(c.s.api, "audit", "verify", "-o", "json")
	var res audit.VerifyResult
	if err != nil || code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Errorf("round %d: audit verify through the API: exit %d %v\n%s", round, code, err, out)
		return
	}
	c.extends(fmt.Sprintf("round %d, through the API", round), res)

	var recs []audit.Record
	for after := int64(0); ; {
		var page struct{ Items []audit.Record }
		if err := getJSON(fmt.Sprintf("%s/api/v1/audit?limit=1000&after=%d", c.s.api, after), &page); err != nil {
			t.Errorf("round %d: reading the audit trail: %v", round, err)
			return
		}
		if len(page.Items) == 0 {
			break
		}
		recs = append(recs, page.Items...)
		after = page.Items[len(page.Items)-1].Seq
	}
	begins, ends := map[int64]int{}, map[int64][]string{}
	commits := map[string]int{}
	for _, r := range recs {
		var d map[string]any
		json.Unmarshal(r.Detail, &d)
		id, _ := d["release"].(float64)
		switch {
		case r.Action == "release.begin":
			begins[int64(id)]++
		case strings.HasPrefix(r.Action, "release."):
			ends[int64(id)] = append(ends[int64(id)], r.Action)
		case r.Action == "promote" || r.Action == "rollback":
			if sha, _ := d["commit"].(string); sha != "" {
				commits[sha]++
			}
		}
	}
	c.mu.Lock()
	ids := slices.Sorted(maps.Keys(c.seen))
	rels := c.seen
	c.mu.Unlock()
	for _, id := range ids {
		r := rels[id]
		if begins[id] != 1 {
			t.Errorf("round %d: release %d (web @ %s) has %d release.begin audit records, want 1", round, id, r.Env, begins[id])
		}
		want := 1
		if r.Status == store.Superseded || r.Status == store.Progressing {
			want = 0 // recorded by the release.begin of the one that superseded it
		}
		if len(ends[id]) != want || (want == 1 && ends[id][0] != "release."+strings.ToLower(string(r.Status))) {
			t.Errorf("round %d: release %d (web @ %s) ended %s; its audit records of the end: %v", round, id, r.Env, r.Status, ends[id])
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(c.git("log", "--format=%H %an %s", "HEAD", "--", "releases/")), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) == 3 && (strings.HasPrefix(f[2], "promote ") || strings.HasPrefix(f[2], "roll back ")) && commits[f[0]] != 1 {
			t.Errorf("round %d: commit %s (%s by %s) has %d promote/rollback audit records, want 1", round, short7(f[0]), f[2], f[1], commits[f[0]])
		}
	}
}

// verifyAuditOnDisk runs socle audit verify --data on the data directory
// while socle is down.
func (c *crashRun) verifyAuditOnDisk(when string) {
	cmd := exec.Command(socleBin, "audit", "verify", "--data", c.data, "-o", "json")
	out, err := cmd.CombinedOutput()
	var res audit.VerifyResult
	if err != nil || json.Unmarshal(out, &res) != nil {
		c.t.Errorf("%s: socle audit verify --data: %v\n%s", when, err, out)
		return
	}
	c.extends(when+", on disk", res)
}

// extends checks that a verified chain ends at or after the last one, with
// the same record where the last one ended: records removed from the end of
// a chain leave no trace in it.
func (c *crashRun) extends(when string, res audit.VerifyResult) {
	if !res.OK() {
		c.t.Errorf("%s: the audit chain does not verify: record %d was %s: %s", when, res.Problem.Seq, res.Problem.Kind, res.Problem.Message)
		return
	}
	prev := c.audited
	c.audited = res
	if res.LastSeq < prev.LastSeq {
		c.t.Errorf("%s: the audit chain ends at record %d; it ended at %d before", when, res.LastSeq, prev.LastSeq)
		return
	}
	if prev.LastSeq == 0 || c.s == nil {
		return
	}
	var page struct{ Items []audit.Record }
	if err := getJSON(fmt.Sprintf("%s/api/v1/audit?limit=1&after=%d", c.s.api, prev.LastSeq-1), &page); err != nil || len(page.Items) != 1 {
		c.t.Errorf("%s: reading audit record %d: %v", when, prev.LastSeq, err)
	} else if page.Items[0].Hash != prev.LastHash {
		c.t.Errorf("%s: audit record %d has hash %s; it had %s", when, prev.LastSeq, page.Items[0].Hash, prev.LastHash)
	}
}

// checkRepository: socle, killed and started again, left the platform
// repository usable: no lock of git's behind, the working tree and index as
// the branch says.
func (c *crashRun) checkRepository(round int) {
	t := c.t
	locks, _ := filepath.Glob(filepath.Join(c.repo, ".git", "*.lock"))
	heads, _ := filepath.Glob(filepath.Join(c.repo, ".git", "refs", "heads", "*.lock"))
	for _, l := range append(locks, heads...) {
		t.Errorf("round %d: socle's kill left %s behind: git and socle's next commit fail on it", round, l)
		os.Remove(l) // so that the rounds after this one still say something
	}
	if st := strings.TrimSpace(c.git("status", "--porcelain")); st != "" {
		t.Errorf("round %d: after the kill the working tree of the platform repository differs from its branch:\n%s", round, st)
		c.git("checkout", "-f", "HEAD") // as a person would, so that later rounds still say something
	}
}

func (c *crashRun) status() server.Status {
	var st server.Status
	if err := getJSON(c.s.api+"/api/v1/status", &st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

// releases returns web's releases by environment, newest first.
func (c *crashRun) releases() map[string][]store.Release {
	out := map[string][]store.Release{}
	for _, env := range crashEnvs {
		rels, err := fetchReleases(c.s.api, env)
		if err != nil {
			c.t.Fatal(err)
		}
		out[env] = rels
	}
	return out
}

func (c *crashRun) git(args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = c.repo
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// cleanup kills what a failed run leaves: socle, then the replicas it
// started for this data directory, with their process groups.
func (c *crashRun) cleanup() {
	if c.s != nil {
		c.s.kill()
		c.s = nil
	}
	for _, pid := range replicaProcesses(c.t, c.data) {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// socleCLI runs the CLI against api; unlike socle.cli it may run in a
// goroutine, and says what went wrong rather than failing the test.
func socleCLI(api string, args ...string) (string, int, error) {
	args, err := withUser(api, args)
	if err != nil {
		return "", 0, err
	}
	cmd := exec.Command(socleBin, args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), nil
	}
	return string(out), 0, err
}

func cliOutcome(out string, code int, err error) string {
	if err != nil {
		return err.Error()
	}
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return fmt.Sprintf("exit %d %q", code, first)
}

func getJSON(url string, v any) error {
	resp, err := apiRequest(http.MethodGet, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// fetchReleases returns web's releases in env, newest first.
func fetchReleases(api, env string) ([]store.Release, error) {
	var out struct{ Items []store.Release }
	if err := getJSON(api+"/api/v1/apps/web/envs/"+env+"/releases?limit=1000", &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

func sameTarget(a, b store.Release) bool {
	return a.Revision == b.Revision && a.Artifact == b.Artifact && a.ConfigHash == b.ConfigHash
}

func describe(rels []store.Release) string {
	parts := make([]string, len(rels))
	for i, r := range rels {
		parts[i] = fmt.Sprintf("%d %s %s/%s %s", r.ID, r.Status, short7(r.Revision), short12(r.Artifact), r.Trigger)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func short12(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func short7(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}
