package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/secretref/vaulttest"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// planted is a secret value the test puts in the platform and then looks
// for everywhere socle shows something; short is a secret of 3 characters;
// vaulted is one kept in Vault (the stand-in), which the platform refers
// to.
const (
	planted = "planted-s3cret-4f9a2c"
	short   = "q7z"
	vaulted = "vaulted-s3cret-8d1e7b"
)

// TestSecretsStaySecret marks web's GREETING secret beside its SESSION_KEY,
// gives them a planted value and a 3-character one in a SOPS file encrypted
// for an age key made here, and an API_TOKEN whose value in that file is a
// reference to Vault (ref+vault://apps/web#api-token); the app writes the
// three to its log. The test finds none of the values in the platform
// repository's history, in no answer of any GET route, in no log line
// streamed and no event, not in socle's own log, and not in its
// database's files (which hold the reference, never Vault's value); nor
// the password socle derives for api's database.
func TestSecretsStaySecret(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	edit := func(file, old, new string) { editFile(t, repo, file, old, new) }
	data := t.TempDir()
	recipient := ageKey(t, data, "test")
	v := vaulttest.Start(t)
	v.Put("secret", "apps/web", map[string]any{"api-token": vaulted})
	v.AddToken("web-token", "secret/apps/web")
	vaultStore(t, repo, data, v, `{token: "file:vault.token"}`, map[string]string{"vault.token": "web-token"})
	writeSecrets(t, repo, "apps/web/secrets.dev.yaml", map[string]string{"GREETING": planted, "SESSION_KEY": short, "API_TOKEN": "ref+vault://apps/web#api-token"}, recipient)
	edit("apps/web/score.yaml", `GREETING: "Grüezi from Alpenrose"`, `GREETING: ""`)
	edit("apps/web/socle.yaml", "secrets: [SESSION_KEY]", "secrets: [SESSION_KEY, GREETING, API_TOKEN]")
	edit("apps/web/main.go", `log.Printf("web %s listening on :%s", version, port)`, `log.Printf("web %s listening on :%s, greeting %q, key (%s), token <%s>", version, port, greeting, sessionKey, os.Getenv("API_TOKEN"))`)
	for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-qm", "web: a secret greeting"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	if leaked := gitHistoryHolds(t, repo, planted, "SESSION_KEY: "+short, vaulted, "web-token"); len(leaked) > 0 {
		t.Fatalf("the platform repository holds a secret in clear: %s", leaked)
	}

	var logs syncbuf.Buffer
	ctx := t.Context()
	r := startWith(t, Config{Repo: repo, Data: data, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer r.stop()
	s, token := r.Server, r.token

	st := r.waitFor(t, "web to run in dev", func(st Status) bool {
		for _, u := range st.Runtime {
			if u.App == "web" && u.Env == "dev" && u.Phase == api.PhaseSynced && len(u.Replicas) > 0 && u.Replicas[0].PID > 0 {
				return true
			}
		}
		return false
	})
	// The replica has Vault's value, not the reference.
	for _, u := range st.Runtime {
		if u.App == "web" && u.Env == "dev" {
			if got := replicaEnv(t, u)["API_TOKEN"]; got != vaulted {
				t.Errorf("web's replica has API_TOKEN=%q, want Vault's value", got)
			}
		}
	}
	// What api's replicas see of its database: the password socle
	// derives, and the DATABASE_URL that holds it.
	row, err := s.Store().DesiredUnit(ctx, store.Unit{App: "api", Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	var apiDev plan.Unit
	if err := json.Unmarshal(row.Spec, &apiDev); err != nil {
		t.Fatal(err)
	}
	apiSecrets := replicas.SecretValues(&apiDev, s.secret, s.resourceOutputs())
	if len(apiSecrets) != 2 {
		t.Fatalf("api's secrets in dev: %q, want its password and its DATABASE_URL", apiSecrets)
	}
	secrets := append([]string{planted, short, vaulted}, apiSecrets...)
	// leaks reports whether b holds any of the secrets.
	leaks := func(b []byte) bool {
		return slices.ContainsFunc(secrets, func(sec string) bool { return bytes.Contains(b, []byte(sec)) })
	}

	// The app did log the greeting: it is there, redacted.
	resp := r.get(t, "/api/v1/apps/web/envs/dev/logs")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "greeting \""+plan.Redacted+"\", key ("+plan.Redacted+"), token <"+plan.Redacted+">") {
		t.Errorf("the app's log line is not there, redacted:\n%s", b)
	}
	s.log.Info("a line that names the secret", "value", planted, "err", io.ErrUnexpectedEOF)

	// At rest: no file of the data directory's database holds a secret in
	// clear (the desired state keeps them sealed).
	for _, f := range []string{DBFile, DBFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(data, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		// The short one is left out: 3 bytes occur by chance in megabytes
		// of sealed data.
		if slices.ContainsFunc(secrets, func(sec string) bool { return sec != short && bytes.Contains(b, []byte(sec)) }) {
			t.Errorf("%s holds a secret in clear", f)
		}
	}
	if u, err := s.Store().DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"}); err != nil || !strings.Contains(string(u.Spec), planted) || !strings.Contains(string(u.Spec), `"SESSION_KEY":"`+short+`"`) ||
		!strings.Contains(string(u.Spec), `"API_TOKEN":"ref+vault://apps/web#api-token"`) {
		t.Errorf("the store does not give the runtime web's secrets back, and Vault's as its reference: %v", err)
	}
	// A replica's last words in an event, and a note in the audit trail,
	// as a crash message or an operator might leave them.
	if _, err := s.Store().AppendEvent(ctx, store.Event{Kind: "test.leak", App: "web", Env: "dev",
		Message: "replica said greeting " + planted, Data: json.RawMessage(`{"tail": "` + planted + ` & more"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store().AppendAudit(ctx, store.AuditRecord{Actor: "test", Action: "test.leak", Detail: json.RawMessage(`{"note": "` + apiSecrets[0] + ` and ` + short + ` and ` + vaulted + `"}`)}); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, op := range api.Operations {
		if op.Method != http.MethodGet || op.Stream != "" && op.ID != "logs" {
			continue
		}
		for _, app := range []string{"web", "api"} {
			for _, env := range envKinds {
				path := strings.NewReplacer("{app}", app, "{env}", env, "{id}", "1", "{sha}", s.inForceSHA()).Replace(op.Path)
				resp := r.get(t, path)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checked++
				if leaks(b) {
					t.Errorf("GET %s shows a secret: %s", path, b)
				}
			}
		}
	}
	// Every plan, every event and audit record, and the live stream.
	paths := []string{"/api/v1/events?limit=1000", "/api/v1/audit?limit=1000"}
	for id := int64(1); id < 10; id++ {
		paths = append(paths, "/api/v1/plans/"+strconv.FormatInt(id, 10))
	}
	for _, path := range paths {
		resp := r.get(t, path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checked++
		if leaks(b) {
			t.Errorf("GET %s shows a secret: %s", path, b)
		}
		if strings.Contains(path, "events") && !strings.Contains(string(b), "replica said greeting "+plan.Redacted) {
			t.Errorf("the planted event is not there, redacted: %s", b)
		}
	}
	sctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	stream, err := client.New(r.url, token).Request(sctx, http.MethodGet, "/api/v1/events/stream?after=0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stream.Body)
	for sc.Scan() {
		if leaks(sc.Bytes()) {
			t.Errorf("the event stream shows a secret: %s", sc.Text())
		}
		if strings.Contains(sc.Text(), "test.leak") && strings.HasPrefix(sc.Text(), "data: ") {
			break
		}
	}
	stream.Body.Close()
	if checked < 100 {
		t.Errorf("only %d answers checked", checked)
	}
	t.Logf("%d GET answers checked", checked)
	if l := logs.String(); leaks([]byte(l)) || !strings.Contains(l, plan.Redacted) {
		t.Errorf("socle's log holds a secret, or redacted nothing:\n%s", l)
	}
}

// TestRedactShortSecrets checks that a secret is redacted whatever its
// length, inside words too, in text and in JSON string values (escaped
// too); JSON keys keep their names unless a long secret is in them.
func TestRedactShortSecrets(t *testing.T) {
	red := newRedactor([]string{"a", "1234", "pw!", "äöü", "abc", "long-secret-value", "${resources.db.password}", "x${y"})
	R := plan.Redacted
	for _, tc := range []struct{ in, want string }{
		{"a", R},
		{"banana", "b" + R + "n" + R + "n" + R},
		{"PIN=1234;", "PIN=" + R + ";"},
		{"x1234y and 12345", "x" + R + "y " + R + "nd " + R + "5"},
		{"pass: pw!x", "p" + R + "ss: " + R + "x"},
		{"Käse äöü", "Käse " + R},
		{"token=abc123", "token=" + R + "123"},
		{"with long-secret-value inside", "with " + R + " inside"},
		{"prefixlong-secret-valuesuffix", "prefix" + R + "suffix"},
	} {
		if got := red.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`{"a": "a", "abc": "xabcx"}`, `{"a": "` + R + `", "abc": "x` + R + `x"}`},
		{`{"pin" : "1234", "n": 1234}`, `{"pin" : "` + R + `", "n": 1234}`},
		{`["x\n1234", "1234\"a"]`, `["x\n` + R + `", "` + R + `\"` + R + `"]`},
		{`{"msg": "esc \u0061bc"}`, `{"msg": "esc ` + R + `"}`},
		{`{"long-secret-value": 1}`, `{"` + R + `": 1}`},
	} {
		got := red.JSON([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("JSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("JSON(%s) is not JSON", tc.in)
		}
	}
	// A placeholder's text is not a secret; a value written with a
	// placeholder's mark is.
	if got := newRedactor([]string{"${resources.db.password}", "x${y"}).String("${resources.db.password} x${y"); got != "${resources.db.password} "+R {
		t.Errorf("placeholders: %q", got)
	}
	if r := newRedactor([]string{"", "${resources.db.password}", "ref+vault://apps/web#key"}); r != nil {
		t.Errorf("a redactor of nothing replaces %v", r)
	}
}

// FuzzRedactJSON: whatever JSON document an answer is, redacting it gives
// JSON again, with no secret left in a string value once the redaction
// marks are taken out.
func FuzzRedactJSON(f *testing.F) {
	for _, s := range []string{`{"a": "a"}`, `["x\n1234", "1234\"a"]`, `{"k": {"a b": ["pw!", 1, null, "\u0061"]}}`, `"a"`} {
		f.Add([]byte(s))
	}
	secrets := []string{"a", "1234", "x9"}
	red := newRedactor(secrets)
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		out := red.JSON(b)
		if !json.Valid(out) {
			t.Fatalf("JSON(%s) = %s: not JSON", b, out)
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		var walk func(any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				left := strings.ReplaceAll(v, plan.Redacted, "\x00")
				for _, sec := range secrets {
					if strings.Contains(left, sec) {
						t.Fatalf("JSON(%s) = %s: %q left in %q", b, out, sec, v)
					}
				}
			case []any:
				for _, e := range v {
					walk(e)
				}
			case map[string]any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		walk(v)
	})
}
