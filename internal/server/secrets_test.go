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
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/syncbuf"
)

// planted is a secret value the test puts in the platform and then looks
// for everywhere socle shows something.
const planted = "planted-s3cret-4f9a2c"

// TestSecretsStaySecret marks web's GREETING secret, gives it a planted
// value that the app writes to its log, and finds that value in no answer
// of any GET route, in no log line streamed and no event, and not in
// socle's own log; nor the password socle derives for api's database.
func TestSecretsStaySecret(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	edit := func(file, old, new string) {
		p := filepath.Join(repo, file)
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), old) {
			t.Fatalf("%s lacks %q (%v)", file, old, err)
		}
		os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
	}
	edit("apps/web/score.yaml", `GREETING: "Grüezi from Alpenrose"`, `GREETING: "`+planted+`"`)
	edit("apps/web/socle.yaml", "owner: guest-experience", "owner: guest-experience\nsecrets: [GREETING]")
	edit("apps/web/main.go", `log.Printf("web %s listening on :%s", version, port)`, `log.Printf("web %s listening on :%s, greeting %q", version, port, greeting)`)
	cmd := exec.Command("git", "-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-qam", "web: a secret greeting")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}

	var logs syncbuf.Buffer
	ctx := t.Context()
	data := t.TempDir()
	r := startWith(t, Config{Repo: repo, Data: data, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer r.stop()
	s, token := r.Server, r.token

	r.waitFor(t, "web to run in dev", func(st Status) bool {
		for _, u := range st.Runtime {
			if u.App == "web" && u.Env == "dev" && u.Phase == api.PhaseSynced {
				return true
			}
		}
		return false
	})
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
	secrets := append([]string{planted}, replicas.SecretValues(&apiDev, s.secret, s.resourceOutputs())...)
	if len(secrets) != 3 {
		t.Fatalf("api's secrets in dev: %q, want its password and its DATABASE_URL", secrets[1:])
	}
	// leaks reports whether b holds any of the secrets.
	leaks := func(b []byte) bool {
		return slices.ContainsFunc(secrets, func(sec string) bool { return bytes.Contains(b, []byte(sec)) })
	}

	// The app did log the greeting: it is there, redacted.
	resp := r.get(t, "/api/v1/apps/web/envs/dev/logs")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "greeting \""+plan.Redacted+"\"") {
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
		if leaks(b) {
			t.Errorf("%s holds a secret in clear", f)
		}
	}
	if u, err := s.Store().DesiredUnit(ctx, store.Unit{App: "web", Env: "dev"}); err != nil || !strings.Contains(string(u.Spec), planted) {
		t.Errorf("the store does not give the runtime web's secret back: %v", err)
	}
	// A replica's last words in an event, and a note in the audit trail,
	// as a crash message or an operator might leave them.
	if _, err := s.Store().AppendEvent(ctx, store.Event{Kind: "test.leak", App: "web", Env: "dev",
		Message: "replica said greeting " + planted, Data: json.RawMessage(`{"tail": "` + planted + ` & more"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store().AppendAudit(ctx, store.AuditRecord{Actor: "test", Action: "test.leak", Detail: json.RawMessage(`{"note": "` + secrets[1] + `"}`)}); err != nil {
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

// TestRedactShortSecrets checks that secrets under minSecret characters are
// redacted where they stand as words, in text and in JSON string values,
// while the words that merely contain them, and JSON keys, stay whole.
func TestRedactShortSecrets(t *testing.T) {
	red := newRedactor([]string{"a", "1234", "pw!", "äöü", "long-secret-value"})
	R := plan.Redacted
	for _, tc := range []struct{ in, want string }{
		{"a", R},
		{"a valid token", R + " valid token"},
		{"banana and apple", "banana and apple"},
		{"PIN=1234;", "PIN=" + R + ";"},
		{"12345 and 01234 and x1234", "12345 and 01234 and x1234"},
		{"line one\n1234\n", "line one\n" + R + "\n"},
		{"pass: pw!", "pass: " + R},
		{"pw!x", "pw!x"}, // the value ends in a symbol: a letter after it is another word
		{"Käse äöü", "Käse " + R},
		{"xäöü", "xäöü"},
		{"with long-secret-value inside", "with " + R + " inside"},
		{"prefixlong-secret-valuesuffix", "prefix" + R + "suffix"}, // long ones: anywhere
	} {
		if got := red.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`{"a": "a", "app": "banana"}`, `{"a": "` + R + `", "app": "banana"}`},
		{`{"pin" : "1234", "n": 1234}`, `{"pin" : "` + R + `", "n": 1234}`},
		{`["x\n1234", "1234\"a"]`, `["x\n` + R + `", "` + R + `\"` + R + `"]`},
		{`{"msg": "esc \"a\" \\ a"}`, `{"msg": "esc \"` + R + `\" \\ ` + R + `"}`},
	} {
		got := red.JSON([]byte(tc.in))
		if string(got) != tc.want {
			t.Errorf("JSON(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("JSON(%s) is not JSON", tc.in)
		}
	}
	if r := newRedactor([]string{"", "${resources.db.password}"}); r != nil {
		t.Errorf("a redactor of nothing replaces %v", r)
	}
}

// FuzzRedactJSON: whatever JSON document an answer is, redacting it gives
// JSON again, with no short secret left standing as a word in a value (for
// secrets of letters and digits: "pw!a" holds the word "a" only until "a"
// is replaced, which TestRedactShortSecrets covers).
func FuzzRedactJSON(f *testing.F) {
	for _, s := range []string{`{"a": "a"}`, `["x\n1234", "1234\"a"]`, `{"k": {"a b": ["pw!", 1, null, "\u0061"]}}`, `"a"`} {
		f.Add([]byte(s))
	}
	red := newRedactor([]string{"a", "1234", "x9"})
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		out := red.JSON(b)
		if !json.Valid(out) {
			t.Fatalf("JSON(%s) = %s: not JSON", b, out)
		}
		if again := red.JSON(out); !bytes.Equal(again, out) {
			t.Fatalf("JSON(%s) = %s, then %s: a secret was left", b, out, again)
		}
	})
}
