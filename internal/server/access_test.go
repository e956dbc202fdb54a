package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/apitest"
	"github.com/socle-dev/socle/internal/api/client"
	"github.com/socle-dev/socle/internal/auth"
)

// The demo's people, one per role and team, and what web (owned by
// guest-experience) and the environment kinds are to them.
var people = []string{"paul", "tom", "marco", "ines", "sofia", "lena", "stranger", ""}

// envKinds are the demo's environments, one per kind: dev follows Git
// outside production, preprod is manual behind a soak, prod is production
// behind approvals, sandbox is a sandbox zone.
var envKinds = []string{"dev", "preprod", "prod", "sandbox"}

// allowed is the specification the matrix is checked against, written out
// from the issue rather than computed by the code under test: for web,
// which guest-experience owns (tom developer, ines approver, paul viewer),
// while marco and sofia are of bookings, lena is an admin, stranger holds a
// valid token but is in no team, and "" has no token.
func allowed(access api.Access, user, env string) bool {
	switch access {
	case api.AccessPublic:
		return true
	case api.AccessAuthenticated:
		return user != ""
	case api.AccessMember, api.AccessSelf:
		return slices.Contains([]string{"paul", "tom", "marco", "ines", "sofia", "lena"}, user)
	case api.AccessTeam:
		return slices.Contains([]string{"tom", "ines", "lena"}, user)
	case api.AccessDeploy:
		if env == "prod" { // deployRoles: [approver, admin]
			return slices.Contains([]string{"ines", "lena"}, user)
		}
		return slices.Contains([]string{"tom", "ines", "lena"}, user)
	case api.AccessApprove:
		return slices.Contains([]string{"ines", "lena"}, user)
	case api.AccessAdmin:
		return user == "lena"
	}
	panic("unknown access " + access)
}

// call is one request of the matrix.
type call struct {
	op         api.Operation
	env        string // the environment the call is about, if any
	path, body string
}

// calls returns the requests that exercise op: one per environment kind
// when it names an environment (in its path, or the body of a promotion).
func calls(op api.Operation) []call {
	path := strings.NewReplacer("{app}", "web", "{id}", "1", "{sha}", "0000000").Replace(op.Path)
	if op.ID == "revokeToken" {
		path = strings.Replace(op.Path, "{id}", "000000000000", 1)
	}
	body := ""
	if op.Body != nil {
		body = "{}"
	}
	switch {
	case strings.Contains(path, "{env}"):
		var out []call
		for _, e := range envKinds {
			out = append(out, call{op, e, strings.Replace(path, "{env}", e, 1), body})
		}
		return out
	case op.ID == "promote":
		var out []call
		for _, e := range envKinds {
			out = append(out, call{op, e, path, fmt.Sprintf(`{"to": %q}`, e)})
		}
		return out
	case op.ID == "setSecret":
		// The demo has no .sops.yaml: once allowed, 422 (TestSecretSet
		// writes one).
		var out []call
		for _, e := range envKinds {
			out = append(out, call{op, e, strings.Replace(path, "{name}", "SESSION_KEY", 1) + "?env=" + e, `{"value": "access-test-value"}`})
		}
		return out
	case op.ID == "createApp":
		return []call{{op, "", path, `{"app": "access-test", "template": "no-such-template"}`}} // 404 once allowed (TestNewAppFromTemplate checks the rule)
	case op.ID == "createToken":
		return []call{{op, "", path, `{"user": "paul"}`}}
	case op.ID == "registerArtifact":
		return []call{{op, "", path, `{"revision": "0000000"}`}} // no such revision: 404 once allowed
	case op.ID == "approveStack":
		return []call{{op, "", path, `{"plan": "sha256:0000"}`}} // no such stack: 404 once allowed (TestStackApproveAccess checks the rule)
	}
	return []call{{op, "", path, body}}
}

// accessFixture is one server on the demo platform and a token per person.
type accessFixture struct {
	*running
	tokens map[string]string
}

func newAccessFixture(t *testing.T) *accessFixture {
	r := start(t, gitRepo(t), t.TempDir())
	t.Cleanup(r.stop)
	r.waitFor(t, "the demo in force", func(st Status) bool { return st.LastGood != nil })
	f := &accessFixture{running: r, tokens: map[string]string{}}
	for _, p := range people {
		if p == "" {
			continue
		}
		tok, _, err := auth.Create(context.Background(), r.Store(), p, "access test", "test", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[p] = tok
	}
	return f
}

// do sends c as user and returns the status, the operation that answered
// and the body (not read for streams).
func (f *accessFixture) do(t *testing.T, c call, user string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, _ := http.NewRequestWithContext(ctx, c.op.Method, f.url+c.path, body)
	if tok := f.tokens[user]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s as %q: %v", c.op.Method, c.path, user, err)
	}
	defer resp.Body.Close()
	if c.op.Stream != "" && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, resp.Header.Get(OperationHeader), "" // a stream: the headers say enough
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get(OperationHeader), string(b)
}

