// Command commitlive measures how long a commit takes to go live in an
// auto-syncing dev environment after the git webhook: the latency the third
// bench of issue 5 asks for. Goal: under 2 s p50 when the artifact is
// already built (Argo CD polls every 3 minutes by default).
//
// It builds socle into a temporary directory, makes a one-app platform
// repository (the demo's web app in an auto-sync dev environment, with the
// chosen rollout strategy and replica count), starts `socle up` on it with
// the poll interval at an hour (so only the webhook triggers a fetch), waits
// for the first version to serve, then measures series of commits. For each
// commit:
//
//	t0      the commit exists; the webhook POST is sent at once
//	live    the first request through socle's proxy (Host web.dev.localhost,
//	        one request every -every) answered by the new version
//	synced  the first time GET /api/v1/status (every 10 ms) says web @ dev is
//	        Synced at the commit's revision
//
// and, from socle's log (debug level; each line stamped when it reaches the
// bench, which is when socle writes it), the stages between t0 and synced.
//
// The series:
//
//   - "already built": main.go alternates between two contents A and B that
//     were each built once during the warm-up. socle keys images by the app's
//     source hash (every file under apps/web/), so each commit is a new
//     revision and a new release whose image is found in the build cache:
//     no build command runs. The web app embeds the revision it was built
//     from, so the new release answers "(version <sha of the commit that
//     first built A or B>)".
//   - "with a build": main.go gets content never seen before, so socle runs
//     the build command (go build, with the machine's warm Go cache) and the
//     new release answers with the new commit's sha.
//   - "variable change" (-config N, default 5; 0 skips it): a new GREETING
//     value in environments.dev.variables of apps/web/socle.yaml. That file
//     is under apps/web/, so it changes the source hash: socle builds again
//     (the same source, a new link with the new revision stamped in). The
//     series shows what a config-only change costs today.
//
// Run from the module root:
//
//	go run ./bench/commitlive [-n 20] [-strategy rolling] [-replicas 1] [-config 5]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socle-dev/socle/bench/internal/build"
	"github.com/socle-dev/socle/internal/source"
)

const goal = 2 * time.Second

