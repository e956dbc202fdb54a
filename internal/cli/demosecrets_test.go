package cli

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/examples"
	"github.com/socle-dev/socle/internal/sopsfile"
)

// TestUpDemoSecrets: socle up's demo repository holds the demo's secrets
// in SOPS files only — no blob of its history holds a value or an age
// identity in clear —, the non-production key cannot decrypt production's
// file, and web in dev signs with the session key it was given.
func TestUpDemoSecrets(t *testing.T) {
	t.Parallel()
	_, _, data, out := startUp(t, "--apply-stacks=false")
	repo := filepath.Join(data, "repo")
	var values map[string]map[string]map[string]string
	if err := yaml.Unmarshal(examples.DemoSecrets, &values); err != nil {
		t.Fatal(err)
	}
	needles := []string{"AGE-SECRET-KEY-"}
	for _, zones := range values {
		for _, vs := range zones {
			for _, v := range vs {
				needles = append(needles, v)
			}
		}
	}
	git := func(args ...string) []byte {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return b
	}
	blobs := 0
	for _, o := range strings.Fields(string(git("rev-list", "--all", "--objects", "--no-object-names"))) {
		if strings.TrimSpace(string(git("cat-file", "-t", o))) != "blob" {
			continue
		}
		blobs++
		b := git("cat-file", "blob", o)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("blob %s of the demo repository holds %q in clear", o, n)
			}
		}
	}
	if blobs < 20 {
		t.Fatalf("only %d blobs in the demo repository", blobs)
	}

	keyring := func(file string) *sopsfile.Keyring {
		var k sopsfile.Keyring
		if err := k.LoadFile(filepath.Join(data, "age", file)); err != nil {
			t.Fatal(err)
		}
		return &k
	}
	nonprod, prod := keyring("demo-nonprod.txt"), keyring("demo-prod.txt")
	prodFile, err := os.ReadFile(filepath.Join(repo, "apps/web/secrets.apps-prod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nonprod.Decrypt(prodFile); err == nil {
		t.Error("the non-production key decrypts production's secrets")
	}
	if got, err := prod.Decrypt(prodFile); err != nil || got["SESSION_KEY"] != values["web"]["apps-prod"]["SESSION_KEY"] {
		t.Errorf("production's key: %q %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(data, "age", "demo-prod.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the demo's production key: %v %v", fi, err)
	}

	// web in dev signs with the key of apps-nonprod's file.
	m := regexp.MustCompile(`http://web\.dev\.localhost:(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the banner does not name web in dev:\n%s", out.String())
	}
	mac := hmac.New(sha256.New, []byte(values["web"]["apps-nonprod"]["SESSION_KEY"]))
	mac.Write([]byte("hello"))
	want := hex.EncodeToString(mac.Sum(nil))
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+m[1]+"/sign?msg=hello", nil)
		req.Host = "web.dev.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if got := strings.TrimSpace(string(b)); got != want {
					t.Fatalf("web signs with another key: %s, want %s", got, want)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("web in dev does not answer /sign: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
