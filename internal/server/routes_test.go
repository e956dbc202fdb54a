package server

import (
	"strings"
	"testing"
)

// TestAppRoutes: routes declared in an app's socle.yaml reach it through
// socle's proxy on another host and under a stripped path prefix, beside
// its own host; a commit in which two apps claim the same host and path
// does not validate, with both declarations named, and what runs stays.
func TestAppRoutes(t *testing.T) {
	repo, data := gitRepo(t), t.TempDir()
	r := start(t, repo, data)
	defer r.stop()
	pc := proxyClient(r.ProxyAddr())
	serves := func(url, want string) func(Status) bool {
		return func(Status) bool {
			a, err := fetch(pc, url)
			return err == nil && a.status == 200 && strings.Contains(a.body, want)
		}
	}
	r.waitFor(t, "web in dev", serves("http://web.dev.localhost/readyz", "ready"))

	canary := "rollout:\n  strategy: canary\n  steps:\n    - {weight: 10, pause: 30s}\n    - {weight: 50, pause: 30s}\n  analysis: {maxErrorRate: 0.01, maxP95: 300ms, minRequests: 20}\n"
	commit(t, repo, "apps/web/socle.yaml", canary,
		"rollout: {strategy: rolling}\nroutes:\n  - {host: shop.localhost}\n  - {host: shop.localhost, path: /store, strip: true}\n", "web: on shop.localhost, and under /store")
	r.hook(t)
	r.waitFor(t, "web under shop.localhost/store", serves("http://shop.localhost/store/readyz", "ready"))
	for url, want := range map[string]string{
		"http://shop.localhost/healthz":      "ok",       // the host alone
		"http://shop.localhost:8080/store":   "(version", // the prefix, stripped to /
		"http://web.dev.localhost/healthz":   "ok",       // its own host still
		"http://shop.localhost/storefront/x": "(version", // not under /store: web's / answers
	} {
		if a, err := fetch(pc, url); err != nil || a.status != 200 || !strings.Contains(a.body, want) {
			t.Errorf("%s: %+v %v, want 200 with %q", url, a, err, want)
		}
	}

	// api claims web's host and prefix: refused, naming both files.
	commit(t, repo, "apps/api/socle.yaml", "replicas: {min: 2, max: 6}\n",
		"replicas: {min: 2, max: 6}\nroutes:\n  - {host: shop.localhost, path: /store}\n", "api: on shop.localhost/store too")
	r.hook(t)
	st := r.waitFor(t, "the clash to be reported", func(st Status) bool { return st.Failing != nil })
	found := false
	for _, p := range st.Failing.Problems {
		if p.File == "apps/web/socle.yaml" || p.File == "apps/api/socle.yaml" {
			found = found || strings.Contains(p.Message, "host shop.localhost and path /store is routed to both") &&
				strings.Contains(p.Message, "apps/") && p.Line > 0
		}
	}
	if !found {
		t.Errorf("problems: %+v, want the clash of api and web on shop.localhost/store", st.Failing.Problems)
	}
	if a, err := fetch(pc, "http://shop.localhost/store/readyz"); err != nil || a.status != 200 {
		t.Errorf("web under /store after a refused revision: %+v %v", a, err)
	}
}
