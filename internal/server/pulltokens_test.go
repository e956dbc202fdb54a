package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/socle-dev/socle/internal/auth"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/runtime/kubernetes"
	"github.com/socle-dev/socle/internal/runtime/kubernetes/kubetest"
	"github.com/socle-dev/socle/internal/source"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// TestPullTokenRotation: a cluster's pull token is the same at every pass
// of a period (no drift, no token per pass), even after a restart; the next
// period brings a new one while the old stays valid one more period; a
// token an admin revokes is replaced; the store keeps no secret.
func TestPullTokenRotation(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &auth.Authenticator{Store: st}
	// Tokens are checked against the store's expiry at the real time: the
	// test clock starts now, at the start of a period.
	start := time.Now().Truncate(pullPeriod)
	c := clock.NewFake(start.Add(time.Hour))
	secret := []byte("0123456789abcdef0123456789abcdef")
	p := newPullTokens(st, secret, c.Now)

	first, err := p.Token(ctx, "web", "prod")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Authenticate(ctx, "10.0.0.1", first)
	if err != nil || tok.User != "pull:web" {
		t.Fatalf("the pull token authenticates as %q, %v; want pull:web", tok.User, err)
	}
	if !tok.ExpiresAt.Equal(start.Add(2 * pullPeriod)) {
		t.Errorf("expires at %s, want two periods after the period's start (%s)", tok.ExpiresAt, start.Add(2*pullPeriod))
	}
	if stored, _ := st.Token(ctx, tok.ID); strings.Contains(first, strings.TrimPrefix(stored.Hash, "sha256:")) {
		t.Error("the store keeps the token in clear")
	}
	c.Advance(pullPeriod / 2)
	if again, _ := p.Token(ctx, "web", "prod"); again != first {
		t.Error("a second pass in the same period got another token")
	}
	if restarted, _ := newPullTokens(st, secret, c.Now).Token(ctx, "web", "prod"); restarted != first {
		t.Error("a restarted socle derived another token for the same period")
	}
	for _, other := range [][2]string{{"web", "dev"}, {"api", "prod"}} {
		if o, _ := p.Token(ctx, other[0], other[1]); o == first {
			t.Errorf("%s in %s has web in prod's token", other[0], other[1])
		}
	}
	if o, _ := newPullTokens(st, []byte("another data directory's secret!"), c.Now).Token(ctx, "web", "prod"); o == first {
		t.Error("another secret derives the same token")
	}

	// The next period: a new token; the old one still works for a period.
	c.Advance(pullPeriod)
	next, err := p.Token(ctx, "web", "prod")
	if err != nil || next == first {
		t.Fatalf("the next period's token: %v (same: %v)", err, next == first)
	}
	if _, err := a.Authenticate(ctx, "10.0.0.1", first); err != nil {
		t.Errorf("the previous token, one period after its own: %v", err)
	}

	// Revoked by an admin: replaced once the recheck is due.
	id, _, _ := auth.Parse(next)
	if _, err := st.RevokeToken(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	c.Advance(pullRecheck)
	replaced, err := p.Token(ctx, "web", "prod")
	if err != nil || replaced == next || replaced == first {
		t.Fatalf("after revoking the token in use: %v (replaced: %v)", err, replaced != next)
	}
	if _, err := a.Authenticate(ctx, "10.0.0.1", replaced); err != nil {
		t.Errorf("the replacement: %v", err)
	}
}

// TestPullTokenReadsItsAppOnly: a pull token of web reads web's images
// and nothing else: not another app's, no push, no API, no portal.
func TestPullTokenReadsItsAppOnly(t *testing.T) {
	f := newAccessFixture(t)
	host := f.Addr()
	for _, app := range []string{"web", "worker"} {
		if err := remote.Write(imageRef(t, host+"/apps/"+app+":ci"), testImage(t, app), f.as("lena")); err != nil {
			t.Fatal(err)
		}
	}
	pull, err := newPullTokens(f.Store(), []byte("0123456789abcdef0123456789abcdef"), time.Now).Token(t.Context(), "web", "prod")
	if err != nil {
		t.Fatal(err)
	}
	checkPullToken(t, f.url, host, "web", "worker", pull)
}

// checkPullToken checks what a pull token of app may do on the socle at
// url (registry at host): pull app's images, not other's, push nothing,
// reach no API and no page.
func checkPullToken(t *testing.T, url, host, app, other, token string) {
	t.Helper()
	as := remote.WithAuth(&authn.Basic{Username: "pull-" + app, Password: token})
	if _, err := remote.Image(imageRef(t, host+"/apps/"+app+":ci"), as); err != nil {
		t.Errorf("pulling %s with its pull token: %v", app, err)
	}
	_, err := remote.Image(imageRef(t, host+"/apps/"+other+":ci"), as)
	wantCode(t, "pulling another app", err, http.StatusForbidden, transport.DeniedErrorCode)
	err = remote.Write(imageRef(t, host+"/apps/"+app+":pushed"), testImage(t, "push"), as)
	wantCode(t, "pushing with a pull token", err, http.StatusForbidden, transport.DeniedErrorCode)
	for _, path := range []string{"/api/v1/status", "/api/v1/apps", "/"} {
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s with a pull token: %d, want 403", path, resp.StatusCode)
		}
	}
}

