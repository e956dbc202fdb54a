package cost

import (
	"strings"

	"github.com/socle-dev/socle/internal/spec"
)

// owner dimensions, in the order of an allocation.
const (
	oTeam = iota
	oApp
	oEnv
	oZone
	nOwner
)

var ownerDims = [nOwner]Dim{DimTeam, DimApp, DimEnv, DimZone}

// defaultTagKeys are used for a dimension socle.yaml gives no tag keys for.
var defaultTagKeys = [nOwner][]string{
	{"team", "owner"},
	{"app", "application"},
	{"env", "environment"},
	{"zone", "landing-zone"},
}

// Allocation is who a charge belongs to, and how each owner was found.
type Allocation struct {
	Owner  [nOwner]string
	Method [nOwner]Method
	// Weight is the allocation's share of the charge when a rule splits
	// it among several (see spec.AllocationRule.Split); 0 when it is whole.
	Weight uint64
}

// Allocator assigns charges to a team, app, environment and zone: first from
// the tags socle.yaml names (values mapped through its aliases), then from
// the first allocation rule that matches, then from what the platform
// repository knows (an app's owner team, an environment's zone, the zone
// whose account the charge is in, the environment of a zone that has one);
// what remains is Unallocated. It is immutable and safe for concurrent use.
type Allocator struct {
	keys     [nOwner][]string          // tag keys, lower case
	aliases  [nOwner]map[string]string // lower-case value → name
	known    [nOwner]map[string]string // lower-case name → name
	rules    []rule                    //
	appTeam  map[string]string         // app → owner team
	envZone  map[string]string         // environment → zone
	zoneEnv  map[string]string         // zone → its only environment
	accounts map[string][]accountZone  // lower-case account → zones
}

type accountZone struct {
	provider string // short provider id, "" for any
	zone     string
}

type rule struct {
	match [nMatch]string // lower-case glob patterns, "" for any
	tags  [][2]string    // lower-case key, lower-case pattern
	set   [nOwner]string
	split []share
}

// share is one owner's part of a rule's split.
type share struct {
	set    [nOwner]string
	weight uint64
}

const (
	mProvider = iota
	mAccount
	mSubscription
	mResourceGroup
	mProject
	mService
	mRegion
	nMatch
)

// NewAllocator builds the allocator of a platform repository; a nil repo
// allocates by the default tag keys only.
func NewAllocator(repo *spec.Repo) *Allocator {
	a := &Allocator{
		appTeam:  map[string]string{},
		envZone:  map[string]string{},
		zoneEnv:  map[string]string{},
		accounts: map[string][]accountZone{},
	}
	for i := range a.known {
		a.known[i] = map[string]string{}
		a.aliases[i] = map[string]string{}
	}
	var costs spec.Costs
	if repo != nil {
		if repo.Platform.Costs != nil {
			costs = *repo.Platform.Costs
		}
		for _, t := range repo.Teams.Teams {
			a.known[oTeam][strings.ToLower(t.Name)] = t.Name
		}
		for _, app := range repo.Apps {
			a.known[oApp][strings.ToLower(app.Name)] = app.Name
			if app.Config.Owner != "" {
				a.appTeam[app.Name] = app.Config.Owner
			}
		}
		envsOf := map[string][]string{}
		for _, e := range repo.Platform.Environments {
			a.known[oEnv][strings.ToLower(e.Name)] = e.Name
			if e.Zone != "" {
				a.envZone[e.Name] = e.Zone
				envsOf[e.Zone] = append(envsOf[e.Zone], e.Name)
			}
		}
		for _, z := range repo.Platform.Zones {
			a.known[oZone][strings.ToLower(z.Name)] = z.Name
			if envs := envsOf[z.Name]; len(envs) == 1 {
				a.zoneEnv[z.Name] = envs[0]
			}
			if z.Account != "" {
				k := strings.ToLower(z.Account)
				a.accounts[k] = append(a.accounts[k], accountZone{providerID(z.Provider), z.Name})
			}
		}
	}
	var tags [nOwner][]string
	if costs.Tags != nil {
		tags = [nOwner][]string{costs.Tags.Team, costs.Tags.App, costs.Tags.Environment, costs.Tags.Zone}
	}
	for i := range tags {
		keys := tags[i]
		if len(keys) == 0 {
			keys = defaultTagKeys[i]
		}
		for _, k := range keys {
			a.keys[i] = append(a.keys[i], strings.ToLower(strings.TrimSpace(k)))
		}
	}
	for dim, m := range costs.Aliases {
		i := ownerIndex(dim)
		if i < 0 {
			continue
		}
		for from, to := range m {
			a.aliases[i][strings.ToLower(strings.TrimSpace(from))] = to
		}
	}
	for _, r := range costs.Rules {
		m := r.Match
		ru := rule{set: [nOwner]string{r.Set.Team, r.Set.App, r.Set.Environment, r.Set.Zone}}
		ru.match = [nMatch]string{m.Provider, m.Account, m.Subscription, m.ResourceGroup, m.Project, m.Service, m.Region}
		for i := range ru.match {
			ru.match[i] = strings.ToLower(ru.match[i])
		}
		for k, v := range m.Tags {
			ru.tags = append(ru.tags, [2]string{strings.ToLower(strings.TrimSpace(k)), strings.ToLower(v)})
		}
		for _, sh := range r.Split {
			if sh.Weight > 0 { // spec refuses the others
				ru.split = append(ru.split, share{set: [nOwner]string{sh.Team, sh.App, sh.Environment, sh.Zone}, weight: uint64(sh.Weight)})
			}
		}
		a.rules = append(a.rules, ru)
	}
	return a
}