var (
	n         = flag.Int("n", 20, "commits per series")
	nConfig   = flag.Int("config", 5, "commits of the variable-change series (0: skip it)")
	strategy  = flag.String("strategy", "rolling", "rollout strategy of web in dev: rolling or blueGreen")
	replicas  = flag.Int("replicas", 1, "replicas of web in dev (min = max)")
	every     = flag.Duration("every", 2*time.Millisecond, "pause between two requests of the traffic probe")
	timeout   = flag.Duration("timeout", 90*time.Second, "longest wait for one commit to be live and synced")
	keep      = flag.Bool("keep", false, "keep the temporary directory (repository, data, socle's log)")
	timelines = flag.Bool("timeline", true, "print socle's log around the median commit of each series")
	verbose   = flag.Bool("v", false, "print every commit's figures")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *n < 1 || *replicas < 1 || (*strategy != "rolling" && *strategy != "blueGreen") {
		log.Fatal("commitlive: -n and -replicas must be ≥ 1, -strategy rolling or blueGreen")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{}
	err := b.run(ctx)
	b.cleanup(err != nil)
	if err != nil {
		log.Fatalf("commitlive: %v", err)
	}
}

type bench struct {
	root   string // module root
	tmp    string
	bin    string
	repo   string
	data   string
	socle  *socle
	client *http.Client
	base   []byte // the demo's main.go
	start  time.Time
}

func (b *bench) cleanup(failed bool) {
	if b.socle != nil {
		b.socle.stop()
	}
	if b.tmp == "" {
		return
	}
	if *keep || failed {
		fmt.Printf("\nkept %s (socle's log: %s)\n", b.tmp, filepath.Join(b.tmp, "socle.log"))
		return
	}
	os.RemoveAll(b.tmp)
}

func (b *bench) run(ctx context.Context) error {
	b.start = time.Now()
	var err error
	if b.root, err = build.ModuleRoot(ctx, "commitlive"); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "commitlive-"); err != nil {
		return err
	}
	b.bin = filepath.Join(b.tmp, "socle")
	b.repo = filepath.Join(b.tmp, "repo")
	b.data = filepath.Join(b.tmp, "data")

	fmt.Println("commitlive: commit → live latency in dev after the git webhook")
	printMachine()
	fmt.Printf("setup        web in dev: strategy %s, %d replica(s), auto-sync; socle up --poll 1h --log-level debug; traffic probe every %s, status every 10ms\n",
		*strategy, *replicas, *every)
	fmt.Printf("goal         p50 < %s when already built (Argo CD polls every 3 minutes by default)\n\n", goal)

	t := time.Now()
	if err := build.Socle(ctx, b.root, b.bin); err != nil {
		return err
	}
	fmt.Printf("built socle in %s\n", time.Since(t).Round(time.Millisecond))

	if err := b.platform(ctx); err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	b.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}

	t = time.Now()
	if b.socle, err = startSocle(ctx, b.bin, b.repo, b.data, filepath.Join(b.tmp, "socle.log")); err != nil {
		return err
	}
	// The API wants a token: the bench reads with ann's, the developer of
	// its platform.
	tok, err := exec.CommandContext(ctx, b.bin, "token", "create", "--user", "ann", "--data", b.data).Output()
	if err != nil {
		return fmt.Errorf("making ann's token: %w", err)
	}
	b.client.Transport = bearer{token: strings.TrimSpace(string(tok)), next: tr}
	first, err := b.head()
	if err != nil {
		return err
	}
	if err := b.waitFirst(ctx, first); err != nil {
		return err
	}
	fmt.Printf("socle up; first version %s built and live after %s\n", first[:7], time.Since(t).Round(time.Millisecond))

	// Warm-up: build A and B once each; the already-built series goes back
	// and forth between them.
	variant := func(name string) []byte {
		return append(slices.Clone(b.base), []byte("\n// commitlive variant "+name+"\n")...)
	}
	shaOf := map[string]string{}
	for _, v := range []string{"A", "B"} {
		c := change{what: "main.go = variant " + v + " (first time: built)", file: "apps/web/main.go", content: variant(v)}
		c.expect = func(sha string) func(answer) bool { return func(a answer) bool { return a.version == sha } }
		r, err := b.measure(ctx, c)
		if err != nil {
			return err
		}
		shaOf[v] = r.sha
		fmt.Printf("warm-up      variant %s at %s: live %s, synced %s, built %v\n", v, r.sha[:7], ms(r.live), ms(r.synced), r.built)
	}
	fmt.Println()

	var series []*result
	s1 := &result{name: "already built",
		means: "main.go alternates between variants A and B, each built once in the warm-up: every commit is a new revision and release whose image is reused from the build cache (keyed by the app's source hash); no build command runs"}
	for i := range *n {
		v := []string{"A", "B"}[i%2]
		want := shaOf[v]
		c := change{what: "main.go = variant " + v, file: "apps/web/main.go", content: variant(v),
			expect: func(string) func(answer) bool { return func(a answer) bool { return a.version == want } }}
		r, err := b.measure(ctx, c)
		if err != nil {
			return fmt.Errorf("%s, commit %d: %w", s1.name, i+1, err)
		}
		s1.add(r)
	}
	series = append(series, s1)
	s1.print()
	if err := b.appStart(ctx, s1, s1.runs[len(s1.runs)-1].artifact); err != nil {
		fmt.Printf("  (could not time the app's own start: %v)\n\n", err)
	}

	s2 := &result{name: "with a build",
		means: "main.go gets content never seen before: socle exports the revision, runs the build command (go build with this machine's warm Go cache; the main package is compiled and linked), packs and stores the image, then rolls it out"}
	nonce := make([]byte, 6)
	rand.Read(nonce)
	for i := range *n {
		content := append(slices.Clone(b.base), fmt.Appendf(nil, "\n// commitlive build %d %x\n", i, nonce)...)
		c := change{what: "main.go = new content", file: "apps/web/main.go", content: content,
			expect: func(sha string) func(answer) bool { return func(a answer) bool { return a.version == sha } }}
		r, err := b.measure(ctx, c)
		if err != nil {
			return fmt.Errorf("%s, commit %d: %w", s2.name, i+1, err)
		}
		s2.add(r)
	}
	series = append(series, s2)
	s2.print()

	if *nConfig > 0 {
		s3 := &result{name: "variable change",
			means: "a new GREETING in environments.dev.variables of apps/web/socle.yaml: the file is under apps/web/, so the source hash changes and socle runs the build again (same code, new link) before rolling out"}
		conf, err := os.ReadFile(filepath.Join(b.repo, "apps/web/socle.yaml"))
		if err != nil {
			return err
		}
		for i := range *nConfig {
			greeting := fmt.Sprintf("commitlive %d %x", i+1, nonce)
			content := strings.Replace(string(conf), `GREETING: "commitlive 0"`, fmt.Sprintf("GREETING: %q", greeting), 1)
			c := change{what: "GREETING = " + greeting, file: "apps/web/socle.yaml", content: []byte(content),
				expect: func(string) func(answer) bool { return func(a answer) bool { return a.greeting == greeting } }}
			r, err := b.measure(ctx, c)
			if err != nil {
				return fmt.Errorf("%s, commit %d: %w", s3.name, i+1, err)
			}
			s3.add(r)
		}
		series = append(series, s3)
		s3.print()
	}

	fmt.Println("summary (live = first answer of the new version through the proxy; synced = status Synced at the revision)")
	fmt.Printf("  %-16s %8s %8s %8s %8s   %8s %8s\n", "series", "live p50", "p95", "min", "max", "sync p50", "p95")
	for _, s := range series {
		l, y := stats(s.lives()), stats(s.synceds())
		fmt.Printf("  %-16s %8s %8s %8s %8s   %8s %8s\n", s.name, ms(l.p50), ms(l.p95), ms(l.min), ms(l.max), ms(y.p50), ms(y.p95))
	}
	l := stats(s1.lives())
	verdict := "MET"
	if l.p50 >= goal {
		verdict = "NOT MET"
	}
	fmt.Printf("goal: p50 live when already built < %s: %s (%s)\n", goal, verdict, ms(l.p50))
	fmt.Printf("bench ran %s\n", time.Since(b.start).Round(time.Second))
	return nil
}

