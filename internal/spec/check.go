package spec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// check verifies what a schema cannot: names that refer to each other, the
// shape of the promotion line, and values whose form is richer than a pattern.
// names are the sets of names that files refer to.
type names struct{ zones, envs, notify, teams map[string]bool }

// collectNames gathers the names defined by socle.yaml and teams.yaml,
// reporting duplicates; apps are checked against them as they load.
func (l *loading) collectNames() {
	r := l.repo
	l.names = names{
		zones:  l.unique(PlatformFile, "zones", len(r.Platform.Zones), func(i int) string { return r.Platform.Zones[i].Name }),
		envs:   l.unique(PlatformFile, "environments", len(r.Platform.Environments), func(i int) string { return r.Platform.Environments[i].Name }),
		notify: l.unique(PlatformFile, "notifications", len(r.Platform.Notifications), func(i int) string { return r.Platform.Notifications[i].Name }),
		teams:  l.unique(TeamsFile, "teams", len(r.Teams.Teams), func(i int) string { return r.Teams.Teams[i].Name }),
	}
}

func (l *loading) check() {
	r := l.repo
	zones, envs, notify, teams := l.names.zones, l.names.envs, l.names.notify, l.names.teams
	apps := map[string]bool{}
	for _, a := range r.Apps {
		apps[a.Name] = true
	}

	l.checkEnvironments(zones, envs, notify)
	l.checkStacks()
	l.checkProvisioners()
	l.checkServicePorts()
	l.checkSharedResources()
	l.checkRuntimes()
	l.checkPromotionLine()
	for i, f := range r.Platform.Freezes {
		for j, e := range f.Environments {
			l.ref(PlatformFile, "environment", e, envs, "freezes", idx(i), "environments", idx(j))
		}
		for _, t := range []struct {
			v    Time
			name string
		}{{f.Start, "start"}, {f.End, "end"}} {
			if t.v.err != nil {
				l.at(PlatformFile, t.v.err.Error(), "freezes", idx(i), t.name)
			}
		}
		if f.Start.err == nil && f.End.err == nil && !f.End.After(f.Start.Time) {
			l.at(PlatformFile, "the end must be after the start", "freezes", idx(i), "end")
		}
	}
	for i, n := range r.Platform.Notifications {
		if (n.URL == "") == (n.URLFromEnv == "") {
			l.at(PlatformFile, "expected exactly one of url or urlFromEnv", "notifications", idx(i))
		}
	}
	l.checkReplicas(PlatformFile, r.Platform.Defaults.Replicas, "defaults", "replicas")
	l.checkRollout(PlatformFile, r.Platform.Defaults.Rollout, "defaults", "rollout")
	if c := r.Platform.Costs; c != nil {
		for i, rule := range c.Rules {
			base := []string{"costs", "rules", idx(i), "set"}
			l.refOpt(PlatformFile, "team", rule.Set.Team, teams, append(base, "team")...)
			l.refOpt(PlatformFile, "app", rule.Set.App, apps, append(base, "app")...)
			l.refOpt(PlatformFile, "environment", rule.Set.Environment, envs, append(base, "environment")...)
			l.refOpt(PlatformFile, "zone", rule.Set.Zone, zones, append(base, "zone")...)
			if rule.Set == (Allocation{}) && len(rule.Split) == 0 {
				l.at(PlatformFile, "a rule allocates with set, split or both", "costs", "rules", idx(i))
			}
			if len(rule.Split) == 1 {
				l.at(PlatformFile, "a split needs two shares or more (one share is what set says)", "costs", "rules", idx(i), "split")
			}
			for j, sh := range rule.Split {
				at := []string{"costs", "rules", idx(i), "split", idx(j)}
				l.refOpt(PlatformFile, "team", sh.Team, teams, append(at, "team")...)
				l.refOpt(PlatformFile, "app", sh.App, apps, append(at, "app")...)
				l.refOpt(PlatformFile, "environment", sh.Environment, envs, append(at, "environment")...)
				l.refOpt(PlatformFile, "zone", sh.Zone, zones, append(at, "zone")...)
				if sh.Weight < 1 {
					l.at(PlatformFile, fmt.Sprintf("expected a weight of 1 or more, found %d", sh.Weight), append(at, "weight")...)
				}
			}
		}
	}

	// teams.yaml: a user has one email wherever they appear.
	emails := map[string]string{}
	for i, t := range r.Teams.Teams {
		seen := map[string]bool{}
		for j, m := range t.Members {
			if seen[m.User] {
				l.at(TeamsFile, fmt.Sprintf("user %q is listed twice in team %q", m.User, t.Name), "teams", idx(i), "members", idx(j), "user")
			}
			seen[m.User] = true
			if m.Email == "" {
				continue
			}
			if e, ok := emails[m.User]; ok && e != m.Email {
				l.at(TeamsFile, fmt.Sprintf("user %q has email %q here and %q elsewhere", m.User, m.Email, e), "teams", idx(i), "members", idx(j), "email")
			}
			emails[m.User] = m.Email
		}
	}

	for env, rel := range r.Releases {
		file := path.Join(ReleasesDir, env+".yaml")
		e := r.Environment(env)
		switch {
		case e == nil:
			l.at(file, fmt.Sprintf("no environment %q in socle.yaml%s", env, known(envs)), "environment")
		case e.Sync == SyncAuto:
			l.warn(file, fmt.Sprintf("environment %q syncs automatically and ignores pinned releases", env), "environment")
		}
		for _, name := range slices.Sorted(maps.Keys(rel.Apps)) {
			pin := rel.Apps[name]
			if !apps[name] {
				l.atKey(file, name, fmt.Sprintf("pins app %q, which does not exist under apps/", name), "apps")
			}
			if pin.PromotedAt != nil && pin.PromotedAt.err != nil {
				l.at(file, pin.PromotedAt.err.Error(), "apps", name, "promotedAt")
			}
			if pin.From != "" {
				l.ref(file, "environment", pin.From, envs, "apps", name, "from")
			}
			if em := pin.Emergency; em != nil {
				// Whether promotedBy may declare it is judged when the pin is
				// deployed, not here: a later change of teams.yaml must not
				// make the whole repository invalid.
				if pin.PromotedBy == "" {
					l.at(file, "an emergency pin names who declared it in promotedBy", "apps", name, "emergency")
				}
				if em.Reason != "" && strings.TrimSpace(em.Reason) == "" { // "" is the schema's to report
					l.at(file, "an emergency change needs a reason", "apps", name, "emergency", "reason")
				}
			}
		}
	}

	if b := r.Budgets; b != nil {
		seen := map[string]bool{}
		for i, bu := range b.Budgets {
			if seen[bu.Name] {
				l.at(BudgetsFile, fmt.Sprintf("a second budget named %q", bu.Name), "budgets", idx(i), "name")
			}
			seen[bu.Name] = true
			base := []string{"budgets", idx(i)}
			l.refOpt(BudgetsFile, "team", bu.Team, teams, append(base, "team")...)
			l.refOpt(BudgetsFile, "app", bu.App, apps, append(base, "app")...)
			l.refOpt(BudgetsFile, "environment", bu.Environment, envs, append(base, "environment")...)
			l.refOpt(BudgetsFile, "zone", bu.Zone, zones, append(base, "zone")...)
			for j, n := range bu.Notify {
				l.ref(BudgetsFile, "notification", n, notify, append(base, "notify", idx(j))...)
			}
			for j, t := range bu.Thresholds {
				if t <= 0 {
					l.at(BudgetsFile, fmt.Sprintf("expected a percentage above 0, found %v", t), append(base, "thresholds", idx(j))...)
				}
			}
		}
	}

	policyNames := map[string]string{}
	for _, ps := range r.Policies {
		f := ps.File
		for i, p := range ps.Policies {
			if other, ok := policyNames[p.Name]; ok {
				l.at(f, fmt.Sprintf("a policy named %q is already defined in %s", p.Name, other), "policies", idx(i), "name")
			}
			policyNames[p.Name] = f
			for j, e := range p.Match.Environments {
				l.ref(f, "environment", e, envs, "policies", idx(i), "match", "environments", idx(j))
			}
			for j, z := range p.Match.Zones {
				l.ref(f, "zone", z, zones, "policies", idx(i), "match", "zones", idx(j))
			}
			for j, a := range p.Match.Apps {
				l.ref(f, "app", a, apps, "policies", idx(i), "match", "apps", idx(j))
			}
			if len(p.Match.Apps) > 0 && p.Stacks() {
				l.at(f, "match.apps selects apps, and this policy's target is stacks: use match.stacks", "policies", idx(i), "match", "apps")
			}
			if len(p.Match.Stacks) > 0 && !p.Stacks() {
				l.at(f, "match.stacks selects stacks, and this policy's target is apps: add target: stacks", "policies", idx(i), "match", "stacks")
			}
			for j, s := range p.Match.Stacks {
				if r.Stack(s) == nil {
					l.at(f, fmt.Sprintf("no stack %q (stacks/%s/stack.yaml)", s, s), "policies", idx(i), "match", "stacks", idx(j))
				}
			}
		}
	}
}