// TestAPIAccess checks every route against every role and every kind of
// environment on a real server, that no route answers without a token but
// the public ones, and that the OpenAPI document and the routes served are
// the same set.
func TestAPIAccess(t *testing.T) {
	t.Parallel()
	f := newAccessFixture(t)

	t.Run("RBACMatrix", func(t *testing.T) {
		cells := 0
		for _, op := range api.Operations {
			for _, c := range calls(op) {
				for _, user := range people {
					want := allowed(op.Access, user, c.env)
					code, answered, body := f.do(t, c, user)
					cells++
					if answered != op.ID {
						t.Errorf("%s %s was answered by %q, not %s", op.Method, c.path, answered, op.ID)
					}
					denied := code == http.StatusUnauthorized || code == http.StatusForbidden
					switch {
					case want && (denied || code >= 500):
						t.Errorf("%s %s (%s) as %q: %d, want allowed: %s", op.Method, c.path, c.env, user, code, body)
					case !want && user == "" && code != http.StatusUnauthorized:
						t.Errorf("%s %s without a token: %d, want 401", op.Method, c.path, code)
					case !want && user != "" && code != http.StatusForbidden:
						t.Errorf("%s %s (%s) as %q: %d, want 403: %s", op.Method, c.path, c.env, user, code, body)
					}
				}
			}
		}
		t.Logf("%d cells: %d operations × %d callers × their environments", cells, len(api.Operations), len(people))
	})

	t.Run("NoToken", func(t *testing.T) {
		for _, op := range api.Operations {
			for _, c := range calls(op) {
				code, _, _ := f.do(t, c, "")
				if op.Access == api.AccessPublic {
					if code != http.StatusOK {
						t.Errorf("public %s %s: %d", op.Method, c.path, code)
					}
				} else if code != http.StatusUnauthorized {
					t.Errorf("%s %s without a token: %d, want 401", op.Method, c.path, code)
				}
			}
		}
		// The portal, the registry and unknown API paths too; only the
		// login page and its assets are open.
		for _, p := range []string{"/", "/apps/web", "/v2/", "/api/v1/nothing-here", "/activity"} {
			resp, err := http.Get(f.url + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %s, want 401", p, resp.Status)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, f.url+"/", nil)
		req.AddCookie(&http.Cookie{Name: TokenCookie, Value: "socle_expired"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if c := resp.Cookies(); resp.StatusCode != http.StatusUnauthorized || len(c) != 1 || c[0].Name != TokenCookie || c[0].MaxAge >= 0 {
			t.Errorf("the portal with a bad cookie: %s, cookies %v; want 401 and the cookie cleared", resp.Status, c)
		}
		resp, err = http.Get(f.url + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("the login page asks for a token")
		}
		for _, bad := range []string{"Bearer nonsense", "Bearer socle_000000000000_" + strings.Repeat("x", 43), "Basic Zm9vOmJhcg=="} {
			req, _ := http.NewRequest(http.MethodGet, f.url+"/api/v1/status", nil)
			req.Header.Set("Authorization", bad)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("%q: %s, want 401", bad, resp.Status)
			}
		}
	})

	t.Run("OpenAPIMatchesRoutes", func(t *testing.T) {
		code, _, body := f.do(t, call{op: api.Operation{Method: "GET"}, path: "/api/v1/openapi.json"}, "paul")
		if code != http.StatusOK {
			t.Fatalf("openapi.json: %d", code)
		}
		var doc struct {
			OpenAPI string                                `json:"openapi"`
			Paths   map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.OpenAPI != "3.1.0" {
			t.Errorf("openapi = %q", doc.OpenAPI)
		}
		// The contract the tests check answers against (apitest) is the
		// document served.
		if want, _ := api.OpenAPI(); body != string(want) {
			t.Errorf("the served document is not api.OpenAPI()")
		}
		documented := map[string]bool{}
		for path, methods := range doc.Paths {
			for m := range methods {
				documented[strings.ToUpper(m)+" "+path] = true
			}
		}
		// Every pattern served is documented, but the catch-alls: the
		// registry, the portal and the not-found answer of /api/.
		served := map[string]bool{}
		for _, p := range f.Patterns() {
			served[p] = true
			if !documented[p] && !slices.Contains([]string{"/api/", "/v2/", "/"}, p) {
				t.Errorf("served but not documented: %s", p)
			}
		}
		// Every documented route is served by its own handler.
		for p := range documented {
			if !served[p] {
				t.Errorf("documented but not served: %s", p)
			}
		}
		for _, op := range api.Operations {
			c := calls(op)[0]
			if _, answered, _ := f.do(t, c, "lena"); answered != op.ID {
				t.Errorf("%s %s is answered by %q", op.Method, c.path, answered)
			}
		}
	})

	t.Run("PortalCookieNeedsSameOrigin", func(t *testing.T) {
		post := func(origin string) int {
			req, _ := http.NewRequest(http.MethodPost, f.url+"/api/v1/hooks/git", bytes.NewReader(nil))
			req.AddCookie(&http.Cookie{Name: TokenCookie, Value: f.tokens["lena"]})
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post("http://evil.example"); code != http.StatusForbidden {
			t.Errorf("cross-site POST with the cookie: %d, want 403", code)
		}
		if code := post(""); code != http.StatusForbidden {
			t.Errorf("POST with the cookie and no origin: %d, want 403", code)
		}
		if code := post(f.url); code != http.StatusAccepted {
			t.Errorf("same-origin POST with the cookie: %d, want 202", code)
		}
	})
}

// TestFailedLoginsAreLimited checks that guessing tokens from one address
// is slowed down, and that the limit is per address.
func TestFailedLoginsAreLimited(t *testing.T) {
	t.Parallel()
	r := start(t, gitRepo(t), t.TempDir())
	defer r.stop()
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	codes := map[int]int{}
	for i := range 20 {
		codes[get(fmt.Sprintf("socle_%012d_%s", i, strings.Repeat("g", 43)))]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 10 {
		t.Errorf("20 guesses: %v, want 10 × 401 then 10 × 429", codes)
	}
	if code := get(r.token); code != http.StatusOK {
		t.Errorf("a valid token from the guessing address: %d, want 200 (only failures are limited)", code)
	}
}

// TestAPIConventions checks what every list and answer shares: pages with
// a cursor, ETags, bounded bodies, error bodies, and the live event stream.
func TestAPIConventions(t *testing.T) {
	t.Parallel()
	repo := gitRepo(t)
	r := start(t, repo, t.TempDir())
	defer r.stop()
	r.waitFor(t, "a revision in force", func(st Status) bool { return st.LastGood != nil })
	commit(t, repo, "apps/web/score.yaml", "Grüezi", "Servus", "web: Servus")
	r.hook(t)
	r.waitFor(t, "the second revision", func(st Status) bool {
		return st.LastGood != nil && strings.HasPrefix(st.LastGood.Message, "web: Servus")
	})
	c := client.New(r.url, r.token)
	ctx := t.Context()

	var p1, p2 api.Page[api.Revision]
	if err := c.Get(ctx, "/api/v1/revisions?limit=1", &p1); err != nil || len(p1.Items) != 1 || p1.Next == "" {
		t.Fatalf("first page: %+v %v", p1, err)
	}
	if err := c.Get(ctx, "/api/v1/revisions?limit=1&cursor="+p1.Next, &p2); err != nil || len(p2.Items) != 1 || p2.Items[0].SHA == p1.Items[0].SHA || p2.Next != "" {
		t.Fatalf("second and last page: %+v %v", p2, err)
	}
	var audit api.Page[api.AuditRecord]
	if err := c.Get(ctx, "/api/v1/audit?limit=1", &audit); err != nil || len(audit.Items) != 1 || audit.Next == "" {
		t.Fatalf("audit page: %+v %v", audit, err)
	}
	if a := audit.Items[0]; a.Seq != 1 || a.Actor != "test" || a.Action != "token.created" || a.Hash == "" || a.PrevHash == "" {
		t.Errorf("the first audit record: %+v", a)
	}
	var bad api.Error
	resp := r.get(t, "/api/v1/revisions?limit=5000")
	json.NewDecoder(resp.Body).Decode(&bad)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || bad.Error.Code != "bad_request" || !strings.Contains(bad.Error.Message, "limit") {
		t.Errorf("limit 5000: %d %+v", resp.StatusCode, bad)
	}

	resp = r.get(t, "/api/v1/platform")
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest(http.MethodGet, r.url+"/api/v1/platform", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("If-None-Match", etag)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("ETag %q, then If-None-Match: %s, want 304", etag, resp.Status)
	}

	req, _ = http.NewRequest(http.MethodPost, r.url+"/api/v1/apps/web/promote", strings.NewReader(`{"to":"preprod","message":"`+strings.Repeat("x", 2<<20)+`"}`))
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MB body: %s, want it refused", resp.Status)
	}

	// The stream sends what happens after it starts.
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	stream, err := c.Request(sctx, http.MethodGet, "/api/v1/events/stream", nil, http.Header{"Accept": {"text/event-stream"}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if ct := stream.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("stream content type %q", ct)
	}
	commit(t, repo, "apps/web/score.yaml", "Servus", "Hoi", "web: Hoi")
	r.hook(t)
	sc := bufio.NewScanner(stream.Body)
	var sawID, sawRevision bool
	for sc.Scan() && !(sawID && sawRevision) {
		line := sc.Text()
		sawID = sawID || strings.HasPrefix(line, "id: ")
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, "web: Hoi") {
			sawRevision = true
		}
	}
	if !sawID || !sawRevision {
		t.Errorf("the stream did not send the new revision's event (id %v, revision %v): %v", sawID, sawRevision, sc.Err())
	}
}

// TestSignedWebhook: a git host that cannot send a bearer token calls the
// webhook with the shared secret, signed as GitHub does or as GitLab's token.
func TestSignedWebhook(t *testing.T) {
	t.Parallel()
	r := startWith(t, Config{Repo: gitRepo(t), Data: t.TempDir(), WebhookSecret: "hook-s3cret"})
	defer r.stop()
	body := `{"ref":"refs/heads/main"}`
	sign := func(secret string) string {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	for _, tc := range []struct {
		name, header, value string
		want                int
	}{
		{"GitHub signature", "X-Hub-Signature-256", sign("hook-s3cret"), http.StatusAccepted},
		{"wrong signature", "X-Hub-Signature-256", sign("guess"), http.StatusUnauthorized},
		{"GitLab token", "X-Gitlab-Token", "hook-s3cret", http.StatusAccepted},
		{"wrong GitLab token", "X-Gitlab-Token", "guess", http.StatusUnauthorized},
		{"nothing", "X-Nothing", "", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/api/v1/hooks/git", strings.NewReader(body))
		req.Header.Set(tc.header, tc.value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
		}
	}
	// The signature opens the webhook only.
	req, _ := http.NewRequest(http.MethodGet, r.url+"/api/v1/status", nil)
	req.Header.Set("X-Gitlab-Token", "hook-s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the webhook secret on another route: %s, want 401", resp.Status)
	}
}

// TestStrictBodies sends every operation that takes a JSON body an unknown
// field, a field of the wrong type and a body that is not an object: each
// is a 400 that names the field, and nothing is done (no audit record, no
// commit), where a lenient decoder once committed a promotion with a typo
// beside "to" and started a build for {"to": 5}.
func TestStrictBodies(t *testing.T) {
	t.Parallel()
	f := newAccessFixture(t)
	lastSeq := func() int64 {
		var page api.Page[api.AuditRecord]
		if err := client.New(f.url, f.tokens["lena"]).Get(t.Context(), "/api/v1/audit?limit=1000", &page); err != nil {
			t.Fatal(err)
		}
		return page.Items[len(page.Items)-1].Seq
	}
	before := lastSeq()
	tested := 0
	for _, op := range api.Operations {
		if op.Body == nil {
			continue
		}
		c := calls(op)[0]
		if op.ID == "promote" {
			c = calls(op)[1] // to preprod, where a promotion would be committed
		}
		// The body's first field of a kind, given a value of another.
		bt := reflect.TypeOf(op.Body)
		var field, wrong string
	fields:
		for i := range bt.NumField() {
			name, _, _ := strings.Cut(bt.Field(i).Tag.Get("json"), ",")
			switch bt.Field(i).Type.Kind() {
			case reflect.String:
				field, wrong = name, "5"
			case reflect.Int, reflect.Int64:
				field, wrong = name, `"five"`
			case reflect.Bool:
				field, wrong = name, `"yes"`
			default:
				continue
			}
			break fields
		}
		valid := strings.TrimSuffix(strings.TrimSpace(c.body), "}")
		if valid == "" {
			valid = "{"
		}
		sep := ", "
		if valid == "{" {
			sep = ""
		}
		for _, tc := range []struct{ body, field, says string }{
			{valid + sep + `"unknwon": 1}`, "unknwon", `unknown field "unknwon"`},
			{`{"` + field + `": ` + wrong + `}`, field, `field "` + field + `" must be`},
			{`[` + valid + `}]`, "", "must be a JSON object"},
			{valid + sep + `"message": null}`, "message", `field "message" must be string, not null`},
		} {
			if tc.field == "message" && op.ID != "promote" {
				continue // the body with a message: promote's
			}
			tested++
			c := c
			c.body = tc.body
			code, body := f.doUnchecked(t, c, "lena")
			var e struct {
				Error struct {
					Code    string
					Message string
					Details struct{ Field string }
				}
			}
			json.Unmarshal([]byte(body), &e)
			if code != http.StatusBadRequest || e.Error.Code != "bad_request" || !strings.Contains(e.Error.Message, tc.says) || e.Error.Details.Field != tc.field {
				t.Errorf("%s %s with %s: %d %s; want 400 bad_request saying %q, details.field %q", op.Method, c.path, tc.body, code, body, tc.says, tc.field)
			}
		}
	}
	if tested < 10 {
		t.Errorf("only %d bodies tested", tested)
	}
	// Records of lena's after the first: socle's own (a stack applied, a
	// resource provisioned in the background) may come meanwhile.
	var page api.Page[api.AuditRecord]
	if err := client.New(f.url, f.tokens["lena"]).Get(t.Context(), "/api/v1/audit?limit=1000&actor=lena", &page); err != nil {
		t.Fatal(err)
	}
	for _, rec := range page.Items {
		if rec.Seq > before {
			t.Errorf("a refused body left an audit record: %+v", rec)
		}
	}
	// And what the document requires, the server requires.
	c := calls(api.Operations[slices.IndexFunc(api.Operations, func(op api.Operation) bool { return op.ID == "registerArtifact" })])[0]
	c.body = "{}"
	if code, body := f.doUnchecked(t, c, "lena"); code != http.StatusBadRequest || !strings.Contains(body, `field \"revision\" is required`) {
		t.Errorf("an artifact without its revision: %d %s, want 400", code, body)
	}
}

// doUnchecked sends c as user with a body the contract check lets through:
// the test means it to be wrong.
func (f *accessFixture) doUnchecked(t *testing.T, c call, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(apitest.Unchecked(t.Context()), c.op.Method, f.url+c.path, strings.NewReader(c.body))
	req.Header.Set("Authorization", "Bearer "+f.tokens[user])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStackApproveAccess checks who may approve a stack instance's plan,
// against the rule written out from the issue: edge, owned by
// guest-experience, in dev (developers deploy there: tom, ines) and in
// prod (approvers: ines); hub, in a zone and without an owner (admins
// only); lena is an admin. Those allowed reach the plan check (409: no
// plan waits), the others get 403 with the rule's words.
func TestStackApproveAccess(t *testing.T) {
	t.Parallel()
	repo := stackRepoBy(t, "Ann Example", "ann@example.com", map[string][2]string{
		"stacks/edge/stack.yaml": {"dependsOn: [hub]\n", "dependsOn: [hub]\nowner: guest-experience\n"}})
	r := start(t, repo, t.TempDir())
	t.Cleanup(r.stop)
	r.waitFor(t, "the platform in force", func(st Status) bool { return st.LastGood != nil })
	f := &accessFixture{running: r, tokens: map[string]string{}}
	for _, p := range people {
		if p != "" {
			tok, _, err := auth.Create(t.Context(), r.Store(), p, "access test", "test", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			f.tokens[p] = tok
		}
	}
	op := api.Operations[slices.IndexFunc(api.Operations, func(op api.Operation) bool { return op.ID == "approveStack" })]
	may := map[string][]string{
		"edge/dev":         {"tom", "ines", "lena"},
		"edge/prod":        {"ines", "lena"},
		"hub/connectivity": {"lena"},
	}
	for inst, allowed := range may {
		c := call{op: op, path: "/api/v1/stacks/" + inst + "/approvals", body: `{"plan": "sha256:0000"}`}
		for _, user := range people {
			code, _, body := f.do(t, c, user)
			switch {
			case user == "":
				if code != http.StatusUnauthorized {
					t.Errorf("%s without a token: %d", inst, code)
				}
			case slices.Contains(allowed, user):
				if code != http.StatusConflict {
					t.Errorf("%s as %s: %d %s, want 409 (allowed, no plan waits)", inst, user, code, body)
				}
			case code != http.StatusForbidden:
				t.Errorf("%s as %s: %d %s, want 403", inst, user, code, body)
			case user != "stranger" && !strings.Contains(body, "admin"):
				t.Errorf("%s as %s: 403 without the rule: %s", inst, user, body)
			}
		}
	}
	if code, _, body := f.do(t, call{op: op, path: "/api/v1/stacks/edge/prod/approvals", body: `{"plan": "p", "comment": "two\nlines"}`}, "lena"); code != http.StatusBadRequest {
		t.Errorf("a comment of two lines: %d %s, want 400", code, body)
	}
}