// ownerIndex maps the dimension names socle.yaml's aliases use.
func ownerIndex(dim string) int {
	switch strings.ToLower(dim) {
	case "team":
		return oTeam
	case "app", "application":
		return oApp
	case "environment", "env":
		return oEnv
	case "zone":
		return oZone
	}
	return -1
}

// facts are what allocation looks at, as strings.
type facts struct {
	provider, account, accountName, billingAccount, subscription, resourceGroup, project, service, region string
	tags                                                                                                  []tag
}

// allocate finds the owners of a charge: one allocation, or one per share,
// with its weight, when the rule that matches splits it.
func (a *Allocator) allocate(f *facts) []Allocation {
	var al Allocation
	for i := range nOwner {
		if v := a.fromTags(i, f.tags); v != "" {
			al.Owner[i], al.Method[i] = v, ByTag
		}
	}
	var split []share
	if !al.complete() {
		for i := range a.rules {
			r := &a.rules[i]
			if !r.matches(f) {
				continue
			}
			a.setUnknown(&al, r.set)
			split = r.split
			break
		}
	}
	if len(split) == 0 {
		a.finish(&al, f)
		return []Allocation{al}
	}
	out := make([]Allocation, len(split))
	for i, sh := range split {
		out[i] = al
		out[i].Weight = sh.weight
		a.setUnknown(&out[i], sh.set)
		a.finish(&out[i], f)
	}
	return out
}

// setUnknown sets the owners of set that al does not know yet, by rule.
func (a *Allocator) setUnknown(al *Allocation, set [nOwner]string) {
	for j, v := range set {
		if v != "" && al.Owner[j] == "" {
			al.Owner[j], al.Method[j] = a.canon(j, v), ByRule
		}
	}
}

// finish derives what the platform knows and marks the rest unallocated.
func (a *Allocator) finish(al *Allocation, f *facts) {
	a.derive(al, f)
	for i := range al.Owner {
		if al.Owner[i] == "" {
			al.Owner[i], al.Method[i] = Unallocated, NotFound
		}
	}
}

func (al *Allocation) complete() bool {
	return al.Owner[oTeam] != "" && al.Owner[oApp] != "" && al.Owner[oEnv] != "" && al.Owner[oZone] != ""
}

// derive fills owners from what the platform repository knows.
func (a *Allocator) derive(al *Allocation, f *facts) {
	set := func(i int, v string) {
		if v != "" && al.Owner[i] == "" {
			al.Owner[i], al.Method[i] = v, ByPlatform
		}
	}
	if al.Owner[oZone] == "" {
		p := providerID(f.provider)
		for _, acct := range []string{f.account, f.accountName, f.billingAccount} {
			for _, az := range a.accounts[strings.ToLower(acct)] {
				if az.provider == "" || az.provider == p {
					set(oZone, az.zone)
					break
				}
			}
		}
	}
	set(oTeam, a.appTeam[al.Owner[oApp]])
	set(oZone, a.envZone[al.Owner[oEnv]])
	set(oEnv, a.zoneEnv[al.Owner[oZone]])
}

// fromTags returns owner i from the first configured tag key present.
func (a *Allocator) fromTags(i int, tags []tag) string {
	for _, k := range a.keys[i] {
		for _, t := range tags {
			if t.value != "" && tagKeyIs(t.key, k) {
				return a.canon(i, t.value)
			}
		}
	}
	return ""
}

// tagKeyIs compares a tag's key with a configured one, ignoring case and
// the user: or user_ prefix AWS gives user-defined tags.
func tagKeyIs(key, want string) bool {
	if strings.EqualFold(key, want) {
		return true
	}
	if len(key) > 5 && strings.EqualFold(key[:4], "user") && (key[4] == ':' || key[4] == '_') {
		return strings.EqualFold(key[5:], want)
	}
	return false
}

// canon maps a tag or rule value to a socle name: through the aliases,
// then case-insensitively to a known team, app, environment or zone; other
// values are kept as written.
func (a *Allocator) canon(i int, v string) string {
	l := strings.ToLower(strings.TrimSpace(v))
	if to, ok := a.aliases[i][l]; ok {
		return to
	}
	if n, ok := a.known[i][l]; ok {
		return n
	}
	return strings.TrimSpace(v)
}

func (r *rule) matches(f *facts) bool {
	vals := [nMatch][]string{
		{f.provider, providerID(f.provider)},
		{f.account, f.accountName, f.billingAccount},
		{f.subscription, subscriptionName(f)},
		{f.resourceGroup},
		{f.project, projectName(f)},
		{f.service},
		{f.region},
	}
	for i, p := range r.match {
		if p == "" {
			continue
		}
		ok := false
		for _, v := range vals[i] {
			if v != "" && glob(p, strings.ToLower(v)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, kv := range r.tags {
		ok := false
		for _, t := range f.tags {
			if tagKeyIs(t.key, kv[0]) && glob(kv[1], strings.ToLower(t.value)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// subscriptionName is the account name of an Azure charge.
func subscriptionName(f *facts) string {
	if f.subscription != "" {
		return f.accountName
	}
	return ""
}

// projectName is the account name of a Google Cloud charge.
func projectName(f *facts) string {
	if f.project != "" {
		return f.accountName
	}
	return ""
}

// glob matches s against a pattern of literal text, * (any run) and ? (one
// character).
func glob(p, s string) bool {
	// iterative with backtracking to the last star: linear in practice
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(p) && (p[px] == '?' || p[px] == s[sx]):
			px++
			sx++
		case px < len(p) && p[px] == '*':
			star, mark = px, sx
			px++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(p) && p[px] == '*' {
		px++
	}
	return px == len(p)
}
