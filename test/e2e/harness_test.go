package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/apitest"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/syncbuf"
	"github.com/socle-dev/socle/test/tfprovider/tfprovidertest"
)

var socleBin string

func TestMain(m *testing.M) {
	if os.Getenv(peakEnv) != "" {
		os.Exit(peakChild())
	}
	dir, err := os.MkdirTemp("", "socle-e2e-")
	if err != nil {
		panic(err)
	}
	socleBin = filepath.Join(dir, "socle")
	build := exec.Command("go", "build", "-o", socleBin, "../../cmd/socle")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building socle:", err)
		os.Exit(1)
	}
	apitest.Install()
	code := tfprovidertest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// files are a platform repository's files, by path.
type files map[string]string

// demoApp returns the files of the demo's app from, named as: its main.go,
// go.mod and score.yaml.
func demoApp(t *testing.T, from, as string) files {
	t.Helper()
	out := files{}
	for _, f := range []string{"main.go", "go.mod", "score.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../examples/platform/apps", from, f))
		if err != nil {
			t.Fatal(err)
		}
		out["apps/"+as+"/"+f] = strings.ReplaceAll(string(b), "name: "+from, "name: "+as)
	}
	return out
}

// newRepo writes the files of every set (a later set replaces an earlier
// one's file) into a new platform repository, committed by Ann with
// message, and returns its path.
func newRepo(t *testing.T, message string, sets ...files) string {
	t.Helper()
	src := t.TempDir()
	for _, set := range sets {
		for p, data := range set {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := filepath.Join(t.TempDir(), "repo")
	if _, err := source.Init(context.Background(), src, dst, "Ann", "ann@example.com", message); err != nil {
		t.Fatal(err)
	}
	return dst
}

// oneEnvPlatform and annTeam are the socle.yaml and teams.yaml of the
// one-app platforms.
const (
	oneEnvPlatform = `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: e2e}
environments:
  - {name: dev, runtime: {type: local}, sync: auto}
`
	annTeam = "apiVersion: socle.dev/v1\nkind: Teams\nteams:\n  - name: web\n    members: [{user: ann, role: developer}]\n"
)

// platform writes a one-app platform repository: the demo's web app in an
// auto-syncing dev environment, with the given rollout block.
func platform(t *testing.T, rollout string, replicas int) string {
	t.Helper()
	return platformOn(t, "local", rollout, replicas)
}

// platformOn is platform with dev on a runtime of type runtimeType.
func platformOn(t *testing.T, runtimeType, rollout string, replicas int) string {
	t.Helper()
	return newRepo(t, "web: first version", demoApp(t, "web", "web"), files{
		"socle.yaml": strings.Replace(oneEnvPlatform, "{type: local}", "{type: "+runtimeType+"}", 1),
		"teams.yaml": annTeam,
		"apps/web/socle.yaml": fmt.Sprintf(`apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -ldflags "-X main.version=$SOCLE_REVISION" -o "$SOCLE_OUT/web" .
%s
replicas: {min: %d, max: %d}
`, rollout, replicas, replicas),
	})
}

// commit changes apps/web/main.go by a comment, so that the app's source,
// and so its image, change: a new version.
func commitVersion(t *testing.T, repo, note string) {
	t.Helper()
	p := filepath.Join(repo, "apps/web/main.go")
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n// %s\n", note)
	f.Close()
	gitCommit(t, repo, note)
}

func gitCommit(t *testing.T, repo, msg string) {
	t.Helper()
	cmd := exec.Command("git", "-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-qam", msg)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
}

func head(t *testing.T, repo string) string {
	t.Helper()
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// socle is a running `socle up` process.
type socle struct {
	cmd       *exec.Cmd
	api       string // http://127.0.0.1:port
	data      string
	proxyPort string
	log       *syncbuf.Buffer
	done      chan struct{}
	clock     *socleClock
}

// socleClock is the test's hold on the time of the socles on one data
// directory: socle up --clock-file makes socle's clock a clock.Offset on
// its file, which the test moves forward past a soak or a freeze instead
// of sleeping through it. The test reads its time from the same file as
// socle does, so that the two agree on it.
type socleClock struct{ clock.Offset }

// clocks are the clocks of the data directories, so that a socle started
// again on one keeps the time the test moved it to.
var clocks sync.Map // data → *socleClock

// clockOf returns the clock of the socles on data, its file made with no
// offset the first time.
func clockOf(t *testing.T, data string) *socleClock {
	t.Helper()
	if c, ok := clocks.Load(data); ok {
		return c.(*socleClock)
	}
	c := &socleClock{clock.Offset{Path: filepath.Join(t.TempDir(), "clock")}}
	c.write(t, 0)
	v, _ := clocks.LoadOrStore(data, c)
	return v.(*socleClock)
}

// advance moves socle's clock d ahead. socle reads the file at every use
// of its clock, so once advance returns, socle's time is the test's now();
// the waits that the move passes fire (within socle's poll of the file),
// as they would had d passed. Move it only while nothing rolls out: a
// replica that is starting would be as late as d makes it. Only the
// test's own goroutine moves it.
func (c *socleClock) advance(t *testing.T, d time.Duration) {
	t.Helper()
	if d <= 0 {
		t.Fatalf("moving socle's clock by %s: only ahead", d)
	}
	offset, err := c.Check()
	if err != nil {
		t.Fatal(err)
	}
	c.write(t, offset+d)
	t.Logf("socle's clock moved %s ahead, to +%s", d, offset+d)
}

// write replaces the file with offset: a new file renamed over the old
// one, so that socle never reads half of it.
func (c *socleClock) write(t *testing.T, offset time.Duration) {
	t.Helper()
	tmp := c.Path + ".new"
	if err := os.WriteFile(tmp, []byte(offset.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.Path); err != nil {
		t.Fatal(err)
	}
}

// tokens are the API tokens made for the tests, by data directory and user:
// a data directory outlives the socle processes the crash test kills.
var tokens sync.Map // data + "\x00" + user → token

// tokenFor returns a token of user for the socle whose data directory is
// data, made the first time with `socle token create --data`.
func tokenFor(data, user string) (string, error) {
	key := data + "\x00" + user
	if v, ok := tokens.Load(key); ok {
		return v.(string), nil
	}
	out, err := exec.Command(socleBin, "token", "create", "--user", user, "--data", data).Output()
	if err != nil {
		return "", fmt.Errorf("token create --user %s: %w", user, err)
	}
	tok := strings.TrimSpace(string(out))
	v, _ := tokens.LoadOrStore(key, tok)
	return v.(string), nil
}

// socles maps each API address to its data directory, for the helpers
// that have only the address.
var socles sync.Map // api → data

// reader is the user whose token the harness reads the API with: every
// test platform has ann.
const reader = "ann"

// withUser turns the CLI's old --user U into --token <U's token> for the
// socle at api.
func withUser(api string, args []string) ([]string, error) {
	data, ok := socles.Load(api)
	if !ok {
		return nil, fmt.Errorf("no socle at %s", api)
	}
	user := reader
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		if args[i] == "--user" && i+1 < len(args) {
			user = args[i+1]
			i++
			continue
		}
		out = append(out, args[i])
	}
	tok, err := tokenFor(data.(string), user)
	if err != nil {
		return nil, err
	}
	return append(out, "--server", api, "--token", tok), nil
}

// apiRequest sends a request to the socle at the start of url as the reader.
func apiRequest(method, url string) (*http.Response, error) {
	var tok string
	socles.Range(func(k, v any) bool {
		if strings.HasPrefix(url, k.(string)+"/") {
			tok, _ = tokenFor(v.(string), reader)
			return false
		}
		return true
	})
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return apiClient.Do(req)
}

// as sends an API request as user to s and decodes the JSON answer into
// out (nil: discard); it returns the status and the body.
func (s *socle) as(t *testing.T, user, method, path string, in, out any) (int, string) {
	t.Helper()
	tok, err := tokenFor(s.data, user)
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.api+path, body)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// apiClient checks what it sends and receives against the OpenAPI document
// (apitest.Watch, in start).
var apiClient = &http.Client{Timeout: 10 * time.Second, Transport: apitest.Watching(nil)}

var (
	upLine   = regexp.MustCompile(`socle is up on (http://\S+)`)
	appsLine = regexp.MustCompile(`^  apps +.*\.localhost:(\d+)`)
)

// start runs socle up on repo with its data in data, on data's clock
// (clockOf); extra flags follow.
func start(t *testing.T, repo, data string, extra ...string) *socle {
	t.Helper()
	return startBinary(t, socleBin, repo, data, extra...)
}

// startBinary is start with another socle binary (an upgrade).
func startBinary(t *testing.T, bin, repo, data string, extra ...string) *socle {
	t.Helper()
	// The sandboxes' users (the tests run as root) must reach the data
	// directory: t.TempDir's parent is searchable by root alone.
	for dir := filepath.Dir(data); strings.HasPrefix(dir, os.TempDir()+"/"); dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		} else if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
			t.Fatal(err)
		}
	}
	c := clockOf(t, data)
	stopProxyAtEnd(t, data)
	// Without the sandbox, as the server's and cli's tests: the tests
	// count a replica's processes (a sandbox adds bwrap's two) and give
	// socle t.TempDir's 0700 directories; the sandbox is tested in
	// internal/sandbox, runtime/local, artifact and by test/readme.
	args := append([]string{"up", "--repo", repo, "--data", data, "--addr", "127.0.0.1:0", "--proxy-addr", "127.0.0.1:0", "--poll", "1h",
		"--clock-file", c.Path, "--insecure-no-sandbox"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: false}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &socle{cmd: cmd, data: data, log: &syncbuf.Buffer{}, done: make(chan struct{}), clock: c}
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	sc := bufio.NewScanner(out)
	deadline := time.After(60 * time.Second)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for s.api == "" || s.proxyPort == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("socle up ended before it was up:\n%s", s.log.String())
			}
			if m := upLine.FindStringSubmatch(l); m != nil {
				s.api = m[1]
			}
			if m := appsLine.FindStringSubmatch(l); m != nil {
				s.proxyPort = m[1]
			}
		case <-deadline:
			t.Fatalf("socle up did not start:\n%s", s.log.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	socles.Store(s.api, data)
	apitest.Watch(t, s.api)
	return s
}

// proxyCleanups are the data directories whose proxy process and
// replicas are killed at the end of their test: they outlive a socle that
// was killed, or stopped with --keep-running.
var proxyCleanups sync.Map // data → struct{}

func stopProxyAtEnd(t *testing.T, data string) {
	if _, loaded := proxyCleanups.LoadOrStore(data, struct{}{}); loaded {
		return
	}
	t.Cleanup(func() {
		if pid, ok := proxyPID(data); ok {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		killReplicas(data)
	})
}

// killReplicas kills the processes of the local runtime's replicas kept
// under data (and their sandboxes): each has SOCLE_LOCAL_REPLICA, the
// directory of its record, in its environment.
func killReplicas(data string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range procs {
		env, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if dir, ok := bytes.CutPrefix(kv, []byte("SOCLE_LOCAL_REPLICA=")); ok && strings.HasPrefix(string(dir), data+string(filepath.Separator)) {
				var pid int
				if _, err := fmt.Sscanf(f, "/proc/%d/environ", &pid); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
	}
}

// proxyPID returns the pid of the proxy process recorded for data, if it
// runs.
func proxyPID(data string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(data, "proxy", "process.json"))
	if err != nil {
		return 0, false
	}
	var rec struct {
		PID int `json:"pid"`
	}
	if json.Unmarshal(b, &rec) != nil || rec.PID == 0 || syscall.Kill(rec.PID, 0) != nil {
		return 0, false
	}
	return rec.PID, true
}

// stop ends socle with SIGTERM and waits.
func (s *socle) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("socle did not stop within 60s")
	}
}

