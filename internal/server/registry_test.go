package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/socle-dev/socle/internal/api"
)

// testImage is a small image of one file, for this machine's platform, as
// a CI pipeline would build.
func testImage(t *testing.T, content string) v1.Image {
	t.Helper()
	img, err := crane.Image(map[string][]byte{"hello.txt": []byte(content)})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = goruntime.GOOS, goruntime.GOARCH
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func imageRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// as is go-containerregistry's Basic authentication with a person's token,
// what `crane auth login -u <user> -p <token>` and docker login send.
func (f *accessFixture) as(user string) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: user, Password: f.tokens[user]})
}

// registryError is the distribution spec's error body.
type registryError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail"`
	} `json:"errors"`
}

// wantCode checks that err is the registry's answer status with the
// distribution spec's code: go-containerregistry parsed the body.
func wantCode(t *testing.T, what string, err error, status int, code transport.ErrorCode) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Errorf("%s: %v, want a registry error %d %s", what, err, status, code)
		return
	}
	if te.StatusCode != status || len(te.Errors) == 0 || te.Errors[0].Code != code {
		t.Errorf("%s: %d %+v, want %d %s", what, te.StatusCode, te.Errors, status, code)
	}
}

// TestRegistryAnswersLikeARegistry: without a token, or without the role,
// the registry answers what registry clients understand: 401 with a Basic
// challenge they follow, and the distribution spec's error body, never
// socle's {"error":…}.
func TestRegistryAnswersLikeARegistry(t *testing.T) {
	f := newAccessFixture(t)
	blob := "/v2/apps/web/blobs/uploads/"
	for _, tc := range []struct {
		name, user, method, path string
		auth                     string // "basic" (default), "bearer", or "bad"
		status                   int
		code                     string
	}{
		{"no token", "", "GET", "/v2/", "", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"no token, a manifest", "", "HEAD", "/v2/apps/web/manifests/latest", "", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"a bad token", "tom", "GET", "/v2/", "bad", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"a viewer pushes", "paul", "POST", blob, "basic", http.StatusForbidden, "DENIED"},
		{"another team's developer pushes", "marco", "POST", blob, "basic", http.StatusForbidden, "DENIED"},
		{"a stranger reads", "stranger", "GET", "/v2/_catalog", "basic", http.StatusForbidden, "DENIED"},
		{"outside apps/", "tom", "POST", "/v2/team/x/blobs/uploads/", "basic", http.StatusForbidden, "DENIED"},
		{"an app that does not exist", "tom", "POST", "/v2/apps/nope/blobs/uploads/", "basic", http.StatusNotFound, "NAME_UNKNOWN"},
		{"basic, the developer", "tom", "GET", "/v2/", "basic", http.StatusOK, ""},
		{"bearer, the developer", "tom", "GET", "/v2/", "bearer", http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.url+tc.path, nil)
			switch tc.auth {
			case "basic":
				req.SetBasicAuth(tc.user, f.tokens[tc.user])
			case "bearer":
				req.Header.Set("Authorization", "Bearer "+f.tokens[tc.user])
			case "bad":
				req.SetBasicAuth(tc.user, "socle_000000000000_"+strings.Repeat("a", 43))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Basic realm="socle"` {
				t.Errorf("WWW-Authenticate %q, want a Basic challenge", resp.Header.Get("WWW-Authenticate"))
			}
			if tc.code == "" || tc.method == "HEAD" {
				return
			}
			var e registryError
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != tc.code || e.Errors[0].Message == "" {
				t.Errorf("body %s, want the distribution spec's errors with code %s", body, tc.code)
			}
			if bytes.Contains(body, []byte(`"error":`)) {
				t.Errorf("body %s is socle's API error shape", body)
			}
		})
	}
}

// TestRegistryWithGoContainerregistry pushes and pulls with the library
// crane, ko and the OCI conformance tooling are built on, logged in the
// way they are (Basic, a socle token as the password): a developer of web's
// team pushes to apps/web, a viewer pulls, nobody pushes without the role,
// and a CI pipeline registers what it pushed as web's artifact.
func TestRegistryWithGoContainerregistry(t *testing.T) {
	f := newAccessFixture(t)
	host := f.Addr()
	img := testImage(t, "built by CI")
	d := digestOf(t, img)

	// Anonymous: the challenge is followed, and fails for want of a token
	// (before, the client stopped at the challenge: invalid realm).
	_, err := remote.Image(imageRef(t, host+"/apps/web:ci"))
	wantCode(t, "anonymous pull", err, http.StatusUnauthorized, transport.UnauthorizedErrorCode)

	if err := remote.Write(imageRef(t, host+"/apps/web:ci"), img, f.as("tom")); err != nil {
		t.Fatalf("tom (developer of web's team) pushing to apps/web: %v", err)
	}
	got, err := remote.Image(imageRef(t, host+"/apps/web@"+d), f.as("paul"))
	if err != nil {
		t.Fatalf("paul (viewer) pulling: %v", err)
	}
	if digestOf(t, got) != d {
		t.Errorf("pulled %s, pushed %s", digestOf(t, got), d)
	}
	err = remote.Write(imageRef(t, host+"/apps/web:viewer"), testImage(t, "not allowed"), f.as("paul"))
	wantCode(t, "paul pushing", err, http.StatusForbidden, transport.DeniedErrorCode)
	err = remote.Write(imageRef(t, host+"/apps/web:other-team"), testImage(t, "not allowed"), f.as("marco"))
	wantCode(t, "marco (bookings) pushing to web", err, http.StatusForbidden, transport.DeniedErrorCode)

	// CI: register the pushed image as web's artifact at the revision in
	// force, with the developer's token, over the API.
	sha := f.status(t).LastGood.SHA
	body, _ := json.Marshal(api.ArtifactRequest{Revision: sha, Digest: d})
	req, _ := http.NewRequest(http.MethodPost, f.url+"/api/v1/apps/web/artifacts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.tokens["tom"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a api.Artifact
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("registering %s: %d %v", d, resp.StatusCode, err)
	}
	if a.Digest != d || a.Built || a.Image != host+"/apps/web@"+d {
		t.Errorf("registered %+v, want %s not built", a, d)
	}
	// The image the API names is pullable as it says, by the same token.
	if _, err := remote.Head(imageRef(t, a.Image), f.as("tom")); err != nil {
		t.Errorf("the registered image %s: %v", a.Image, err)
	}
}

// craneBin builds crane from the go-containerregistry module socle depends
// on (no download: the module graph has it) into a temporary directory.
func craneBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crane")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/google/go-containerregistry/cmd/crane").CombinedOutput()
	if err != nil {
		t.Fatalf("building crane: %v\n%s", err, out)
	}
	return bin
}

// TestRegistryWithCrane drives the crane command a person types: login,
// copy, tag, list, digest, delete, all against socle with socle tokens.
func TestRegistryWithCrane(t *testing.T) {
	if testing.Short() {
		t.Skip("builds crane")
	}
	f := newAccessFixture(t)
	host := f.Addr()
	bin := craneBin(t)
	img := testImage(t, "crane")
	d := digestOf(t, img)
	if err := remote.Write(imageRef(t, host+"/apps/web:src"), img, f.as("tom")); err != nil {
		t.Fatal(err)
	}
	// Each person's login in a Docker configuration of their own; "" has none.
	configs := map[string]string{"tom": t.TempDir(), "paul": t.TempDir(), "": t.TempDir()}
	crane := func(user string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+configs[user])
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, user := range []string{"tom", "paul"} {
		if out, err := crane(user, "auth", "login", host, "-u", user, "-p", f.tokens[user]); err != nil {
			t.Fatalf("crane auth login as %s: %v\n%s", user, err, out)
		}
	}
	for _, step := range [][]string{
		{"copy", host + "/apps/web:src", host + "/apps/web:copied"},
		{"tag", host + "/apps/web:copied", "tagged"},
		{"delete", host + "/apps/web:copied"},
	} {
		if out, err := crane("tom", step...); err != nil {
			t.Fatalf("crane %s as tom: %v\n%s", strings.Join(step, " "), err, out)
		}
	}
	out, err := crane("paul", "ls", host+"/apps/web")
	// Besides the tags of the revisions socle built.
	if tags := strings.Fields(out); err != nil || !slices.Contains(tags, "src") || !slices.Contains(tags, "tagged") || slices.Contains(tags, "copied") {
		t.Errorf("crane ls as paul: %v %q, want src and tagged, not copied", err, out)
	}
	if out, err := crane("paul", "digest", host+"/apps/web:tagged"); err != nil || strings.TrimSpace(out) != d {
		t.Errorf("crane digest as paul: %v %q, want %s", err, out, d)
	}
	if out, err := crane("paul", "copy", host+"/apps/web:src", host+"/apps/web:paul"); err == nil || !strings.Contains(out, "DENIED") {
		t.Errorf("crane copy as paul (viewer): %v %q, want DENIED", err, out)
	}
	if out, err := crane("", "manifest", host+"/apps/web:src"); err == nil || !strings.Contains(out, "UNAUTHORIZED") {
		t.Errorf("crane manifest without login: %v %q, want UNAUTHORIZED", err, out)
	}
}

// podman runs the podman command with a configuration and a store of the
// test's own: nothing of the machine's containers or logins is touched.
type podman struct {
	t   *testing.T
	env []string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	if testing.Short() {
		t.Skip("podman: skipped with -short")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("podman is not installed; scripts/test installs it")
		}
		t.Skip("podman is not installed (apt-get install podman; scripts/test does)")
	}
	dir := t.TempDir()
	files := map[string]string{
		// Push and pull run no container: no OCI runtime is configured, and
		// nothing asks systemd or the journal.
		"containers.conf": "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n",
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "run")),
		// Every reference the test uses is fully qualified.
		"registries.conf": "unqualified-search-registries = []\n",
		"auth.json":       `{"auths": {}}`,
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"),
		"TMPDIR="+tmp,
	)
	return &podman{t: t, env: env}
}

func (p *podman) run(args ...string) (string, error) {
	cmd := exec.Command("podman", args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) must(args ...string) {
	p.t.Helper()
	if out, err := p.run(args...); err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestRegistryWithPodman: a developer logs in to socle's registry with
// podman and a socle token, pulls what CI pushed, pushes a new tag; a
// viewer's push is denied; without a login nothing is pulled.
func TestRegistryWithPodman(t *testing.T) {
	p := newPodman(t)
	f := newAccessFixture(t)
	host := f.Addr()
	img := testImage(t, "podman")
	if err := remote.Write(imageRef(t, host+"/apps/web:ci"), img, f.as("tom")); err != nil {
		t.Fatal(err)
	}
	insecure := "--tls-verify=false"
	if out, err := p.run("pull", insecure, host+"/apps/web:ci"); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("podman pull without login: %v %q, want unauthorized", err, out)
	}
	p.must("login", insecure, "-u", "tom", "-p", f.tokens["tom"], host)
	p.must("pull", insecure, host+"/apps/web:ci")
	p.must("tag", host+"/apps/web:ci", host+"/apps/web:podman")
	p.must("push", insecure, host+"/apps/web:podman")
	desc, err := remote.Head(imageRef(t, host+"/apps/web:podman"), f.as("paul"))
	if err != nil {
		t.Fatalf("the image podman pushed: %v", err)
	}
	// Podman pushes the same layers and config; its manifest may differ in
	// form, not in what it holds.
	pushed, err := remote.Image(imageRef(t, host+"/apps/web@"+desc.Digest.String()), f.as("paul"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	if got, _ := pushed.ConfigName(); got != want {
		t.Errorf("podman pushed config %s, want %s", got, want)
	}

	p.must("logout", host)
	p.must("login", insecure, "-u", "paul", "-p", f.tokens["paul"], host)
	if out, err := p.run("push", insecure, host+"/apps/web:podman"); err == nil || !strings.Contains(strings.ToLower(out), "denied") {
		t.Errorf("podman push as paul (viewer): %v %q, want denied", err, out)
	}
}
