package spec

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// routeClaim is a host and path prefix an app's route takes in an
// environment, with where it is declared.
type routeClaim struct {
	env, host, prefix, app string
	at                     Problem // the declaration's position, no message
}

// claimHost is the host a claim is on: the app's own is named after it.
func claimHost(app, host string) string { return cmp.Or(host, "<"+app+">") }

// checkRoutes checks an app's routes (socle.yaml routes and the
// environments' overrides) and records the hosts and prefixes they claim
// in each environment the app runs in.
func (l *loading) checkRoutes(a *App) {
	file := path.Join(AppsDir, a.Name, AppFile)
	var ports []string
	if a.Workload != nil && a.Workload.Service != nil {
		ports = slices.Sorted(maps.Keys(a.Workload.Service.Ports))
	}
	check := func(rs []Route, at ...string) {
		for i, r := range rs {
			at := append(slices.Clone(at), idx(i))
			if len(ports) == 0 {
				l.at(file, fmt.Sprintf("a route, but the workload (%s) has no service port to route to", ScoreFile), at...)
				continue
			}
			if r.Host != "" {
				if err := validHost(r.Host); err != nil {
					l.at(file, fmt.Sprintf("host %q: %v", r.Host, err), append(at, "host")...)
				}
			}
			if r.Path != "" {
				if err := validPathPrefix(r.Path); err != nil {
					l.at(file, fmt.Sprintf("path %q: %v", r.Path, err), append(at, "path")...)
				}
			}
			if r.Port != "" && !slices.Contains(ports, r.Port) {
				l.at(file, fmt.Sprintf("port %q: the workload's service has no such port (it has %s)", r.Port, strings.Join(ports, ", ")), append(at, "port")...)
			}
			if r.Strip && strings.TrimSuffix(r.Path, "/") == "" {
				l.at(file, "strip needs a path prefix to strip", append(at, "strip")...)
			}
			if r.Host == "" && strings.TrimSuffix(r.Path, "/") == "" {
				l.at(file, "a route with neither host nor path is the app's own host: give one or the other", at...)
			}
		}
	}
	check(a.Config.Routes, "routes")
	for _, env := range slices.Sorted(maps.Keys(a.Config.Environments)) {
		if o := a.Config.Environments[env]; o.Routes != nil {
			check(*o.Routes, "environments", env, "routes")
		}
	}
	if len(ports) == 0 {
		return
	}
	var claims []routeClaim
	for _, e := range l.repo.Platform.Environments {
		if !a.EnabledIn(e.Name) {
			continue
		}
		at := []string{"routes"}
		if o := a.Config.Environments[e.Name]; o.Routes != nil {
			at = []string{"environments", e.Name, "routes"}
		}
		if rs := a.RoutesIn(e.Name); len(rs) > 0 && e.Runtime.Type != RuntimeLocal {
			l.warn(file, fmt.Sprintf("environment %s runs on %s, whose apps socle's proxy does not serve: these routes do nothing there yet", e.Name, e.Runtime.Type), at...)
		}
		for i, r := range a.RoutesIn(e.Name) {
			p := l.problemAt(file, "", append(slices.Clone(at), idx(i))...)
			claims = append(claims, routeClaim{env: e.Name, host: claimHost(a.Name, r.Host), prefix: strings.TrimSuffix(r.Path, "/"), app: a.Name, at: p})
		}
	}
	root := l
	for root.report != nil {
		root = root.report
	}
	root.mu.Lock()
	root.routeClaims = append(root.routeClaims, claims...)
	root.mu.Unlock()
}

// checkRouteClaims reports each host and path prefix that two routes of
// an environment claim, naming both declarations.
func (l *loading) checkRouteClaims() {
	cs := l.routeClaims
	slices.SortStableFunc(cs, func(a, b routeClaim) int {
		return cmp.Or(cmp.Compare(a.env, b.env), cmp.Compare(a.host, b.host), cmp.Compare(a.prefix, b.prefix),
			cmp.Compare(a.at.File, b.at.File), cmp.Compare(a.at.Line, b.at.Line))
	})
	for i := 1; i < len(cs); i++ {
		a, b := cs[i-1], cs[i]
		if a.env != b.env || a.host != b.host || a.prefix != b.prefix {
			continue
		}
		what := fmt.Sprintf("host %s", a.host)
		if a.prefix != "" {
			what += " and path " + a.prefix
		}
		p := b.at
		p.Message = fmt.Sprintf("in %s, %s is also routed to %s by %s:%d", b.env, what, a.app, a.at.File, a.at.Line)
		if a.app != b.app {
			p.Message = fmt.Sprintf("in %s, %s is routed to both %s (%s:%d) and %s: two apps cannot share a host and path", b.env, what, a.app, a.at.File, a.at.Line, b.app)
		}
		l.add(p)
	}
	l.checkRouteHosts(cs)
}

// checkRouteHosts reports the hosts that would let an app take another's
// traffic: a host of socle's own naming ("<app>.<env>." or
// "<port>.<app>.<env>." then the proxy's domain) for another app or
// environment of the repository, and a host and path that two apps claim
// in different environments (socle's proxy serves every environment's
// hosts from one table).
func (l *loading) checkRouteHosts(cs []routeClaim) {
	apps, envs := map[string]bool{}, map[string]bool{}
	for _, a := range l.repo.Apps {
		apps[a.Name] = true
	}
	for _, e := range l.repo.Platform.Environments {
		envs[e.Name] = true
	}
	explicit := slices.DeleteFunc(slices.Clone(cs), func(c routeClaim) bool { return strings.HasPrefix(c.host, "<") })
	for _, c := range explicit {
		labels := strings.Split(c.host, ".")
		for i := 0; i <= 1 && i+2 < len(labels); i++ {
			app, env := labels[i], labels[i+1]
			if apps[app] && envs[env] && (app != c.app || env != c.env) {
				p := c.at
				p.Message = fmt.Sprintf("in %s, host %s is socle's host of app %s in %s: an app's routes cannot take another app's or environment's host", c.env, c.host, app, env)
				l.add(p)
				break
			}
		}
	}
	slices.SortStableFunc(explicit, func(a, b routeClaim) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.prefix, b.prefix), cmp.Compare(a.app, b.app), cmp.Compare(a.env, b.env))
	})
	for i := 1; i < len(explicit); i++ {
		a, b := explicit[i-1], explicit[i]
		if a.host != b.host || a.prefix != b.prefix || a.app == b.app || a.env == b.env {
			continue // the same environment is reported above
		}
		what := fmt.Sprintf("host %s", a.host)
		if a.prefix != "" {
			what += " and path " + a.prefix
		}
		p := b.at
		p.Message = fmt.Sprintf("%s is routed to %s in %s (%s:%d) and to %s in %s: two apps cannot share a host and path, in any environments", what, a.app, a.env, a.at.File, a.at.Line, b.app, b.env)
		l.add(p)
	}
}

// validHost accepts a lowercase DNS name.
func validHost(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	for _, l := range strings.Split(h, ".") {
		ok := l != "" && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-'
		for _, c := range []byte(l) {
			ok = ok && ('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-')
		}
		if !ok {
			return fmt.Errorf("label %q: want 1 to 63 of a-z, 0-9 and inner - (a host name, lowercase, without port)", l)
		}
	}
	return nil
}

// validPathPrefix is what socle's proxy takes as a path prefix
// (proxy.ValidPathPrefix, which spec does not import).
func validPathPrefix(p string) error {
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