// kill ends socle with SIGKILL, as a crash would.
func (s *socle) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

func (s *socle) status(t *testing.T) server.Status {
	t.Helper()
	resp, err := apiRequest(http.MethodGet, s.api+"/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st server.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *socle) hook(t *testing.T) {
	t.Helper()
	resp, err := apiRequest(http.MethodPost, s.api+"/api/v1/hooks/git")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func unit(st server.Status, app, env string) (api.UnitStatus, bool) {
	for _, u := range st.Runtime {
		if u.App == app && u.Env == env {
			return u, true
		}
	}
	return api.UnitStatus{}, false
}

// waitSynced waits until web @ dev runs revision rev, Synced.
func (s *socle) waitSynced(t *testing.T, rev string, timeout time.Duration) api.UnitStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last api.UnitStatus
	for time.Now().Before(deadline) {
		u, ok := unit(s.status(t), "web", "dev")
		if ok && u.Phase == api.PhaseSynced && u.Revision == rev {
			return u
		}
		last = u
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("web @ dev did not reach %s: %+v\nsocle's log:\n%s", rev[:7], last, tail(s.log.String(), 40))
	return last
}

func (s *socle) releases(t *testing.T) []store.Release {
	t.Helper()
	resp, err := apiRequest(http.MethodGet, s.api+"/api/v1/apps/web/envs/dev/releases?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Items []store.Release }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// load sends requests to web.dev.localhost through socle's proxy from
// conns concurrent keep-alive clients until stopped, and counts what comes
// back: the answers by the first group of the regexp they must match.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	versions   map[string]int64 // by the capture: the version, or the replica's port
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

var versionRe = regexp.MustCompile(`\(version ([0-9a-f]{40})\)`)

// startLoad sends GET / and counts the answers by version.
func startLoad(proxyPort string, conns int) *load {
	return startRequests(proxyPort, http.MethodGet, "/", conns, versionRe)
}

func startRequests(proxyPort, method, path string, conns int, capture *regexp.Regexp) *load {
	l := &load{versions: map[string]int64{}, stop: make(chan struct{})}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range conns {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(method, "http://127.0.0.1:"+proxyPort+path, nil)
				req.Host = "web.dev.localhost"
				resp, err := client.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				m := capture.FindSubmatch(body)
				if err != nil || resp.StatusCode != 200 || m == nil {
					l.fail(fmt.Sprintf("%s %d %q %v", time.Now().Format("15:04:05.000"), resp.StatusCode, body, err))
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.versions[string(m[1])]++
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) fail(why string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, why)
	}
	l.mu.Unlock()
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}
