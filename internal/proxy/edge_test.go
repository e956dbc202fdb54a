package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// echoHeaders is a backend that answers the headers named, one per line.
func echoHeaders(t *testing.T, names ...string) *app {
	return startServer(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for _, n := range names {
			io.WriteString(w, n+"="+strings.Join(r.Header.Values(n), "|")+"\n")
		}
	})
}

func do(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRequestID(t *testing.T) {
	p := newProxy(t, Options{})
	a := echoHeaders(t, "X-Request-Id")
	setRoute(t, p, "web.dev", a.backend(1, "v1"))
	c := front(t, p)
	ids := map[string]bool{}
	for range 3 {
		req, _ := http.NewRequest("GET", "http://web.dev.localhost/", nil)
		_, body := do(t, c, req)
		id := strings.TrimSpace(strings.TrimPrefix(body, "X-Request-Id="))
		if id == "" || strings.Contains(id, "|") {
			t.Fatalf("the app got X-Request-Id %q", id)
		}
		ids[id] = true
	}
	if len(ids) != 3 {
		t.Errorf("three requests, IDs %v", ids)
	}
	for in, want := range map[string]string{
		"client-42":                          "client-42",
		"has space":                          "",
		strings.Repeat("x", 129):             "",
		"quote\"d":                           "",
		strings.Repeat("y", maxRequestIDLen): strings.Repeat("y", maxRequestIDLen),
	} {
		req, _ := http.NewRequest("GET", "http://web.dev.localhost/", nil)
		req.Header.Set("X-Request-Id", in)
		_, body := do(t, c, req)
		got := strings.TrimSpace(strings.TrimPrefix(body, "X-Request-Id="))
		switch {
		case want != "" && got != want:
			t.Errorf("client's ID %q: the app got %q", in, got)
		case want == "" && (got == in || got == "" || strings.Contains(got, "|")):
			t.Errorf("client's unsound ID %q: the app got %q, want one of the proxy's", in, got)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	names := []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted client", nil, "X-Forwarded-For=127.0.0.1\nX-Forwarded-Proto=http\nX-Forwarded-Host=web.dev.localhost\n"},
		{"other proxy trusted", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "X-Forwarded-For=127.0.0.1\nX-Forwarded-Proto=http\nX-Forwarded-Host=web.dev.localhost\n"},
		{"trusted load balancer", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "X-Forwarded-For=203.0.113.7, 127.0.0.1\nX-Forwarded-Proto=https\nX-Forwarded-Host=www.example.com\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, Options{TrustedProxies: tc.trusted})
			setRoute(t, p, "web.dev", echoHeaders(t, names...).backend(1, "v1"))
			req, _ := http.NewRequest("GET", "http://web.dev.localhost/", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-Host", "www.example.com")
			if _, got := do(t, front(t, p), req); got != tc.want {
				t.Errorf("the app got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestMaxRequestBody(t *testing.T) {
	var mu sync.Mutex
	var whole []int // sizes of the bodies the app read in full
	a := startServer(t, "app", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		mu.Lock()
		whole = append(whole, len(b))
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	const limit = 100 << 10 // above the bodies kept in memory (64 KiB): both paths
	p := newProxy(t, Options{MaxRequestBody: limit})
	setRoute(t, p, "web.dev", a.backend(1, "v1"))
	addr := serve(t, p)
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"declared under", 1000, false, 200},
		{"declared at", limit, false, 200},
		{"declared over", limit + 1, false, 413},
		{"chunked small", 1000, true, 200},
		{"chunked at", limit, true, 200},
		{"chunked over", 2 * limit, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			whole = nil
			mu.Unlock()
			c := &http.Client{Transport: &http.Transport{Dial: func(string, string) (net.Conn, error) { return net.Dial("tcp", addr) }}}
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("a"), tc.size))
			if tc.chunked {
				body = io.MultiReader(body) // no length: chunked
			}
			req, _ := http.NewRequest("POST", "http://web.dev.localhost/", body)
			status, _ := do(t, c, req)
			if status != tc.want {
				t.Errorf("status %d, want %d", status, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.want == 200 && (len(whole) != 1 || whole[0] != tc.size) {
				t.Errorf("the app read bodies %v, want one of %d bytes", whole, tc.size)
			}
			if tc.want == 413 && len(whole) != 0 {
				t.Errorf("the app read a body of %v bytes over the limit", whole)
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	p := newProxy(t, Options{AccessLog: slog.New(slog.NewJSONHandler(&buf, nil)), AccessLogEvery: 3})
	a := echoHeaders(t, "X-Request-Id")
	setRoute(t, p, "web.dev", a.backend(1, "v1"))
	c := front(t, p)
	seen := map[string]bool{}
	for range 9 {
		req, _ := http.NewRequest("GET", "http://web.dev.localhost/x", nil)
		_, body := do(t, c, req)
		seen[strings.TrimSpace(strings.TrimPrefix(body, "X-Request-Id="))] = true
	}
	// Errors are always logged: a host no route serves (404 is not one),
	// and a route whose backend is gone.
	dead := startServer(t, "dead", nil)
	setRoute(t, p, "gone.dev", dead.backend(1, "v1"))
	dead.Close()
	for range 2 {
		req, _ := http.NewRequest("GET", "http://gone.dev.localhost/y", nil)
		if status, _ := do(t, c, req); status < 500 {
			t.Fatalf("a dead backend answered %d", status)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lines = append(lines, m)
	}
	ok, failed := 0, 0
	for _, m := range lines {
		switch m["route"] {
		case "web.dev":
			ok++
			if m["status"] != 200.0 || m["path"] != "/x" || m["backend"] != "echo" || !seen[m["request_id"].(string)] {
				t.Errorf("line %v: want status 200, path /x, backend echo, a request ID the app got (%v)", m, seen)
			}
		case "gone.dev":
			failed++
			if s, _ := m["status"].(float64); s < 500 {
				t.Errorf("line %v: want a 5xx", m)
			}
		}
	}
	if ok != 3 || failed != 2 {
		t.Errorf("%d lines of answered requests (want 3: one in 3 of 9) and %d of failed ones (want 2: all)\n%s", ok, failed, buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the proxy's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