// platform writes the one-app platform repository and makes it a git
// repository with source.Init.
func (b *bench) platform(ctx context.Context) error {
	src := filepath.Join(b.tmp, "src")
	write := func(p string, data []byte) error {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(src, p), data, 0o644)
	}
	files := map[string]string{
		"socle.yaml": `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: commitlive}
environments:
  - {name: dev, runtime: {type: local}, sync: auto}
`,
		"teams.yaml": "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: web\n    members: [{user: ann, role: developer}]\n",
		"apps/web/socle.yaml": fmt.Sprintf(`apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -ldflags "-X main.version=$SOCLE_REVISION" -o "$SOCLE_OUT/web" .
rollout:
  strategy: %s
replicas: {min: %d, max: %d}
environments:
  dev:
    variables:
      GREETING: "commitlive 0"
`, *strategy, *replicas, *replicas),
	}
	for p, data := range files {
		if err := write(p, []byte(data)); err != nil {
			return err
		}
	}
	demo := filepath.Join(b.root, "examples/platform/apps/web")
	for _, f := range []string{"main.go", "go.mod", "score.yaml"} {
		data, err := os.ReadFile(filepath.Join(demo, f))
		if err != nil {
			return err
		}
		if f == "main.go" {
			b.base = data
		}
		if err := write("apps/web/"+f, data); err != nil {
			return err
		}
	}
	_, err := source.Init(ctx, src, b.repo, "Ann", "ann@example.com", "web: first version")
	return err
}

func (b *bench) git(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "user.name=Bob", "-c", "user.email=bob@example.com"}, args...)...)
	cmd.Dir = b.repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (b *bench) head() (string, error) { return b.git("rev-parse", "HEAD") }

// answer is what web answered through the proxy.
type answer struct {
	status   int
	greeting string
	version  string
}

var answerRe = regexp.MustCompile(`^(.*) \(version ([^)]*)\)\s*$`)

func (b *bench) ask(ctx context.Context) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+b.socle.proxyPort+"/", nil)
	if err != nil {
		return answer{}, err
	}
	req.Host = "web.dev.localhost"
	resp, err := b.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if m := answerRe.FindSubmatch(body); m != nil {
		a.greeting, a.version = string(m[1]), string(m[2])
	}
	return a, err
}

// bearer sends its token with every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// unitStatus is the part of an /api/v1/status runtime entry the bench reads.
type unitStatus struct {
	App      string `json:"app"`
	Env      string `json:"env"`
	Phase    string `json:"phase"`
	Message  string `json:"message"`
	Revision string `json:"revision"`
	Artifact string `json:"artifact"`
	Ready    int    `json:"ready"`
	Desired  int    `json:"desired"`
}