func (l *loading) checkEnvironments(zones, envs, notify map[string]bool) {
	for i, z := range l.repo.Platform.Zones {
		for j, n := range z.Notify {
			l.ref(PlatformFile, "notification", n, notify, "zones", idx(i), "notify", idx(j))
		}
	}
	l.checkSecretStores(l.repo.Platform.SecretStores, "secretStores")
	for i, e := range l.repo.Platform.Environments {
		at := func(p ...string) []string { return append([]string{"environments", idx(i)}, p...) }
		l.checkSecretStores(e.SecretStores, at("secretStores")...)
		if len(zones) > 0 || e.Zone != "" {
			if e.Zone == "" {
				l.at(PlatformFile, "missing zone: the platform defines landing zones, so each environment names one"+known(zones), at()...)
			} else {
				l.ref(PlatformFile, "zone", e.Zone, zones, at("zone")...)
			}
		}
		for j, n := range e.Notify {
			l.ref(PlatformFile, "notification", n, notify, at("notify", idx(j))...)
		}
		for _, k := range slices.Sorted(maps.Keys(e.Variables)) {
			if !outputName.MatchString(k) {
				l.atKey(PlatformFile, k, fmt.Sprintf("variable %q: workloads read it as ${resources.<resource>.%s}: letters, digits, _ and - only", k, k), at("variables")...)
			}
		}
		if p := e.Promotion; p != nil {
			if e.Sync == SyncAuto {
				l.warn(PlatformFile, "an environment with sync: auto follows every new revision; its promotion gates are never used", at("promotion")...)
			}
			for j, w := range p.Windows {
				if w.err != nil {
					l.at(PlatformFile, w.err.Error(), at("promotion", "windows", idx(j))...)
				}
			}
		}
		if em := e.Emergency; em != nil {
			if e.Sync == SyncAuto {
				l.warn(PlatformFile, "an environment with sync: auto runs every new revision at once; emergency changes apply to pinned environments only", at("emergency")...)
			}
			deployers := l.repo.DeployRoles(e.Name)
			for j, role := range em.Roles {
				if !slices.Contains(deployers, role) {
					l.at(PlatformFile, fmt.Sprintf("role %s may not deploy to %s (deployRoles: %s), so it cannot declare emergency changes there", role, e.Name, joinRoles(deployers)), at("emergency", "roles", idx(j))...)
				}
			}
		}
	}
}

