package apitest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestTransport sends requests through the checking transport to a server
// that answers what each case says, and looks at what is reported.
func TestTransport(t *testing.T) {
	var answer struct {
		sync.Mutex
		status int
		ct     string
		body   string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer.Lock()
		defer answer.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", answer.ct)
		w.WriteHeader(answer.status)
		io.WriteString(w, answer.body)
	}))
	defer srv.Close()
	var reported []string
	hc := &http.Client{Transport: &transport{next: http.DefaultTransport, report: func(*http.Request) func(string, ...any) {
		return func(format string, args ...any) { reported = append(reported, fmt.Sprintf(format, args...)) }
	}}}
	const json = "application/json"
	for _, tc := range []struct {
		name, method, path, reqBody string
		unchecked                   bool
		status                      int
		ct, body                    string
		want                        string // in what is reported; "" for nothing
	}{
		{"a valid answer", "GET", "/api/v1/me", "", false, 200, json, `{"user": "ann", "teams": [], "admin": false}`, ""},
		{"a field of the wrong type", "GET", "/api/v1/me", "", false, 200, json, `{"user": 5, "teams": [], "admin": false}`, "got number, want string"},
		{"a required field missing", "GET", "/api/v1/me", "", false, 200, json, `{"user": "ann", "admin": false}`, "missing property 'teams'"},
		{"a status not documented", "GET", "/api/v1/me", "", false, 418, json, `{"error": {"code": "x", "message": "y"}}`, "status 418"},
		{"an error body not an Error", "GET", "/api/v1/me", "", false, 401, json, `{"message": "no"}`, "missing property 'error'"},
		{"a content type not documented", "GET", "/api/v1/me", "", false, 200, "text/html", `<p>`, `content type "text/html"`},
		{"a request body with an unknown field", "POST", "/api/v1/apps/web/promote", `{"to": "prod", "unknwon": 1}`, false, 409, json, `{"error": {"code": "blocked", "message": "m"}}`, "additional properties 'unknwon'"},
		{"the same, meant", "POST", "/api/v1/apps/web/promote", `{"to": "prod", "unknwon": 1}`, true, 400, json, `{"error": {"code": "bad_request", "message": "m"}}`, ""},
		{"not the API", "GET", "/static/app.css", "", false, 200, "text/css", `p{}`, ""},
		{"a raw answer", "GET", "/healthz", "", false, 200, "text/plain", "ok\n", ""},
	} {
		answer.Lock()
		answer.status, answer.ct, answer.body = tc.status, tc.ct, tc.body
		answer.Unlock()
		reported = nil
		ctx := context.Background()
		if tc.unchecked {
			ctx = Unchecked(ctx)
		}
		var body io.Reader
		if tc.reqBody != "" {
			body = strings.NewReader(tc.reqBody)
		}
		req, _ := http.NewRequestWithContext(ctx, tc.method, srv.URL+tc.path, body)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != tc.body {
			t.Errorf("%s: the body read after the check is %q, want %q", tc.name, got, tc.body)
		}
		all := strings.Join(reported, "\n")
		switch {
		case tc.want == "" && all != "":
			t.Errorf("%s: reported\n%s", tc.name, all)
		case tc.want != "" && !strings.Contains(all, tc.want):
			t.Errorf("%s: reported %q, want it to say %q", tc.name, all, tc.want)
		}
	}
}
