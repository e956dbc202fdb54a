// Command policyeval measures policy evaluation: 20 policies (socle's 7
// built-ins and 13 CEL policies of the kinds platform teams write) over a
// plan of 10,000 changes, and prints the time per decision (one change
// judged by every policy that selects it) and the machine.
//
//	go run ./bench/policyeval [-changes 10000] [-runs 5] [-cpuprofile FILE] [-memprofile FILE]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing/fstest"
	"time"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/policy"
	"github.com/socle-dev/socle/internal/spec"
)

const goal = 50 * time.Microsecond

func main() {
	n := flag.Int("changes", 10000, "planned changes to judge")
	runs := flag.Int("runs", 5, "timed runs (the median is reported)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the timed runs")
	flag.Parse()
	if *memprofile != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, err := os.Create(*memprofile)
			if err != nil {
				log.Fatal(err)
			}
			defer f.Close()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				log.Fatal(err)
			}
		}()
	}

	fsys := platform()
	repo, problems := spec.Load(fsys)
	if err := problems.Err(); err != nil {
		log.Fatal(err)
	}
	set, problems := policy.Compile(repo, fsys)
	if len(problems) > 0 {
		log.Fatal(problems)
	}
	fmt.Printf("machine: %s, %d CPUs (GOMAXPROCS %d), %s/%s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("%d policies (%d built-in, %d CEL from policies/*.yaml), %d planned changes\n",
		len(set.Policies()), countBuiltins(set), len(set.Policies())-countBuiltins(set), *n)

	p, applied, history := changes(*n)
	ctx := policy.Context{Operation: policy.Plan, Now: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), Author: "dev1", Approvers: []string{"lead1"}, History: history}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var per, perCPU []time.Duration
	var verdicts, denials, warnings int
	for i := range *runs {
		runtime.GC()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		t, c := time.Now(), cpuTime()
		decisions := set.EvaluatePlan(&p, applied, ctx)
		d, dc := time.Since(t), cpuTime()-c
		runtime.ReadMemStats(&ms1)
		verdicts, denials, warnings = 0, 0, 0
		for _, dec := range decisions {
			verdicts += len(dec.Verdicts)
			denials += len(dec.Verdicts.Denials())
			warnings += len(dec.Verdicts.Warnings())
		}
		nd := time.Duration(len(decisions))
		per, perCPU = append(per, d/nd), append(perCPU, dc/nd)
		fmt.Printf("run %d: %s for %d decisions: %s per decision (CPU time %s, GC included), %d allocs per decision\n",
			i+1, d.Round(time.Millisecond), len(decisions), d/nd, dc/nd, (ms1.Mallocs-ms0.Mallocs)/uint64(len(decisions)))
	}
	med, medCPU := median(per), median(perCPU)
	fmt.Printf("\n%d verdicts per run (%.1f per decision): %d deny, %d warn\n", verdicts, float64(verdicts)/float64(*n), denials, warnings)
	fmt.Printf("load average at the end: %s\n", loadAvg())
	fmt.Printf("median per decision: %s elapsed, %s CPU time (goal: under %s) — %s\n", med, medCPU, goal, map[bool]string{true: "met", false: "MISSED"}[min(med, medCPU) < goal])
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuTime is the process's user and system time: on a busy machine it
// measures the work, where elapsed time also measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// platform is a repository with four environments, four teams and the 13
// CEL policies; the apps themselves are generated as plan units.
func platform() fstest.MapFS {
	var teams strings.Builder
	teams.WriteString("apiVersion: socle.dev/v1\nkind: Teams\nteams:\n")
	for i, t := range teamNames {
		fmt.Fprintf(&teams, "  - name: %s\n    members:\n      - {user: dev%d, role: developer}\n      - {user: lead%d, role: approver}\n", t, i, i)
	}
	return fstest.MapFS{
		"teams.yaml": {Data: []byte(teams.String())},
		"socle.yaml": {Data: []byte(`apiVersion: socle.dev/v1
kind: Platform
metadata: {name: bench}
zones:
  - {name: nonprod, kind: application, account: acme-nonprod}
  - {name: prod, kind: application, account: acme-prod}
  - {name: sandbox, kind: sandbox}
environments:
  - {name: dev, zone: nonprod, runtime: {type: local}, sync: auto}
  - {name: preprod, zone: nonprod, runtime: {type: local}, sync: manual, promotion: {from: dev}}
  - {name: prod, zone: prod, runtime: {type: local}, sync: manual, promotion: {from: preprod, soak: 1h}}
  - {name: sandbox, zone: sandbox, runtime: {type: local}, sync: auto}
`)},
		"policies/bench.yaml": {Data: []byte(`apiVersion: socle.dev/v1
kind: Policies
policies:
  - name: two-replicas-in-prod
    severity: warn
    match: {environments: [prod]}
    expression: "size(change.new.service.ports) == 0 || change.new.replicas.min >= 2"
    message: "{{app}} runs one replica in {{env}}"
  - name: liveness-for-services
    severity: warn
    expression: "size(change.new.service.ports) == 0 || change.new.containers.all(n, has(change.new.containers[n].livenessProbe))"
    message: "{{app}} has no liveness probe"
  - name: requests-declared
    severity: warn
    expression: "change.new.containers.all(n, has(change.new.containers[n].resources.requests.memory))"
    message: "{{app}} declares no memory request"
  - name: approved-registries
    severity: deny
    match: {zones: [prod, nonprod]}
    expression: "change.new.containers.all(n, change.new.containers[n].image == '.' || change.new.containers[n].image.startsWith('registry.acme.example/'))"
    message: "{{app}} pulls an image from outside registry.acme.example"
  - name: canary-in-prod
    severity: warn
    match: {environments: [prod]}
    expression: "size(change.new.service.ports) == 0 || change.new.rollout.strategy != 'rolling'"
    message: "{{app}} rolls out to prod without canary or blue-green"
  - name: canary-analysis
    severity: deny
    expression: "change.new.rollout.strategy != 'canary' || (has(change.new.rollout.analysis.maxErrorRate) && change.new.rollout.analysis.maxErrorRate <= 0.05)"
    message: "{{app}}'s canary has no error-rate threshold"
  - name: four-eyes-in-prod
    severity: deny
    match: {environments: [prod]}
    expression: "change.operation != 'promote' || approvers.exists(a, a != author)"
    message: "{{app}}: a promotion to prod needs an approver other than {{author}}"
  - name: soak-in-preprod
    severity: deny
    match: {environments: [prod]}
    expression: "change.action == 'no-op' || history.healthyFor(change.artifact, environment.from) >= duration('1h')"
    message: "{{app}}: {{artifact}} has not soaked an hour in {{from}}"
  - name: no-friday-prod
    severity: warn
    match: {environments: [prod]}
    expression: "change.action == 'no-op' || now.getDayOfWeek('Europe/Paris') != 5"
    message: "{{app}}: no prod changes on Fridays"
  - name: shrink-carefully
    severity: warn
    expression: "!has(change.old) || change.new.replicas.min * 2 >= change.old.replicas.min"
    message: "{{app}} loses more than half its minimum replicas"
  - name: upper-case-variables
    severity: warn
    expression: "change.new.containers.all(n, change.new.containers[n].variables.all(v, v.matches('^[A-Z][A-Z0-9_]*$')))"
    message: "{{app}} has variables that are not UPPER_SNAKE_CASE"
  - name: database-class-in-prod
    severity: deny
    match: {environments: [prod]}
    expression: "change.new.resources.all(r, change.new.resources[r].type != 'postgres' || change.new.resources[r].class in ['ha', 'large'])"
    message: "{{app}}'s database in prod is not highly available"
  - name: owner-approves-prod
    severity: warn
    match: {environments: [prod]}
    expression: "change.operation != 'promote' || approvers.exists(a, a in platform.teams[change.new.team].members)"
    message: "{{app}}: nobody of team {{team}} approved"
`)},
	}
}

var teamNames = []string{"bookings", "guest-experience", "payments", "search"}

var envs = []string{"dev", "preprod", "prod", "sandbox"}
var zones = map[string]string{"dev": "nonprod", "preprod": "nonprod", "prod": "prod", "sandbox": "sandbox"}

// changes builds a plan of n changes over n/4 apps in the four
// environments: creates and updates (with the applied unit), units of one
// to three containers with a dozen variables, some with mutable tags,
// secrets, missing limits or probes, so that every branch is taken.
func changes(n int) (plan.Plan, []plan.Unit, history) {
	p := plan.Plan{}
	var applied []plan.Unit
	h := history{}
	for i := range n {
		env := envs[i%len(envs)]
		u := unit(i/len(envs), env)
		c := plan.Change{Action: plan.Create, App: u.App, Env: env, Desired: u}
		if i%3 != 0 {
			old := *unit(i/len(envs), env)
			old.Replicas.Min++
			old.Artifact = fmt.Sprintf("sha256:%064x", i+1)
			applied = append(applied, old)
			c.Action = plan.Update
			c.Fields = []plan.Field{{Path: "artifact"}, {Path: "replicas.min"}}
		}
		if env == "preprod" && i%5 != 0 {
			h[key{u.App, u.Artifact, "preprod"}] = time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)
		}
		p.Changes = append(p.Changes, c)
	}
	return p, applied, h
}

func unit(app int, env string) *plan.Unit {
	name := fmt.Sprintf("app-%05d", app)
	u := &plan.Unit{
		App: name, Env: env, Team: teamNames[app%len(teamNames)], Zone: zones[env], Source: "sha256:src",
		Artifact: fmt.Sprintf("sha256:%064x", app), Runtime: spec.RuntimeLocal,
		Replicas: spec.Replicas{Min: 1 + app%3, Max: 6},
		Rollout: spec.Rollout{Strategy: spec.StrategyCanary, Steps: []spec.CanaryStep{{Weight: 10}, {Weight: 50}},
			Analysis: &spec.Analysis{MaxErrorRate: ptr(0.01)}},
		Containers: map[string]types.Container{},
		Resources:  types.WorkloadResources{"db": {Type: "postgres", Class: ptr("ha"), Params: map[string]any{"size": "m", "region": "eu-west"}}},
	}
	for c := range 1 + app%3 {
		vars := types.ContainerVariables{"DB_URL": "postgres://${resources.db.username}:${resources.db.password}@${resources.db.host}/app"}
		for v := range 12 {
			vars[fmt.Sprintf("SETTING_%02d", v)] = fmt.Sprintf("value-%d", v)
		}
		if app%17 == 0 {
			vars["API_TOKEN"] = "plain-text"
		}
		image := fmt.Sprintf("registry.acme.example/%s-%d:1.%d", name, c, app)
		if app%13 == 0 {
			image = "registry.acme.example/" + name + ":latest"
		}
		ct := types.Container{Image: image, Variables: vars,
			Resources: &types.ContainerResources{Limits: &types.ResourcesLimits{Cpu: ptr("500m"), Memory: ptr("256Mi")}}}
		if app%11 != 0 {
			ct.ReadinessProbe = &types.ContainerProbe{HttpGet: &types.HttpProbe{Path: "/readyz", Port: 8080}}
			ct.LivenessProbe = &types.ContainerProbe{HttpGet: &types.HttpProbe{Path: "/healthz", Port: 8080}}
		}
		u.Containers[fmt.Sprintf("c%d", c)] = ct
	}
	if app%2 == 0 {
		u.Service = &types.WorkloadService{Ports: types.WorkloadServicePorts{"http": {Port: 80, TargetPort: ptr(8080)}}}
	}
	return u
}

func ptr[T any](v T) *T { return &v }

// history is the release history as a server would hold it after reading
// its store: a map.
type history map[key]time.Time

type key struct{ app, artifact, env string }

func (h history) RanHealthy(app, artifact, env string) (time.Time, bool) {
	t, ok := h[key{app, artifact, env}]
	return t, ok
}

func countBuiltins(s *policy.Set) int {
	n := 0
	for _, p := range s.Policies() {
		if p.Builtin {
			n++
		}
	}
	return n
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}