func joinRoles(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// checkPromotionLine verifies that promotion.from links form one line, in
// the order the environments are listed, with no cycle and no fork.
func (l *loading) checkPromotionLine() {
	envs := l.repo.Platform.Environments
	pos := map[string]int{}
	for i, e := range envs {
		pos[e.Name] = i
	}
	from := map[string]string{}
	for _, e := range envs {
		if e.Promotion != nil && e.Promotion.From != "" {
			from[e.Name] = e.Promotion.From
		}
	}
	fedBy := map[string]string{}
	reported := map[string]bool{} // a cycle is reported once, at its first environment
	for i, e := range envs {
		if e.Promotion == nil || e.Promotion.From == "" {
			continue
		}
		at := []string{"environments", idx(i), "promotion", "from"}
		src := e.Promotion.From
		if _, ok := pos[src]; !ok {
			l.at(PlatformFile, fmt.Sprintf("no environment %q to promote from%s", src, known(mapOf(pos))), at...)
			continue
		}
		if src == e.Name {
			l.at(PlatformFile, fmt.Sprintf("environment %q promotes from itself", e.Name), at...)
			continue
		}
		// Follow the chain back: a cycle returns to where it started.
		seen := map[string]bool{e.Name: true}
		cycle := []string{e.Name}
		for cur := src; cur != ""; cur = from[cur] {
			cycle = append(cycle, cur)
			if seen[cur] {
				if cur == e.Name {
					key := slices.Sorted(slices.Values(cycle[1:]))
					if !reported[strings.Join(key, ",")] {
						reported[strings.Join(key, ",")] = true
						slices.Reverse(cycle)
						l.at(PlatformFile, "promotion cycle: "+strings.Join(cycle, " → "), at...)
					}
				}
				break
			}
			seen[cur] = true
		}
		if other, ok := fedBy[src]; ok {
			l.at(PlatformFile, fmt.Sprintf("%q already promotes from %q: promotions form one line (dev → preprod → prod), not a fork", other, src), at...)
		} else {
			fedBy[src] = e.Name
		}
		if pos[src] > i && !l.inCycle(e.Name, from) {
			l.at(PlatformFile, fmt.Sprintf("%q is listed after %q: list environments in promotion order", src, e.Name), at...)
		}
	}
}

func (l *loading) inCycle(name string, from map[string]string) bool {
	seen := map[string]bool{}
	for cur := from[name]; cur != ""; cur = from[cur] {
		if cur == name {
			return true
		}
		if seen[cur] {
			return false
		}
		seen[cur] = true
	}
	return false
}

// checkApp runs while the app's documents are at hand, so that they need not
// be kept: with thousands of apps their node trees would dominate memory.
func (l *loading) checkApp(a *App, docs map[string]*document) {
	l = &loading{fsys: l.fsys, repo: l.repo, names: l.names, docs: docs, report: l}
	teams, envs := l.names.teams, l.names.envs
	file := path.Join(AppsDir, a.Name, AppFile)
	c := a.Config
	if _, ok := l.docs[file]; ok {
		l.refOpt(file, "team", c.Owner, teams, "owner")
	}
	l.checkReplicas(file, c.Replicas, "replicas")
	l.checkRollout(file, c.Rollout, "rollout")
	for _, env := range slices.Sorted(maps.Keys(c.Environments)) {
		if !envs[env] {
			l.atKey(file, env, fmt.Sprintf("override for environment %q, which socle.yaml does not define%s", env, known(envs)), "environments")
			continue
		}
		o := c.Environments[env]
		l.checkReplicas(file, o.Replicas, "environments", env, "replicas")
		l.checkRollout(file, o.Rollout, "environments", env, "rollout")
	}
	l.checkRoutes(a)
	if a.Workload == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(a.Workload.Containers)) {
		if a.Workload.Containers[name].Image == "." && c.Build == nil {
			l.warn(path.Join(AppsDir, a.Name, ScoreFile), fmt.Sprintf("container %q has image \".\" (built by socle) but apps/%s/socle.yaml has no build: it cannot be deployed until one is added", name, a.Name), "containers", name, "image")
		}
	}
	l.checkResources(a)
}

