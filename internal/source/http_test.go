package source

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	gohttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// serveGit serves the bare repositories under root over git's smart HTTP
// protocol with the real git http-backend, as a CGI program. A user and
// password, if given, are required (HTTP basic authentication).
func serveGit(t *testing.T, root, user, password string) *httptest.Server {
	return serveGitHook(t, root, user, password, nil)
}

// serveGitHook is serveGit calling hook, if not nil, before each request.
func serveGitHook(t *testing.T, root, user, password string, hook func(*http.Request)) *httptest.Server {
	t.Helper()
	needGit(t)
	exec := runGit(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(exec, "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		},
		Stderr: logWriter{t},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if hook != nil {
			hook(r)
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newBareOrigin makes root/platform.git, with receive-pack open over HTTP,
// and a working clone of it to commit from.
func newBareOrigin(t *testing.T) (root, bare string, up upstream) {
	t.Helper()
	needGit(t)
	root = t.TempDir()
	bare = filepath.Join(root, "platform.git")
	runGit(t, root, "init", "-q", "--bare", "-b", "main", bare)
	runGit(t, bare, "config", "http.receivepack", "true")
	up = newGitUpstream(t, "main")
	runGit(t, up.Dir(), "remote", "add", "origin", bare)
	return root, bare, up
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root, bare, up := newBareOrigin(t)
	first := up.Commit(t, "first", firstTree)
	runGit(t, up.Dir(), "push", "-q", "origin", "main")
	srv := serveGit(t, root, "", "")

	r := open(t, srv.URL+"/platform.git")
	if r.Branch() != "main" {
		t.Errorf("branch = %q, want main (the server's HEAD)", r.Branch())
	}
	if head, err := r.Head(); err != nil || head.SHA != first {
		t.Fatalf("head = %s, %v; want %s", head.SHA, err, first)
	}
	if _, changed, err := r.Fetch(ctx); err != nil || changed {
		t.Fatalf("Fetch with nothing new: %v, %v", changed, err)
	}
	second := up.Commit(t, "second", map[string]string{"apps/api/score.yaml": "api\n"}, "stacks")
	runGit(t, up.Dir(), "push", "-q", "origin", "main")
	if rev, changed, err := r.Fetch(ctx); err != nil || !changed || rev.SHA != second {
		t.Fatalf("Fetch = %s, %v, %v; want %s", rev.SHA, changed, err, second)
	}
	fsys, err := r.Files(second)
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, fsys); got["apps/api/score.yaml"] != "api\n" || got["stacks/net/main.tf"] != "" || len(got) != 5 {
		t.Errorf("Files(second) = %v", got)
	}

	// Commit pushes through git http-backend.
	rev, err := r.Commit(ctx, Change{Files: map[string][]byte{"releases/dev.yaml": []byte("web: 1\n")}, Author: "socle", Message: "promote", Parent: second})
	if err != nil {
		t.Fatal(err)
	}
	if got := runGit(t, bare, "rev-parse", "main"); got != rev.SHA {
		t.Fatalf("server's main = %s, want %s", got, rev.SHA)
	}
	if got := runGit(t, bare, "show", "main:releases/dev.yaml"); got != "web: 1" {
		t.Errorf("server's releases/dev.yaml = %q", got)
	}
	runGit(t, bare, "fsck", "--strict", "--no-progress")

	// The server moves on: a stale parent conflicts; no parent goes on top.
	runGit(t, up.Dir(), "pull", "-q", "--ff-only", "origin", "main")
	theirs := up.Commit(t, "theirs", map[string]string{"apps/web/score.yaml": "v2\n"})
	runGit(t, up.Dir(), "push", "-q", "origin", "main")
	_, err = r.Commit(ctx, Change{Files: map[string][]byte{"x": nil}, Author: "a", Message: "m", Parent: rev.SHA})
	mustErr(t, err, ErrConflict)
	mine, err := r.Commit(ctx, Change{Files: map[string][]byte{"releases/dev.yaml": []byte("web: 2\n")}, Author: "a", Message: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if got := runGit(t, bare, "rev-parse", "main~1"); got != theirs {
		t.Errorf("parent of the server's main = %s, want %s", got, theirs)
	}
	if got := runGit(t, bare, "rev-parse", "main"); got != mine.SHA {
		t.Errorf("server's main = %s, want %s", got, mine.SHA)
	}

	// A force-push upstream: the mirror follows.
	runGit(t, up.Dir(), "push", "-q", "--force", "origin", first+":main")
	if rev, changed, err := r.Fetch(ctx); err != nil || !changed || rev.SHA != first {
		t.Errorf("Fetch after a force-push = %s, %v, %v; want %s", rev.SHA, changed, err, first)
	}
}

func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root, _, up := newBareOrigin(t)
	sha := up.Commit(t, "first", map[string]string{"a": "1"})
	runGit(t, up.Dir(), "push", "-q", "origin", "main")
	srv := serveGit(t, root, "bob", "s3cret")
	url := srv.URL + "/platform.git"

	_, err := Open(ctx, Options{URL: url, Dir: t.TempDir()})
	if err == nil {
		t.Fatal("Open without credentials succeeded")
	}
	withPassword := strings.Replace(url, "http://", "http://bob:s3cret@", 1)
	if _, err := Open(ctx, Options{URL: withPassword, Dir: t.TempDir(), Auth: &gohttp.BasicAuth{Username: "bob", Password: "wrong"}}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open with a wrong password: %v; want an error without the URL's password", err)
	}
	r, err := Open(ctx, Options{URL: url, Dir: t.TempDir(), Auth: &gohttp.BasicAuth{Username: "bob", Password: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if head, _ := r.Head(); head.SHA != sha {
		t.Errorf("head = %s, want %s", head.SHA, sha)
	}
}

// TestHTTPRace has someone push between the moment the server tells Commit
// where the branch is and the moment Commit's push arrives.
func TestHTTPRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root, bare, up := newBareOrigin(t)
	first := up.Commit(t, "first", map[string]string{"a": "1"})
	runGit(t, up.Dir(), "push", "-q", "origin", "main")
	var theirs string
	var hookErr error
	var races atomic.Int32
	srv := serveGitHook(t, root, "", "", func(r *http.Request) {
		// Not on the test's goroutine: no t.Fatal here.
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") && races.Add(1) <= 2 {
			for _, args := range [][]string{
				{"commit", "-q", "--allow-empty", "-m", "theirs"},
				{"push", "-q", "origin", "main"},
				{"rev-parse", "HEAD"},
			} {
				out, err := gitCmd(up.Dir(), nil, args...).CombinedOutput()
				if err != nil {
					hookErr = fmt.Errorf("git %s: %v: %s", args[0], err, out)
					return
				}
				theirs = strings.TrimSpace(string(out))
			}
		}
	})
	r := open(t, srv.URL+"/platform.git")

	_, err := r.Commit(ctx, Change{Files: map[string][]byte{"c": nil}, Author: "a", Message: "with parent", Parent: first})
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	mustErr(t, err, ErrConflict)
	if got := runGit(t, bare, "rev-parse", "main"); got != theirs {
		t.Fatalf("server's main = %s, want theirs %s", got, theirs)
	}

	// Without Parent, Commit makes the change again on the new head.
	rev, err := r.Commit(ctx, Change{Files: map[string][]byte{"c": []byte("c")}, Author: "a", Message: "without parent"})
	if err != nil {
		t.Fatal(err)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if races.Load() != 3 {
		t.Errorf("%d pushes reached the server, want 3 (one lost race each, then one that won)", races.Load())
	}
	if got := runGit(t, bare, "log", "--format=%s", "-3", "main"); got != "without parent\ntheirs\ntheirs" {
		t.Errorf("server's log:\n%s", got)
	}
	if got := runGit(t, bare, "rev-parse", "main"); got != rev.SHA {
		t.Errorf("server's main = %s, want %s", got, rev.SHA)
	}
}

// logWriter writes to the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
