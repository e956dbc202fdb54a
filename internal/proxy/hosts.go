package proxy

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// HostRoute is one more way a route is reached besides its own host
// (<name>.<domain>): requests for Host whose path is PathPrefix or under
// it. The proxy picks, for a request's host, the route with the longest
// prefix that matches its path, segment by segment ("/api" matches
// "/api" and "/api/x", not "/apix"); a host with no matching prefix falls
// back to the route its name gives, if any.
type HostRoute struct {
	// Host is a host name, lowercase, without port; empty: the route's own
	// host.
	Host string `json:"host,omitempty"`
	// PathPrefix starts with "/"; "/" or empty: every path.
	PathPrefix string `json:"pathPrefix,omitempty"`
	// Strip removes PathPrefix from the path before the request reaches
	// the backend ("/api/x" arrives as "/x"), and sets X-Forwarded-Prefix
	// to it.
	Strip bool `json:"strip,omitempty"`
}

// validate reports what is wrong with h.
func (h HostRoute) validate() error {
	if h.Host != "" {
		if len(h.Host) > 253 || strings.Count(h.Host, ".") > 126 {
			return fmt.Errorf("host %q: too long", h.Host)
		}
		for l := range strings.SplitSeq(h.Host, ".") {
			if err := validLabel(l); err != nil {
				return fmt.Errorf("host %q: %w", h.Host, err)
			}
		}
	}
	if h.PathPrefix != "" {
		if err := ValidPathPrefix(h.PathPrefix); err != nil {
			return fmt.Errorf("path prefix %q: %w", h.PathPrefix, err)
		}
	}
	return nil
}

// ValidPathPrefix reports what is wrong with a path prefix of a
// [HostRoute]: it starts with "/", does not end with "/" (but for "/"
// itself), and holds only the characters of a URL path, with no empty,
// "." or ".." segment.
func ValidPathPrefix(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with /")
	}
	if p == "/" {
		return nil
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("must not end with / (it matches the path and what is under it)")
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("segment %q: want a name", seg)
		}
	}
	for _, c := range []byte(p) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("/-._~%!$&'()*+,;=:@", c) >= 0) {
			return fmt.Errorf("character %q: want those of a URL path", c)
		}
	}
	return nil
}

// prefixRoute is a path prefix of a host, as the hot path sees it.
type prefixRoute struct {
	prefix string // "" for every path
	strip  bool
	entry  *routeEntry
}

// indexHosts builds the host index of a table: for each host, its
// prefixes, longest first (ties: by route name, so that the index does
// not depend on map order).
func indexHosts(routes map[string]*routeEntry, domainSuffix string) map[string][]prefixRoute {
	var out map[string][]prefixRoute
	for _, name := range slices.Sorted(maps.Keys(routes)) {
		e := routes[name]
		for _, h := range e.config.Hosts {
			host := cmp.Or(h.Host, name+domainSuffix)
			prefix := strings.TrimSuffix(h.PathPrefix, "/")
			if out == nil {
				out = map[string][]prefixRoute{}
			}
			out[host] = append(out[host], prefixRoute{prefix: prefix, strip: h.Strip && prefix != "", entry: e})
		}
	}
	for _, ps := range out {
		slices.SortStableFunc(ps, func(a, b prefixRoute) int { return len(b.prefix) - len(a.prefix) })
	}
	return out
}

// newTable returns a table of routes and pauses, with its host index.
func (p *Proxy) newTable(routes map[string]*routeEntry, pauses map[string]*pausePage) *table {
	return &table{routes: routes, pauses: pauses, hosts: indexHosts(routes, p.domainSuffix)}
}

// match returns the host route that serves a request for host (lowercase,
// without port or trailing dot) with path (as sent, up to the query), nil
// when none does.
func (t *table) match(host, path string) *prefixRoute {
	for i, pr := range t.hosts[host] {
		if pr.prefix == "" || strings.HasPrefix(path, pr.prefix) && (len(path) == len(pr.prefix) || path[len(pr.prefix)] == '/') {
			return &t.hosts[host][i]
		}
	}
	return nil
}

// hostOf returns a Host header's host: without port and trailing dot,
// lowercased.
func hostOf(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// requestPath returns the path of r as sent, without the query.
func requestPath(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		return r.URL.EscapedPath()
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i]
	}
	return uri
}

// stripPrefix makes r's target its path without prefix, keeping the
// query, and says so in X-Forwarded-Prefix.
func stripPrefix(r *http.Request, path, prefix string) {
	rest := path[len(prefix):]
	if rest == "" {
		rest = "/"
	}
	if p, err := url.PathUnescape(rest); err == nil {
		r.URL.Path, r.URL.RawPath = p, rest // what HTTP/2's ReverseProxy sends
	}
	if r.URL.RawQuery != "" {
		rest += "?" + r.URL.RawQuery
	}
	r.RequestURI = rest // what the HTTP/1.1 loop sends
	r.Header["X-Forwarded-Prefix"] = []string{prefix}
}

// lookup returns the route that serves r, and its name (nil when none):
// the longest path prefix of r's host among the routes' Hosts (stripped
// from r if the route says so), or else the route named by the host. A
// client's X-Forwarded-Prefix is dropped unless it is a trusted proxy.
func (p *Proxy) lookup(t *table, r *http.Request, trusted bool) (string, *routeEntry) {
	if !trusted {
		delete(r.Header, "X-Forwarded-Prefix") // the proxy's to say, when it strips one
	}
	host := hostOf(r.Host)
	name, ok := p.nameOf(host)
	if t.hosts != nil {
		path := requestPath(r)
		if pr := t.match(host, path); pr != nil && (!ok || t.routes[name] == nil || sameUnit(pr.entry.config.Name, name)) {
			if pr.strip {
				stripPrefix(r, path, pr.prefix)
			}
			return pr.entry.config.Name, pr.entry
		}
	}
	if !ok {
		return name, nil
	}
	return name, t.routes[name]
}

// sameUnit reports whether route is own or another port's route of the
// same app and environment ("<port>.<own>"). A host that names a route of
// socle's ("<app>.<env>" under the domain) is that route's: another app's
// Hosts cannot take it over, only the app's own routes may split it by
// path.
func sameUnit(route, own string) bool {
	return route == own || strings.HasSuffix(route, "."+own)
}