func (b *bench) status(ctx context.Context) (unitStatus, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.socle.api+"/api/v1/status", nil)
	resp, err := b.client.Do(req)
	if err != nil {
		return unitStatus{}, err
	}
	defer resp.Body.Close()
	var st struct {
		Runtime []unitStatus `json:"runtime"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return unitStatus{}, err
	}
	for _, u := range st.Runtime {
		if u.App == "web" && u.Env == "dev" {
			return u, nil
		}
	}
	return unitStatus{}, nil
}

// waitFirst waits until the first revision is Synced and answers.
func (b *bench) waitFirst(ctx context.Context, sha string) error {
	deadline := time.Now().Add(3 * time.Minute)
	var last unitStatus
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		u, err := b.status(ctx)
		if err == nil {
			last = u
		}
		if err == nil && u.Phase == "Synced" && u.Revision == sha {
			if a, err := b.ask(ctx); err == nil && a.version == sha {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the first version did not go live: %+v\nsocle's log:\n%s", last, b.socle.tail(40))
}

// change is one commit of a series.
type change struct {
	what    string
	file    string
	content []byte
	// expect returns, for the commit's sha, whether an answer comes from the
	// new release.
	expect func(sha string) func(answer) bool
}

// run is one measured commit.
type run struct {
	sha           string
	live, synced  time.Duration
	hook          time.Duration // the webhook's answer
	built, reused bool
	stages        map[string]time.Duration // stage name → time since t0 (absent: not seen)
	errors, mixed int                      // failed answers; old answers after the first new one
	answers       int
	lines         []logLine // socle's log from t0 to synced
	artifact      string
	t0            time.Time
}

// measure commits c, sends the webhook and waits until the new version
// answers through the proxy and the status says Synced at the revision.
func (b *bench) measure(ctx context.Context, c change) (*run, error) {
	if err := os.WriteFile(filepath.Join(b.repo, c.file), c.content, 0o644); err != nil {
		return nil, err
	}
	if _, err := b.git("commit", "-qam", "commitlive: "+c.what); err != nil {
		return nil, err
	}
	sha, err := b.head()
	if err != nil {
		return nil, err
	}
	isNew := c.expect(sha)
	r := &run{sha: sha, stages: map[string]time.Duration{}}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	mark := b.socle.mark()
	r.t0 = time.Now()
	resp, err := b.client.Post(b.socle.api+"/api/v1/hooks/git", "application/json", nil)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	resp.Body.Close()
	r.hook = time.Since(r.t0)
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("webhook answered %s", resp.Status)
	}

	// Status, every 10 ms, on its own goroutine.
	var (
		mu     sync.Mutex
		synced time.Time
		last   unitStatus
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			u, err := b.status(ctx)
			now := time.Now()
			if err == nil {
				mu.Lock()
				last = u
				mu.Unlock()
				if u.Phase == "Synced" && u.Revision == sha {
					mu.Lock()
					synced = now
					r.artifact = u.Artifact
					mu.Unlock()
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	// Traffic, every few ms, here.
	var live time.Time
	for {
		a, err := b.ask(ctx)
		now := time.Now()
		if ctx.Err() != nil {
			break
		}
		r.answers++
		switch {
		case err != nil || a.status != http.StatusOK || a.version == "":
			r.errors++
		case isNew(a):
			if live.IsZero() {
				live = now
			}
		case !live.IsZero():
			r.mixed++
		}
		mu.Lock()
		s := synced
		mu.Unlock()
		if !live.IsZero() && !s.IsZero() {
			break
		}
		time.Sleep(*every)
	}
	cancel()
	<-done
	if live.IsZero() || synced.IsZero() {
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("%s (%s) not live and synced within %s (live %v, synced %v); last status %+v\nsocle's log:\n%s",
			sha[:7], c.what, *timeout, !live.IsZero(), !synced.IsZero(), last, b.socle.tail(40))
	}
	r.live, r.synced = live.Sub(r.t0), synced.Sub(r.t0)

	// Let the lines written up to synced arrive, then read the stages.
	time.Sleep(20 * time.Millisecond)
	r.lines = b.socle.since(mark)
	b.stages(r, live, synced)
	return r, nil
}

// The stages of a commit, in order, as socle's log shows them.
var stageNames = []string{
	"webhook answered",
	"fetched (\"new revision\")",
	"planned (\"revision planned\")",
	"image ready (\"built image\" / \"reusing image\")",
	"rollout started",
	"new replica started (\"replica started\")",
	"live by traffic",
	"old replica stopped (\"replica stopped\")",
	"rollout finished",
	"Synced in status",
}

func (b *bench) stages(r *run, live, synced time.Time) {
	set := func(name string, t time.Time) {
		if _, ok := r.stages[name]; !ok && !t.IsZero() {
			r.stages[name] = t.Sub(r.t0)
		}
	}
	set(stageNames[0], r.t0.Add(r.hook))
	set(stageNames[6], live)
	set(stageNames[9], synced)
	short, short12 := r.sha[:7], r.sha[:12]
	var release, relName string
	for _, l := range r.lines {
		kv := logfmt(l.text)
		switch kv["msg"] {
		case "new revision of the platform repository":
			if kv["revision"] == short {
				set(stageNames[1], l.at)
			}
		case "revision planned":
			if kv["revision"] == short {
				set(stageNames[2], l.at)
			}
		// The worker asks for the image on every pass, so "reusing image"
		// shows again after the rollout: only the lookup before it counts.
		case "built image":
			if kv["revision"] == r.sha && release == "" {
				r.built = true
				set(stageNames[3], l.at)
			}
		case "reusing image":
			if kv["revision"] == r.sha && release == "" && !r.built {
				r.reused = true
				set(stageNames[3], l.at)
			}
		case "rollout started":
			if kv["revision"] == short12 && release == "" {
				release, relName = kv["release"], "r"+kv["release"]
				set(stageNames[4], l.at)
			}
		case "replica started":
			if relName != "" && kv["release"] == relName {
				set(stageNames[5], l.at)
			}
		case "replica stopped":
			if relName != "" && kv["release"] != relName && kv["app"] == "web" {
				set(stageNames[7], l.at)
			}
		case "rollout finished":
			if release != "" && kv["release"] == release {
				set(stageNames[8], l.at)
			}
		}
	}
}

// appStart times the web app's own start: the binary of the image digest, as
// socle unpacked it, started directly by the bench with a free PORT, until
// GET /readyz answers 200 (polled every millisecond); ten times.
func (b *bench) appStart(ctx context.Context, s *result, digest string) error {
	bin := filepath.Join(b.data, "rootfs", strings.Replace(digest, ":", "-", 1), "rootfs", "app", "web")
	if _, err := os.Stat(bin); err != nil {
		return err
	}
	client := &http.Client{Timeout: 100 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	var ds []time.Duration
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Dir = filepath.Dir(bin)
		cmd.Env = []string{"PORT=" + port, "GREETING=start"}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		var d time.Duration
		for time.Since(t0) < 5*time.Second {
			resp, err := client.Get("http://127.0.0.1:" + port + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					d = time.Since(t0)
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if d == 0 {
			return errors.New("the app did not answer /readyz within 5s")
		}
		ds = append(ds, d)
	}
	st := stats(ds)
	var steps []time.Duration
	for _, r := range s.runs {
		d, ok := r.stages[stageNames[6]]
		p, pok := r.stages[stageNames[5]]
		if ok && pok {
			steps = append(steps, d-p)
		}
	}
	fmt.Printf("  the app's own start: its binary, started directly by the bench, answers /readyz after %s p50 (%s–%s, 10 starts)\n", ms(st.p50), ms(st.min), ms(st.max))
	if len(steps) > 0 {
		fmt.Printf("  so of the %s p50 from \"replica started\" to live, about %s is the app starting and the rest waits on socle's\n", ms(stats(steps).p50), ms(st.p50))
		fmt.Printf("  readiness probe. From socle's code (internal/runtime/local/replica.go, internal/reconcile/replica.go): the first\n" +
			"  probe runs as the replica starts (no initialDelay), before the app listens, and fails; the next runs one probe\n" +
			"  period (500ms) later; the rollout polls readiness every 25ms, then the proxy checks the new backend once and\n" +
			"  switches the route.\n")
	}
	fmt.Println()
	return nil
}

// result is a series of runs.
type result struct {
	name, means string
	runs        []*run
}

func (s *result) add(r *run) { s.runs = append(s.runs, r) }

func (s *result) lives() []time.Duration {
	out := make([]time.Duration, len(s.runs))
	for i, r := range s.runs {
		out[i] = r.live
	}
	return out
}

func (s *result) synceds() []time.Duration {
	out := make([]time.Duration, len(s.runs))
	for i, r := range s.runs {
		out[i] = r.synced
	}
	return out
}

func (s *result) print() {
	fmt.Printf("series %q, %d commits\n  what it measures: %s\n", s.name, len(s.runs), s.means)
	l, y := stats(s.lives()), stats(s.synceds())
	fmt.Printf("  %-28s %8s %8s %8s %8s\n", "t0 (commit + webhook) →", "p50", "p95", "min", "max")
	fmt.Printf("  %-28s %8s %8s %8s %8s\n", "live (first new answer)", ms(l.p50), ms(l.p95), ms(l.min), ms(l.max))
	fmt.Printf("  %-28s %8s %8s %8s %8s\n", "synced (status, revision)", ms(y.p50), ms(y.p95), ms(y.min), ms(y.max))
	built, reused, answers, errs, mixed := 0, 0, 0, 0, 0
	for _, r := range s.runs {
		if r.built {
			built++
		}
		if r.reused {
			reused++
		}
		answers += r.answers
		errs += r.errors
		mixed += r.mixed
	}
	fmt.Printf("  builds run: %d of %d commits (\"built image\"), images taken from the build cache: %d (\"reusing image\" before the rollout)\n", built, len(s.runs), reused)
	fmt.Printf("  traffic during the series: %d answers, %d failed, %d from the old version after the first new one\n", answers, errs, mixed)
	fmt.Printf("  stages, each as time since t0 (median over the commits, then min–max), and the median step from the stage before:\n")
	for _, name := range stageNames {
		var ds []time.Duration
		var steps []time.Duration
		for _, r := range s.runs {
			d, ok := r.stages[name]
			if !ok {
				continue
			}
			ds = append(ds, d)
			if p, ok := prevStage(r, name); ok {
				steps = append(steps, d-p)
			}
		}
		if len(ds) == 0 {
			fmt.Printf("    %-50s (not seen)\n", name)
			continue
		}
		st := stats(ds)
		step := ""
		if len(steps) > 0 {
			step = "+" + ms(stats(steps).p50)
		}
		fmt.Printf("    %-50s %8s  (%s–%s)  %9s\n", name, ms(st.p50), ms(st.min), ms(st.max), step)
	}
	if *verbose {
		fmt.Printf("  %-7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "commit", "live", "synced", "fetch", "plan", "image", "start", "spawn", "ready")
		for _, r := range s.runs {
			step := func(name string) string {
				d, ok := r.stages[name]
				p, pok := prevStage(r, name)
				if !ok || !pok {
					return "-"
				}
				return ms(d - p)
			}
			fmt.Printf("  %-7s %7s %7s %7s %7s %7s %7s %7s %7s\n", r.sha[:7], ms(r.live), ms(r.synced),
				step(stageNames[1]), step(stageNames[2]), step(stageNames[3]), step(stageNames[4]), step(stageNames[5]), step(stageNames[6]))
		}
	}
	if *timelines {
		med := s.median()
		fmt.Printf("  socle's log for the median commit %s (live %s, synced %s), times since t0:\n", med.sha[:7], ms(med.live), ms(med.synced))
		fmt.Printf("    %8s  webhook sent\n", ms(0))
		marks := []struct {
			at   time.Duration
			text string
		}{{med.live, "(bench) first answer from the new version"}, {med.synced, "(bench) status: Synced at the revision"}}
		for _, l := range med.lines {
			at := l.at.Sub(med.t0)
			for len(marks) > 0 && marks[0].at <= at {
				fmt.Printf("    %8s  %s\n", ms(marks[0].at), marks[0].text)
				marks = marks[1:]
			}
			if at > med.synced+10*time.Millisecond && len(marks) == 0 {
				break
			}
			fmt.Printf("    %8s  %s\n", ms(at), brief(l.text))
		}
		for _, m := range marks {
			fmt.Printf("    %8s  %s\n", ms(m.at), m.text)
		}
	}
	fmt.Println()
}

// prevStage returns the time of the latest stage of r before name.
func prevStage(r *run, name string) (time.Duration, bool) {
	i := slices.Index(stageNames, name)
	for j := i - 1; j >= 0; j-- {
		if d, ok := r.stages[stageNames[j]]; ok {
			return d, true
		}
	}
	if i == 0 {
		return 0, true
	}
	return 0, false
}

// median returns the run whose live latency is the series' p50.
func (s *result) median() *run {
	rs := slices.Clone(s.runs)
	slices.SortFunc(rs, func(a, b *run) int { return int(a.live - b.live) })
	return rs[rank(0.5, len(rs))]
}

type summary struct{ p50, p95, min, max time.Duration }

// rank is the nearest-rank index of percentile p in n sorted values.
func rank(p float64, n int) int {
	return max(0, int(math.Ceil(p*float64(n)))-1)
}

func stats(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{p50: s[rank(0.5, len(s))], p95: s[rank(0.95, len(s))], min: s[0], max: s[len(s)-1]}
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// brief drops the time and level of a log line, and shortens long values.
func brief(line string) string {
	kv := logfmt(line)
	var b strings.Builder
	b.WriteString(kv["msg"])
	for _, f := range logfmtKeys(line) {
		switch f {
		case "time", "level", "msg", "runtime", "digest", "subject", "branch":
			continue
		}
		v := kv[f]
		if len(v) > 48 {
			v = v[:45] + "…"
		}
		fmt.Fprintf(&b, " %s=%s", f, v)
	}
	return b.String()
}

// logfmt parses a line of slog's text handler.
func logfmt(line string) map[string]string {
	out := map[string]string{}
	for _, kv := range splitLogfmt(line) {
		out[kv[0]] = kv[1]
	}
	return out
}

func logfmtKeys(line string) []string {
	var keys []string
	for _, kv := range splitLogfmt(line) {
		keys = append(keys, kv[0])
	}
	return keys
}

func splitLogfmt(line string) [][2]string {
	var out [][2]string
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			break
		}
		key := line[i : i+eq]
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if uq, err := unquote(line[i:min(j+1, len(line))]); err == nil {
				val = uq
			} else {
				val = line[i+1 : min(j, len(line))]
			}
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			val = line[i : i+j]
			i += j
		}
		out = append(out, [2]string{key, val})
	}
	return out
}

func unquote(s string) (string, error) {
	var v string
	err := json.Unmarshal([]byte(s), &v)
	return v, err
}

// socle is a running `socle up`.
type socle struct {
	cmd       *exec.Cmd
	api       string
	proxyPort string
	done      chan struct{}

	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	at   time.Time
	text string
}

var (
	upLine   = regexp.MustCompile(`socle is up on (http://\S+)`)
	appsLine = regexp.MustCompile(`^  apps +.*\.localhost:(\d+)`)
)

func startSocle(ctx context.Context, bin, repo, data, logPath string) (*socle, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "up", "--repo", repo, "--data", data, "--addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0",
		"--poll", "1h", "--log-level", "debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	s := &socle{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			at := time.Now()
			text := sc.Text()
			s.mu.Lock()
			s.lines = append(s.lines, logLine{at: at, text: text})
			s.mu.Unlock()
			fmt.Fprintln(logFile, text)
		}
		logFile.Close()
	}()
	go func() { cmd.Wait(); close(s.done) }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for s.api == "" || s.proxyPort == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				<-s.done
				return nil, fmt.Errorf("socle up ended before it was up:\n%s", s.tail(30))
			}
			if m := upLine.FindStringSubmatch(l); m != nil {
				s.api = m[1]
			}
			if m := appsLine.FindStringSubmatch(l); m != nil {
				s.proxyPort = m[1]
			}
		case <-deadline:
			s.stop()
			return nil, fmt.Errorf("socle up did not start in 60s:\n%s", s.tail(30))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
	}
	go func() {
		for range lines {
		}
	}()
	return s, nil
}

// mark returns a position in the log; since returns the lines after it.
func (s *socle) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

func (s *socle) since(mark int) []logLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines[mark:])
}

func (s *socle) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.lines[max(0, len(s.lines)-n):] {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// stop ends socle with SIGTERM (it stops its apps) and waits.
func (s *socle) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func printMachine() {
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = " " + strings.TrimSpace(string(data))
	}
	gover := runtime.Version()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		gover = strings.TrimSpace(string(out))
	}
	fmt.Printf("machine      %s, %d logical CPUs, %s/%s%s; %s (socle and the app are built with it)\n",
		cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, kernel, gover)
}
