package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/sopsfile"
)

// TestSecretCommands runs socle secret against socle up's demo: list
// shows the demo's files and names, set reads the value from standard
// input and writes the zone's file it comes from, web in dev then signs
// with it, rotate re-encrypts that file with a new data key and the value
// stays; no blob of the demo repository's history holds the value.
func TestSecretCommands(t *testing.T) {
	t.Parallel()
	url, admin, data, out := startUp(t, "--apply-stacks=false")
	repo := filepath.Join(data, "repo")
	at := []string{"--server", url, "--token", admin}
	const value = "cli-session-key-5e8a1d"
	const file = "apps/web/secrets.apps-nonprod.yaml"
	sh := func(stdin string, args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := RunIn(context.Background(), append(args, at...), strings.NewReader(stdin), &o, &e)
		return o.String(), e.String(), code
	}

	// socle lists once a revision is in force, the demo's first.
	o, e, code := sh("", "secret", "list", "web")
	for start := time.Now(); code != ExitOK && strings.Contains(e, "no valid revision") && time.Since(start) < 2*time.Minute; {
		time.Sleep(50 * time.Millisecond)
		o, e, code = sh("", "secret", "list", "web")
	}
	if code != ExitOK || !regexp.MustCompile(`(?m)^apps/web/secrets\.apps-nonprod\.yaml +dev, preprod +SESSION_KEY +age1\S+… +\S+ socle `).MatchString(o) ||
		!strings.Contains(o, "apps/web/secrets.apps-prod.yaml") {
		t.Errorf("secret list: %d\n%s%s", code, o, e)
	}
	if _, _, code := sh(value, "secret", "set", "web", "SESSION_KEY"); code != ExitUsage {
		t.Errorf("set without --env: %d", code)
	}
	if _, e, code := sh("", "secret", "set", "web", "SESSION_KEY", "--env", "dev"); code != ExitUsage || !strings.Contains(e, "no value") {
		t.Errorf("set with nothing on standard input: %d %s", code, e)
	}
	o, e, code = sh(value+"\n", "secret", "set", "web", "SESSION_KEY", "--env", "dev")
	if code != ExitOK || !strings.HasPrefix(o, "Changed SESSION_KEY in "+file+" (for dev, preprod), commit ") {
		t.Fatalf("secret set: %d\n%s%s", code, o, e)
	}
	var nonprod sopsfile.Keyring
	if err := nonprod.LoadFile(filepath.Join(data, "age", "demo-nonprod.txt")); err != nil {
		t.Fatal(err)
	}
	show := func(rev string) []byte {
		cmd := exec.Command("git", "show", rev+":"+file)
		cmd.Dir = repo
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("git show %s:%s: %v", rev, file, err)
		}
		return b
	}
	if got, err := nonprod.Decrypt(show("main")); err != nil || got["SESSION_KEY"] != value {
		t.Errorf("the zone's file does not decrypt to the value set (%v)", err)
	}

	// A replica of web in dev signs with it (the canary of its new
	// release, then every one).
	m := regexp.MustCompile(`http://web\.dev\.localhost:(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the banner does not name web in dev:\n%s", out.String())
	}
	mac := hmac.New(sha256.New, []byte(value))
	mac.Write([]byte("hello"))
	want := hex.EncodeToString(mac.Sum(nil))
	signs := func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+m[1]+"/sign?msg=hello", nil)
		req.Host = "web.dev.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == want
	}
	// A bound on liveness: the demo's canary pauses 30 s twice.
	deadline := time.Now().Add(4 * time.Minute)
	for !signs() {
		if time.Now().After(deadline) {
			t.Fatal("web in dev does not sign with the key set")
		}
		time.Sleep(50 * time.Millisecond)
	}

	o, e, code = sh("", "secret", "rotate", "web", "--env", "dev", "-o", "json")
	var rotated api.SecretChange
	if code != ExitOK || json.Unmarshal([]byte(o), &rotated) != nil || len(rotated.Files) != 1 || rotated.Files[0].Path != file {
		t.Fatalf("secret rotate: %d\n%s%s", code, o, e)
	}
	if got, err := nonprod.Decrypt(show(rotated.Commit.SHA)); err != nil || got["SESSION_KEY"] != value {
		t.Errorf("the rotated file does not decrypt to the same value (%v)", err)
	}

	cmd := exec.Command("git", "rev-list", "--all", "--objects", "--no-object-names")
	cmd.Dir = repo
	objs, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	blobs := 0
	for _, o := range strings.Fields(string(objs)) {
		cmd := exec.Command("git", "cat-file", "-p", o)
		cmd.Dir = repo
		b, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		blobs++
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("object %s of the demo repository holds the value in clear", o)
		}
	}
	if blobs < 20 {
		t.Fatalf("only %d objects in the demo repository", blobs)
	}
	if b, err := os.ReadFile(filepath.Join(data, "socle.db")); err == nil && bytes.Contains(b, []byte(value)) {
		t.Error("the database holds the value in clear")
	}
}

// TestReadSecret: a value from standard input loses one trailing newline
// and nothing else; none, or one too large, is refused.
func TestReadSecret(t *testing.T) {
	for in, want := range map[string]string{"v\n": "v", "v\r\n": "v", "v\n\n": "v\n", " v ": " v ", "line1\nline2": "line1\nline2"} {
		if got, err := readSecret(strings.NewReader(in), io.Discard, "X"); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", strings.Repeat("x", maxSecretInput+1)} {
		if _, err := readSecret(strings.NewReader(in), io.Discard, "X"); err == nil {
			t.Errorf("%.20q… is taken", in)
		}
	}
}
