// Command loadplan measures socle's foundation at scale: it generates a
// platform repository with N apps × 3 environments, then times loading,
// validating and planning it, and prints the peak resident memory.
//
//	go run ./bench/loadplan [-apps 10000] [-runs 5] [-dir DIR]
//
// Each run reports its wall time and its CPU time (user + system, all
// threads): on a shared machine the wall time moves with whatever else runs,
// the CPU time much less. The figures are meant at default GC settings; when
// GOGC or GOMEMLIMIT is set, the program says so.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/socle-dev/socle/bench/internal/peak"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

func main() {
	apps := flag.Int("apps", 10000, "number of apps")
	runs := flag.Int("runs", 5, "timed runs (the median is reported)")
	dir := flag.String("dir", "", "where to generate the repository (default: a temporary directory)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs")
	memprofile := flag.String("memprofile", "", "write a heap profile after the last run")
	live := flag.Bool("live", false, "after each run, collect garbage and print the live heap (outside the timings, but it changes the GC's pacing: not for the reported figures)")
	flag.Parse()
	root := *dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "socle-loadplan-"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(root)
	}
	t0 := time.Now()
	files, err := generate(root, *apps)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("generated %d apps × 3 environments (%d files) in %s\n", *apps, files, time.Since(t0).Round(time.Millisecond))
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s/%s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Printf("GC: %s\n", gcSettings())

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
	var loads, plans, totals, cpus []time.Duration
	var units, changes int
	var applied []plan.Unit
	for i := range *runs {
		c := cpuTime()
		t := time.Now()
		repo, problems := spec.Load(os.DirFS(root))
		if err := problems.Err(); err != nil {
			log.Fatal(err)
		}
		tl := time.Since(t)
		desired := plan.Desired(repo, "HEAD", nil)
		p := plan.Diff("HEAD", desired, applied)
		tp := time.Since(t) - tl
		tc := cpuTime() - c
		loads, plans, totals, cpus = append(loads, tl), append(plans, tp), append(totals, time.Since(t)), append(cpus, tc)
		units, changes = len(desired), p.Summary.Create+p.Summary.Update+p.Summary.Delete
		fmt.Printf("run %d: load+validate %s, plan %s, CPU %s (%d units, %d changes)\n", i+1, tl.Round(time.Millisecond), tp.Round(time.Millisecond), tc.Round(time.Millisecond), units, changes)
		applied = desired // later runs plan against the state the first one "applied"
		if *live {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("  live heap after the run (the applied units and what they hold): %d MB\n", ms.HeapAlloc>>20)
		}
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			log.Fatal(err)
		}
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			log.Fatal(err)
		}
		f.Close()
		runtime.KeepAlive(applied) // so that the profile's in-use figures show the last run's units
	}
	fmt.Printf("\nmedian load+validate+plan: %s (load+validate %s, plan %s) for %d units\n", median(totals), median(loads), median(plans), units)
	fmt.Printf("median CPU time (user+system) of a run: %s\n", median(cpus))
	fmt.Printf("peak memory (VmHWM): %s\n", peak.String())
	fmt.Printf("goal: under 2s and 300 MB\n")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

// gcSettings says whether the GC runs at its defaults.
func gcSettings() string {
	var set []string
	for _, v := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if s, ok := os.LookupEnv(v); ok {
			set = append(set, v+"="+s)
		}
	}
	if len(set) == 0 {
		return "default settings (GOGC, GOMEMLIMIT unset)"
	}
	return strings.Join(set, " ") + " (not the defaults: report the figures of a run without them)"
}

func generate(root string, n int) (int, error) {
	files := 0
	write := func(rel, data string) error {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		files++
		return os.WriteFile(p, []byte(data), 0o644)
	}
	teams := []string{"bookings", "guest-experience", "payments", "search", "loyalty", "platform", "data", "mobile"}
	var b strings.Builder
	b.WriteString("apiVersion: socle.dev/v1\nkind: Teams\nteams:\n")
	for i, t := range teams {
		fmt.Fprintf(&b, "  - name: %s\n    members:\n      - {user: dev%d, role: developer}\n      - {user: lead%d, role: approver}\n", t, i, i)
	}
	if err := write("teams.yaml", b.String()); err != nil {
		return files, err
	}
	if err := write("socle.yaml", `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: bench}
zones:
  - {name: nonprod, kind: application}
  - {name: prod, kind: application}
environments:
  - {name: dev, zone: nonprod, runtime: {type: local}, sync: auto}
  - {name: preprod, zone: nonprod, runtime: {type: local}, sync: auto}
  - name: prod
    zone: prod
    runtime: {type: local}
    sync: manual
    promotion: {from: preprod, soak: 1h, approvals: 1, windows: ["Mon-Thu 09:00-17:00 Europe/Paris"]}
`); err != nil {
		return files, err
	}
	var pins strings.Builder
	pins.WriteString("apiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n")
	for i := range n {
		name := fmt.Sprintf("app-%05d", i)
		score := fmt.Sprintf(`apiVersion: score.dev/v1b1
metadata:
  name: %s
containers:
  main:
    image: .
    variables:
      LOG_LEVEL: info
      DB_HOST: ${resources.db.host}
    resources:
      limits: {cpu: 500m, memory: 256Mi}
    readinessProbe:
      httpGet: {path: /readyz, port: 8080}
service:
  ports:
    http: {port: 80, targetPort: 8080}
resources:
  db:
    type: postgres
`, name)
		conf := fmt.Sprintf(`apiVersion: socle.dev/v1
kind: App
owner: %s
build:
  command: go build -o "$SOCLE_OUT/app" .
rollout:
  strategy: canary
  steps: [{weight: 10, pause: 1m}, {weight: 50, pause: 1m}]
  analysis: {maxErrorRate: 0.01, maxP95: 300ms}
replicas: {min: 2, max: 6}
environments:
  dev: {replicas: {min: 1, max: 2}, variables: {LOG_LEVEL: debug}}
  prod: {replicas: {min: 3, max: 12}}
`, teams[i%len(teams)])
		if err := write("apps/"+name+"/score.yaml", score); err != nil {
			return files, err
		}
		if err := write("apps/"+name+"/socle.yaml", conf); err != nil {
			return files, err
		}
		if err := write("apps/"+name+"/main.go", "package main\n\nfunc main() { println(\""+name+"\") }\n"); err != nil {
			return files, err
		}
		fmt.Fprintf(&pins, "  %s: {revision: \"%07x\", artifact: \"sha256:%064x\"}\n", name, i+0x1000000, i)
	}
	return files, write("releases/prod.yaml", pins.String())
}
