package policy

import (
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	scoretypes "github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
)

// Tracking the cost of an evaluation, which CostLimit needs, doubles its
// time. Most expressions do not need it: given bounds on the size of every
// list, map and string of the input, CEL's static estimate proves their
// cost under the limit. Such an expression gets a second program without
// tracking, used when the change is within the bounds (nearly always);
// expressions whose estimate is over the limit (nested loops over
// variables, say), and changes out of bounds, are evaluated with tracking.
// Both give the same verdict; only the time differs.
const (
	boundItems      = 64      // entries of a list or map of a change…
	boundContainers = 16      // …but a workload's containers
	boundChars      = 1024    // characters of a string of a change…
	boundKey        = 128     // …but a map's key (a variable's name)…
	boundFile       = 1 << 20 // …and a file's content
	boundPlatform   = 4096    // entries and characters of the platform's maps and strings
)

// inputBounds tells CEL's cost estimator the bounds above; it knows the
// size of nothing that does not come from an input variable.
type inputBounds struct{}

func (inputBounds) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	var items, chars uint64 = boundItems, boundChars
	switch path[0] {
	case varPlatform, varEnvironment, varStack:
		items, chars = boundPlatform, boundPlatform
	case varChange, varAuthor, varApprovers:
		switch path[len(path)-1] {
		case "content", "binaryContent":
			chars = boundFile
		case "@keys":
			chars = boundKey
		case "containers":
			items = boundContainers
		}
	default:
		return nil
	}
	size := items
	switch n.Type().Kind() {
	case types.StringKind, types.BytesKind:
		size = chars
	case types.DynKind, types.AnyKind:
		size = max(items, chars)
	}
	return &checker.SizeEstimate{Min: 0, Max: size}
}

func (inputBounds) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// boundedCost reports whether an expression's cost is under the limit for
// every input within the bounds.
func boundedCost(est checker.CostEstimate) bool { return est.Max <= CostLimit }

// changeFits reports whether a change is within the bounds the cost
// estimates assume. TestUnitFitsSeesEveryField keeps it complete.
func changeFits(c *change, author string, approvers []string, old, new *plan.Unit) bool {
	return str(c.App) && str(c.Env) && str(c.Action) && str(c.Operation) && str(c.Artifact) && strs(c.Changed) &&
		str(author) && strs(approvers) && unitFits(old) && unitFits(new)
}

func str(s string) bool { return len(s) <= boundChars }

func key(s string) bool { return len(s) <= boundKey }

func strs(ss []string) bool {
	if len(ss) > boundItems {
		return false
	}
	for _, s := range ss {
		if !str(s) {
			return false
		}
	}
	return true
}

func strPtr(s *string) bool { return s == nil || str(*s) }

func unitFits(u *plan.Unit) bool {
	if u == nil {
		return true
	}
	if !(str(u.App) && str(u.Env) && str(u.Team) && str(u.Zone) && str(u.Revision) && str(u.Source) && str(u.Artifact) && str(u.Emergency) && str(string(u.Runtime)) &&
		str(string(u.Rollout.Strategy)) && len(u.Rollout.Steps) <= boundItems && anyFits(map[string]any(u.Metadata)) &&
		len(u.Containers) <= boundContainers && len(u.Resources) <= boundItems && strs(u.Secrets)) {
		return false
	}
	if len(u.Routes) > boundItems {
		return false
	}
	for _, r := range u.Routes {
		if !(str(r.Host) && str(r.Path) && str(r.Port)) {
			return false
		}
	}
	for _, n := range u.Secrets { // the keys of secretSources
		if !key(n) {
			return false
		}
	}
	for name, c := range u.Containers {
		if !key(name) || !containerFits(&c) {
			return false
		}
	}
	if s := u.Service; s != nil {
		if len(s.Ports) > boundItems {
			return false
		}
		for name, p := range s.Ports {
			if !key(name) || p.Protocol != nil && !str(string(*p.Protocol)) {
				return false
			}
		}
	}
	for name, r := range u.Resources {
		if !(key(name) && str(r.Type) && strPtr(r.Class) && strPtr(r.Id) && anyFits(map[string]any(r.Params)) && anyFits(map[string]any(r.Metadata))) {
			return false
		}
	}
	return true
}

func containerFits(c *scoretypes.Container) bool {
	if !(strs(c.Args) && strs(c.Command) && str(c.Image) &&
		len(c.Before) <= boundItems && len(c.Files) <= boundItems && len(c.Variables) <= boundItems && len(c.Volumes) <= boundItems &&
		probeFits(c.ReadinessProbe) && probeFits(c.LivenessProbe)) {
		return false
	}
	for name, b := range c.Before {
		if !key(name) || !str(string(b.Ready)) {
			return false
		}
	}
	for name, f := range c.Files {
		if !(key(name) && strPtr(f.Mode) && strPtr(f.Source) &&
			(f.Content == nil || len(*f.Content) <= boundFile) && (f.BinaryContent == nil || len(*f.BinaryContent) <= boundFile)) {
			return false
		}
	}
	for name, v := range c.Variables {
		if !key(name) || !str(v) {
			return false
		}
	}
	for name, v := range c.Volumes {
		if !key(name) || !str(v.Source) || !strPtr(v.Path) {
			return false
		}
	}
	if r := c.Resources; r != nil {
		for _, l := range []*scoretypes.ResourcesLimits{r.Limits, r.Requests} {
			if l != nil && (!strPtr(l.Cpu) || !strPtr(l.Memory)) {
				return false
			}
		}
	}
	return true
}

func probeFits(p *scoretypes.ContainerProbe) bool {
	if p == nil {
		return true
	}
	if p.Exec != nil && !strs(p.Exec.Command) {
		return false
	}
	if h := p.HttpGet; h != nil {
		if !str(h.Path) || !strPtr(h.Host) || h.Scheme != nil && !str(string(*h.Scheme)) || len(h.HttpHeaders) > boundItems {
			return false
		}
		for _, hd := range h.HttpHeaders {
			if !str(hd.Name) || !str(hd.Value) {
				return false
			}
		}
	}
	return true
}

// anyFits checks free-form YAML values (resource params, metadata).
func anyFits(v any) bool {
	switch t := v.(type) {
	case string:
		return str(t)
	case map[string]any:
		if len(t) > boundItems {
			return false
		}
		for k, e := range t {
			if !key(k) || !anyFits(e) {
				return false
			}
		}
	case []any:
		if len(t) > boundItems {
			return false
		}
		for _, e := range t {
			if !anyFits(e) {
				return false
			}
		}
	}
	return true
}

// platformFits checks the platform once, when the set is compiled.
func platformFits(p *platform) bool {
	fits := func(s string) bool { return len(s) <= boundPlatform }
	if len(p.Zones) > boundPlatform || len(p.Environments) > boundPlatform || len(p.Teams) > boundPlatform || !fits(p.Name) {
		return false
	}
	for k, v := range p.Zones {
		if !fits(k) || !fits(v) {
			return false
		}
	}
	for k, e := range p.Environments {
		if !fits(k) || !fits(e.Name) || !fits(e.Zone) || !fits(e.ZoneKind) || !fits(e.From) || !fits(e.Sync) {
			return false
		}
	}
	for k, t := range p.Teams {
		if !fits(k) || len(t.Members) > boundPlatform {
			return false
		}
		for u, r := range t.Members {
			if !fits(u) || !fits(r) {
				return false
			}
		}
	}
	return true
}
