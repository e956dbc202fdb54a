package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestHostsAndPrefixes: routes reached on more hosts and under path
// prefixes, the longest prefix first, optionally stripped, with the
// route's own host kept.
func TestHostsAndPrefixes(t *testing.T) {
	echo := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(name + " " + r.RequestURI + " " + r.Header.Get("X-Forwarded-Prefix")))
		}
	}
	web := startServer(t, "web", echo("web"))
	api := startServer(t, "api", echo("api"))
	admin := startServer(t, "admin", echo("admin"))
	p := newProxy(t, Options{})
	set := func(name string, b Backend, hosts ...HostRoute) {
		t.Helper()
		if err := p.SetRoute(t.Context(), Route{Name: name, Backends: []Backend{b}, Health: HealthCheck{Path: "/healthz"}, Hosts: hosts}); err != nil {
			t.Fatal(err)
		}
	}
	set("web.prod", web.backend(1, "v1"), HostRoute{Host: "shop.example.com"}, HostRoute{Host: "www.shop.example.com"})
	set("api.prod", api.backend(1, "v1"), HostRoute{Host: "shop.example.com", PathPrefix: "/api", Strip: true})
	set("admin.prod", admin.backend(1, "v1"), HostRoute{Host: "shop.example.com", PathPrefix: "/api/admin"},
		HostRoute{PathPrefix: "/console"}) // on its own host: only /console… is it
	c := front(t, p)

	for _, tt := range []struct{ url, want string }{
		{"http://shop.example.com/", "web / "},
		{"http://SHOP.example.com.:8080/cart?x=1", "web /cart?x=1 "},
		{"http://www.shop.example.com/a", "web /a "},
		{"http://shop.example.com/api", "api / /api"},
		{"http://shop.example.com/api/orders?id=7", "api /orders?id=7 /api"},
		{"http://shop.example.com/apiary", "web /apiary "}, // segment by segment
		{"http://shop.example.com/api/admin/users", "admin /api/admin/users "},
		{"http://shop.example.com/api/administrators", "api /administrators /api"},
		{"http://api.prod.localhost/api/x", "api /api/x "}, // its own host: as it was
		{"http://admin.prod.localhost/console/x", "admin /console/x "},
		{"http://admin.prod.localhost/other", "admin /other "},
	} {
		if status, body := get(t, c, tt.url); status != 200 || body != tt.want {
			t.Errorf("%s: %d %q, want %q", tt.url, status, body, tt.want)
		}
	}
	// A client's own X-Forwarded-Prefix does not reach the app.
	req, _ := http.NewRequest(http.MethodGet, "http://shop.example.com/x", nil)
	req.Header.Set("X-Forwarded-Prefix", "/evil")
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b := make([]byte, 100)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if string(b[:n]) != "web /x " {
			t.Errorf("with a client's X-Forwarded-Prefix: %q", b[:n])
		}
	}
	if status, _ := get(t, c, "http://other.example.com/"); status != 404 {
		t.Errorf("unknown host: %d", status)
	}
	// A pause of the api holds it under its prefix too; web still serves.
	setPauses(t, p, Pause{Scope: "api.prod"})
	if status, _ := get(t, c, "http://shop.example.com/api/x"); status != 503 {
		t.Errorf("paused api under /api: %d", status)
	}
	if status, _ := get(t, c, "http://shop.example.com/x"); status != 200 {
		t.Errorf("web beside a paused api: %d", status)
	}
	setPauses(t, p)
	// Removing the route takes its prefix away: /api goes to web.
	if err := p.DeleteRoute(t.Context(), "api.prod"); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, c, "http://shop.example.com/api/x"); body != "web /api/x " {
		t.Errorf("after api's route is gone: %q", body)
	}
	if got, _ := p.Route("admin.prod"); len(got.Hosts) != 2 {
		t.Errorf("Route: hosts %+v", got.Hosts)
	}
}

