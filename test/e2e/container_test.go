package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/runtime/container"
)

// The tests of the container runtime run socle with dev on
// runtime: {type: container}: the apps are images that real Podman runs,
// socle's builds pulled from socle's own registry.

// needPodman skips a test on a machine without podman and removes, when the
// test ends, every container socle's data directory owned.
func needPodman(t *testing.T, data string) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (scripts/test installs it)")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if names, err := container.Prune(ctx, filepath.Join(data, "container")); err != nil && !os.IsNotExist(err) || len(names) > 0 {
			t.Logf("pruned the containers left behind: %v %v", names, err)
		}
	})
}

// TestContainerZeroDowntimeRollouts is TestZeroDowntimeRollouts on the
// container runtime: rollouts per strategy under 50 clients, 0 failures
// (5 in the suite; go test ./test/e2e -run TestContainerZeroDowntimeRollouts
// -rollouts 20 is the measurement of issue 19).
func TestContainerZeroDowntimeRollouts(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (scripts/test installs it)")
	}
	zeroDowntimeRollouts(t, container.TypeName)
}

// TestContainerKilled kills a replica's container with podman kill -s KILL
// under 50 clients: the runtime starts it again, and no client sees a
// failure (the proxy retries on the other replica).
func TestContainerKilled(t *testing.T) {
	repo, data := platformOn(t, container.TypeName, "rollout: {strategy: rolling}", 2), t.TempDir()
	needPodman(t, data)
	s := start(t, repo, data)
	defer s.stop(t)
	u := s.waitSynced(t, head(t, repo), 3*time.Minute)
	names := containersOf(t, data, "web")
	if len(names) != 2 {
		t.Fatalf("containers of web: %v, want 2", names)
	}
	l := startLoad(s.proxyPort, 50)
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	if out, err := exec.Command("podman", "kill", "--signal", "KILL", names[0]).CombinedOutput(); err != nil {
		t.Fatalf("podman kill: %v: %s", err, out)
	}
	deadline := time.Now().Add(time.Minute)
	var restarted api.ReplicaStatus
	for restarted.Restarts == 0 {
		u, _ = unit(s.status(t), "web", "dev")
		for _, r := range u.Replicas {
			if r.Restarts > 0 && r.Ready && u.Phase == api.PhaseSynced {
				restarted = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed container was not started again: %+v\n%s", u, tail(s.log.String(), 30))
		}
		time.Sleep(25 * time.Millisecond)
	}
	healed := time.Since(began)
	time.Sleep(300 * time.Millisecond)
	l.halt()
	t.Logf("container %s killed: ready again after %s; %d requests, %d failed", names[0], healed.Round(time.Millisecond), l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed after a container was killed: %q", n, l.failures)
	}
	if l.ok.Load() == 0 {
		t.Errorf("no request got through: the load did not run")
	}
}

// containersOf lists the running containers of app that socle's data
// directory owns, found by their labels.
func containersOf(t *testing.T, data, app string) []string {
	t.Helper()
	owner, err := os.ReadFile(filepath.Join(data, "container", "owner"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("podman", "ps", "--filter", "label="+container.OwnerLabel+"="+strings.TrimSpace(string(owner)),
		"--filter", "label="+container.AppLabel+"="+app, "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// TestContainerRunsTheDemoAndAThirdPartyImage: the demo's apps, built by
// socle, and an image socle did not build (busybox's httpd, from a
// registry of its own on loopback: no public registry is reachable here)
// run on the container runtime, each in its container, served through
// socle's proxy; the logs of a container come through socle's API.
func TestContainerRunsTheDemoAndAThirdPartyImage(t *testing.T) {
	data := t.TempDir()
	needPodman(t, data)
	ext := busyboxRegistry(t)
	platform := strings.Replace(oneEnvPlatform, "{type: local}", "{type: container}", 1)
	repo := newRepo(t, "the demo and a third-party image", demoApp(t, "web", "web"), demoApp(t, "worker", "worker"), files{
		"socle.yaml": platform,
		"teams.yaml": annTeam,
		"apps/web/socle.yaml": `apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -ldflags "-X main.version=$SOCLE_REVISION" -o "$SOCLE_OUT/web" .
`,
		"apps/worker/socle.yaml": `apiVersion: socle.dev/v1
kind: App
owner: web
build:
  command: go build -trimpath -o "$SOCLE_OUT/worker" .
`,
		"apps/site/score.yaml": `apiVersion: score.dev/v1b1
metadata: {name: site}
containers:
  httpd:
    image: ` + ext + `/third-party/busybox:1.35
    command: [/bin/busybox]
    args: [httpd, -f, -v, -p, "${socle.port}", -h, /www]
    resources:
      limits: {cpu: 250m, memory: 32Mi}
    readinessProbe:
      httpGet: {path: /, port: 8080}
service:
  ports:
    http: {port: 80, targetPort: 8080}
`,
		"apps/site/socle.yaml": "apiVersion: socle.dev/v1\nkind: App\nowner: web\n",
	})
	s := start(t, repo, data)
	defer s.stop(t)
	rev := head(t, repo)
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st := s.status(t)
		synced := 0
		for _, app := range []string{"web", "worker", "site"} {
			if u, ok := unit(st, app, "dev"); ok && u.Phase == api.PhaseSynced && u.Revision == rev {
				synced++
			}
		}
		if synced == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the apps did not all sync on the container runtime: %+v\n%s", st.Runtime, tail(s.log.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for app, want := range map[string]string{"web": "Grüezi", "site": "served by busybox"} {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+s.proxyPort+"/", nil)
		req.Host = app + ".dev.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s.dev.localhost answered %s %q, want %q", app, resp.Status, body, want)
		}
	}
	for _, app := range []string{"web", "worker", "site"} {
		if n := containersOf(t, data, app); len(n) == 0 {
			t.Errorf("no container of %s runs", app)
		}
	}
	// busybox's httpd logs each request (-v) on its stderr.
	var logs string
	for !strings.Contains(logs, "response:200") {
		code, body := s.as(t, "ann", http.MethodGet, "/api/v1/apps/site/envs/dev/logs", nil, nil)
		if code != 200 {
			t.Fatalf("logs of site: %d %s", code, body)
		}
		logs = body
		if time.Now().After(deadline) {
			t.Fatalf("the logs of site lack the request:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The limits of Score's resources.limits are the container's.
	names := containersOf(t, data, "site")
	out, err := exec.Command("podman", "inspect", "--format", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}", names[0]).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "250000000 33554432" {
		t.Errorf("site's container limits (nano CPUs, memory) = %s, want 250000000 33554432", got)
	}
}

// busyboxRegistry serves, on loopback, a registry that holds an image of
// the machine's static busybox (Debian's busybox-static) at
// third-party/busybox:1.35, with /www/index.html, and returns its host.
func busyboxRegistry(t *testing.T) string {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no /bin/busybox (scripts/test installs busybox-static): %v", err)
	}
	if f, err := elf.NewFile(bytes.NewReader(bin)); err != nil || slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		t.Skip("/bin/busybox is not static: install busybox-static (scripts/test does), the image holds nothing else")
	}
	st, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.NewHandler(st, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"bin/busybox", 0o755, bin},
		{"www/index.html", 0o644, []byte("<p>served by busybox</p>\n")},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromReader(bytes.NewReader(layer.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", goruntime.GOARCH
	cfg.Config.Entrypoint = []string{"/bin/busybox"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/third-party/busybox:1.35")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The image Podman pulled, by the repository socle pinned.
		out, _ := exec.Command("podman", "images", "--filter", "reference="+host+"/third-party/busybox", "--format", "{{.ID}}").Output()
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command("podman", "rmi", "--force", id).Run()
		}
	})
	return host
}