func (l *loading) checkReplicas(file string, r *Replicas, at ...string) {
	if r != nil && r.Max != 0 && r.Max < r.Min {
		l.at(file, fmt.Sprintf("max (%d) is below min (%d)", r.Max, r.Min), append(at, "max")...)
	}
}

func (l *loading) checkRollout(file string, r *Rollout, at ...string) {
	if r == nil {
		return
	}
	if r.Strategy == StrategyCanary && len(r.Steps) == 0 {
		l.at(file, "a canary needs steps (weight and pause)", at...)
	}
	if r.Strategy != StrategyCanary && len(r.Steps) > 0 {
		l.at(file, fmt.Sprintf("steps apply only to the canary strategy, not %s", r.Strategy), append(at, "steps")...)
	}
	for i := 1; i < len(r.Steps); i++ {
		if r.Steps[i].Weight < r.Steps[i-1].Weight {
			l.at(file, fmt.Sprintf("weights must not decrease: %d after %d", r.Steps[i].Weight, r.Steps[i-1].Weight), append(at, "steps", idx(i), "weight")...)
		}
	}
}

// unique reports repeated names in a list and returns the set of names.
func (l *loading) unique(file, list string, n int, name func(int) string) map[string]bool {
	set := make(map[string]bool, n)
	for i := range n {
		v := name(i)
		if v == "" {
			continue
		}
		if set[v] {
			l.at(file, fmt.Sprintf("a second entry named %q", v), list, idx(i), "name")
		}
		set[v] = true
	}
	return set
}

func (l *loading) ref(file, what, name string, set map[string]bool, at ...string) {
	if !set[name] {
		l.at(file, fmt.Sprintf("no %s %q%s", what, name, known(set)), at...)
	}
}

func (l *loading) refOpt(file, what, name string, set map[string]bool, at ...string) {
	if name != "" {
		l.ref(file, what, name, set, at...)
	}
}

func (l *loading) at(file, msg string, at ...string) { l.add(l.problemAt(file, msg, at...)) }

func (l *loading) problemAt(file, msg string, at ...string) Problem {
	if d := l.docs[file]; d != nil {
		return d.problem(msg, at...)
	}
	return Problem{File: file, Message: msg}
}

func (l *loading) atKey(file, key, msg string, at ...string) {
	d := l.docs[file]
	if d == nil {
		l.add(Problem{File: file, Message: msg})
		return
	}
	p := d.problem(msg, append(at, key)...)
	n := d.keyNode(key, at...)
	p.Line, p.Column = n.Line, n.Column
	l.add(p)
}

func (l *loading) warn(file, msg string, at ...string) {
	p := l.problemAt(file, msg, at...)
	p.Warning = true
	l.add(p)
}

// known lists the names a reference could have used.
func known(set map[string]bool) string {
	if len(set) == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(set))
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

func mapOf(m map[string]int) map[string]bool {
	s := make(map[string]bool, len(m))
	for k := range m {
		s[k] = true
	}
	return s
}

func idx(i int) string { return strconv.Itoa(i) }