// TestHostsCannotTakeOverARoute: another app's Hosts naming a route's own
// host (<app>.<env> under the domain), whole or under a prefix, do not
// take it over while that route exists; the app's own port routes may
// split its host by path.
func TestHostsCannotTakeOverARoute(t *testing.T) {
	echo := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(name)) }
	}
	pay := startServer(t, "payments", echo("payments"))
	evil := startServer(t, "evil", echo("evil"))
	metrics := startServer(t, "metrics", echo("metrics"))
	p := newProxy(t, Options{})
	set := func(name string, b Backend, hosts ...HostRoute) {
		t.Helper()
		if err := p.SetRoute(t.Context(), Route{Name: name, Backends: []Backend{b}, Health: HealthCheck{Path: "/healthz"}, Hosts: hosts}); err != nil {
			t.Fatal(err)
		}
	}
	set("evil.dev", evil.backend(1, "v1"), HostRoute{Host: "payments.prod.localhost"}, HostRoute{Host: "payments.prod.localhost", PathPrefix: "/login"})
	c := front(t, p)
	// No route payments.prod yet: the host is evil's to claim (validate
	// refuses a host of another app and environment of the repository).
	if _, body := get(t, c, "http://payments.prod.localhost/"); body != "evil" {
		t.Fatalf("before payments.prod exists: %q", body)
	}
	set("payments.prod", pay.backend(1, "v1"))
	set("metrics.payments.prod", metrics.backend(1, "v1"), HostRoute{Host: "payments.prod.localhost", PathPrefix: "/metrics"})
	for url, want := range map[string]string{
		"http://payments.prod.localhost/":          "payments",
		"http://payments.prod.localhost/login/x":   "payments",
		"http://payments.prod.localhost/metrics/a": "metrics", // its own port's route
		"http://evil.dev.localhost/":               "evil",
	} {
		if status, body := get(t, c, url); status != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", url, status, body, want)
		}
	}
}

func TestInvalidHostRoutes(t *testing.T) {
	p := newProxy(t, Options{})
	ok := Backend{ID: "a", Addr: "127.0.0.1:1", Weight: 1}
	for _, h := range []HostRoute{
		{Host: "Shop.example.com"}, {Host: "shop..example.com"}, {Host: "shop.example.com:80"},
		{PathPrefix: "api"}, {PathPrefix: "/api/"}, {PathPrefix: "/a//b"}, {PathPrefix: "/a/../b"}, {PathPrefix: "/a b"}, {PathPrefix: "/a?b"},
	} {
		if err := p.SetRoute(t.Context(), Route{Name: "web.dev", Backends: []Backend{ok}, Hosts: []HostRoute{h}}); err == nil {
			t.Errorf("%+v: accepted", h)
		}
	}
}

// TestHostsAndPauseOverHTTP2: HTTP/2 requests (through net/http's server
// and the ReverseProxy) are routed by host and prefix, stripped, and
// answered with the maintenance page, as the HTTP/1.1 loop does.
func TestHostsAndPauseOverHTTP2(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writeCert(t, dir, "shop.example.com", 2)
	p := newProxy(t, Options{TLS: &TLSOptions{CertDir: dir}})
	web := startServer(t, "web", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("web " + r.URL.RequestURI()))
	})
	api := startServer(t, "api", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("api " + r.URL.RequestURI() + " " + r.Header.Get("X-Forwarded-Prefix")))
	})
	for _, rt := range []Route{
		{Name: "web.prod", Backends: []Backend{web.backend(1, "v1")}, Hosts: []HostRoute{{Host: "shop.example.com"}}},
		{Name: "api.prod", Backends: []Backend{api.backend(1, "v1")}, Hosts: []HostRoute{{Host: "shop.example.com", PathPrefix: "/api", Strip: true}}},
	} {
		rt.Health = HealthCheck{Path: "/healthz"}
		if err := p.SetRoute(t.Context(), rt); err != nil {
			t.Fatal(err)
		}
	}
	c := tlsClient(serveTLS(t, p), ca.pool, true)
	fetch := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Errorf("%s: %s, want HTTP/2", url, resp.Proto)
		}
		return resp, string(b)
	}
	for url, want := range map[string]string{
		"https://shop.example.com/cart":              "web /cart",
		"https://shop.example.com/api/orders?id=%2F": "api /orders?id=%2F /api",
		"https://shop.example.com/api":               "api / /api",
	} {
		if resp, body := fetch(url); resp.StatusCode != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", url, resp.StatusCode, body, want)
		}
	}
	setPauses(t, p, Pause{Scope: "api.prod", Message: "api <down>", RetryAfter: 60})
	resp, body := fetch("https://shop.example.com/api/orders")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "60" || !strings.Contains(body, "api &lt;down&gt;") {
		t.Errorf("paused api over HTTP/2: %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := fetch("https://shop.example.com/"); resp.StatusCode != 200 || body != "web /" {
		t.Errorf("web beside it: %d %q", resp.StatusCode, body)
	}
}