// TestKubernetesPullsWithASecret runs web on a real API server (kubetest)
// from a socle that builds it: the unit gets a dockerconfigjson Secret for
// socle's registry, its pods name it, and the token inside pulls web's
// image from socle and nothing else.
func TestKubernetesPullsWithASecret(t *testing.T) {
	cluster := kubetest.Start(t)
	src := t.TempDir()
	// The demo's web and worker, of two teams, one replica each, rolled out
	// at once: the test is about pulling.
	for app, owner := range map[string]string{"web": "guest-experience", "worker": "bookings"} {
		if err := os.MkdirAll(filepath.Join(src, "apps", app), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"main.go", "go.mod", "score.yaml"} {
			b, err := os.ReadFile(filepath.Join("../../examples/platform/apps", app, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "apps", app, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg := fmt.Sprintf("apiVersion: socle.dev/v1\nkind: App\nowner: %s\nbuild:\n  command: go build -trimpath -o \"$SOCLE_OUT/%s\" .\nreplicas: {min: 1}\n", owner, app)
		if err := os.WriteFile(filepath.Join(src, "apps", app, "socle.yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	teams, err := os.ReadFile("../../examples/platform/teams.yaml")
	if err != nil {
		t.Fatal(err)
	}
	platform := fmt.Sprintf("apiVersion: socle.dev/v1\nkind: Platform\nmetadata: {name: pull}\nenvironments:\n"+
		"  - {name: kube, runtime: {type: kubernetes, context: %s, namespace: socle-pull}, sync: auto}\n", cluster.Context)
	for name, data := range map[string][]byte{"socle.yaml": []byte(platform), "teams.yaml": teams} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(t.TempDir(), "repo")
	if _, err := source.Init(t.Context(), src, repo, "Ann", "ann@example.com", "web and worker on kubernetes"); err != nil {
		t.Fatal(err)
	}
	r := startWith(t, Config{Repo: repo, Data: t.TempDir(), Kubeconfig: cluster.Kubeconfig, Resync: 200 * time.Millisecond})
	defer r.stop()
	deadline := time.Now().Add(2 * time.Minute)
	for !synced(r, "web", "kube") || !synced(r, "worker", "kube") {
		if time.Now().After(deadline) {
			b, _ := json.Marshal(r.status(t))
			t.Fatalf("web and worker @ kube never synced: %+v\nstatus: %s", r.engine.Status(), b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	kc := cluster.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dep, err := kc.AppsV1().Deployments("socle-pull").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != kubernetes.PullSecretName("web") {
		t.Fatalf("web's pods pull with %+v, want the Secret %s", pod.ImagePullSecrets, kubernetes.PullSecretName("web"))
	}
	sec, err := kc.CoreV1().Secrets("socle-pull").Get(ctx, kubernetes.PullSecretName("web"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeDockerConfigJson {
		t.Errorf("Secret type %s, want %s", sec.Type, corev1.SecretTypeDockerConfigJson)
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		t.Fatal(err)
	}
	host := r.Addr()
	cred, ok := cfg.Auths[host]
	if !ok || !strings.HasPrefix(pod.Containers[0].Image, host+"/apps/web@") {
		t.Fatalf("the Secret holds %v; web runs %s; want credentials for %s", cfg.Auths, pod.Containers[0].Image, host)
	}
	if dec, _ := base64.StdEncoding.DecodeString(cred.Auth); string(dec) != cred.Username+":"+cred.Password {
		t.Errorf("auth %q does not encode username and password", cred.Auth)
	}
	// The token pulls exactly what the Deployment runs, as the kubelet would.
	as := remote.WithAuth(&authn.Basic{Username: cred.Username, Password: cred.Password})
	if _, err := remote.Image(imageRef(t, pod.Containers[0].Image), as); err != nil {
		t.Errorf("pulling %s with the Secret's token: %v", pod.Containers[0].Image, err)
	}
	// worker (another team's) was built too; the token does not read it.
	worker, err := kc.AppsV1().Deployments("socle-pull").Get(ctx, "worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Image(imageRef(t, worker.Spec.Template.Spec.Containers[0].Image), as)
	wantCode(t, "pulling worker with web's token", err, http.StatusForbidden, transport.DeniedErrorCode)
	err = remote.Write(imageRef(t, host+"/apps/web:pushed"), testImage(t, "push"), as)
	wantCode(t, "pushing with web's pull token", err, http.StatusForbidden, transport.DeniedErrorCode)
}

// synced says whether app @ env is Synced.
func synced(r *running, app, env string) bool {
	for _, u := range r.engine.Status() {
		if u.App == app && u.Env == env {
			return u.Phase == reconcile.Synced
		}
	}
	return false
}
