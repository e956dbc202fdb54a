package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/internal/spec"
)

// stackSettings configure the stack built-ins, in OverridesFile:
//
//	stacks:
//	  protect: [azurerm_subnet, "module.hub.*"]   # types or address patterns
//	  requiredTags: {"azurerm_*": [owner, cost-center]}
//	  regions: [westeurope, northeurope]
//
// A pattern is a glob (path.Match: * matches any run of characters, dots
// included) matched against a resource's type and its address. Without
// settings the stack built-ins select nothing.
type stackSettings struct {
	Protect      []string            `yaml:"protect"`
	RequiredTags map[string][]string `yaml:"requiredTags"`
	Regions      []string            `yaml:"regions"`
}

// What a masked value is when it is not shown: those of package stack,
// which policy does not import (it judges what it is given).
const (
	maskedSensitive = "(sensitive value)"
	maskedUnknown   = "(known after apply)"
)

func readStackSettings(n *yaml.Node) (stackSettings, spec.Problems) {
	var cfg stackSettings
	at := func(n *yaml.Node, field, msg string) spec.Problem {
		return spec.Problem{File: OverridesFile, Line: n.Line, Column: n.Column, Field: field, Message: msg}
	}
	if n.Kind != yaml.MappingNode {
		return cfg, spec.Problems{at(n, "stacks", "expected a mapping with protect, requiredTags and regions")}
	}
	var problems spec.Problems
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains([]string{"protect", "requiredTags", "regions"}, k.Value) {
			problems = append(problems, at(k, "stacks."+k.Value, fmt.Sprintf("unknown field %q: expected protect, requiredTags or regions", k.Value)))
		}
	}
	if err := n.Decode(&cfg); err != nil {
		return stackSettings{}, append(problems, at(n, "stacks", fmt.Sprintf("expected protect and regions as lists of strings, requiredTags as a mapping of type pattern to a list of tags: %v", err)))
	}
	check := func(field string, patterns ...string) {
		for _, p := range patterns {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				node, _ := locate(n, strings.Split(field, ".")...)
				problems = append(problems, at(node, "stacks."+field, fmt.Sprintf("%q is not a pattern (path.Match: *, ?, [a-z])", p)))
			}
		}
	}
	check("protect", cfg.Protect...)
	for p := range cfg.RequiredTags {
		check("requiredTags", p)
	}
	if len(problems) > 0 {
		return stackSettings{}, problems
	}
	return cfg, nil
}

// stackBuiltins are the built-in guardrails of stack changes.
func stackBuiltins() []*builtin {
	cfg := func(ev *evaluation) *stackSettings { return &ev.set.stackCfg }
	changes := func(ev *evaluation) bool {
		return slices.Contains([]string{"create", "update", "replace"}, ev.stack.Change.Action)
	}
	return []*builtin{
		{
			name:        "stack-protected-in-production",
			description: "In production, a stack plan does not destroy or replace the resources that stacks.protect of " + OverridesFile + " names (by type or address).",
			stacks:      true,
			applies: func(ev *evaluation) bool {
				a := ev.stack.Change.Action
				return ev.environment.Production && len(cfg(ev).Protect) > 0 && (a == "delete" || a == "replace")
			},
			scope: "stack destroys and replaces in production (stacks.protect)",
			check: checkProtected,
		},
		{
			name:        "stack-required-tags",
			description: "Resources of the types stacks.requiredTags of " + OverridesFile + " names carry the tags (or labels) it lists.",
			stacks:      true,
			applies:     func(ev *evaluation) bool { return len(cfg(ev).RequiredTags) > 0 && changes(ev) },
			scope:       "stack creates, updates and replaces (stacks.requiredTags)",
			check:       checkTags,
		},
		{
			name:        "stack-allowed-regions",
			description: "Resources are created only in the regions (or locations) stacks.regions of " + OverridesFile + " lists.",
			stacks:      true,
			applies:     func(ev *evaluation) bool { return len(cfg(ev).Regions) > 0 && changes(ev) },
			scope:       "stack creates, updates and replaces (stacks.regions)",
			check:       checkRegions,
		},
	}
}

// matchResource returns the first pattern that matches the resource's
// type or address, "" for none.
func matchResource(patterns []string, c *StackChange) string {
	for _, p := range patterns {
		if ok, _ := path.Match(p, c.Type); ok {
			return p
		}
		if ok, _ := path.Match(p, c.Address); ok {
			return p
		}
	}
	return ""
}

// checkProtected: a protected resource is neither destroyed nor replaced
// in production.
func checkProtected(ev *evaluation) (bool, string) {
	c := &ev.stack.Change
	p := matchResource(ev.set.stackCfg.Protect, c)
	if p == "" {
		return true, ""
	}
	what := "destroy"
	if c.Action == "replace" {
		what = "replace (destroy and create again)"
	}
	return false, fmt.Sprintf("%s: the plan would %s it, and it is protected in production (stacks.protect: %s in %s): change the configuration so that it is kept, or lift the protection first",
		ev.subject(), what, p, OverridesFile)
}

// checkTags: every tag the settings require of the resource's type is a
// key of after.tags (or after.labels, Google's and Kubernetes' word).
func checkTags(ev *evaluation) (bool, string) {
	c := &ev.stack.Change
	var need []string
	var from []string
	for p, tags := range ev.set.stackCfg.RequiredTags {
		if ok, _ := path.Match(p, c.Type); ok {
			need = append(need, tags...)
			from = append(from, p)
		}
	}
	if len(need) == 0 {
		return true, ""
	}
	slices.Sort(need)
	need = slices.Compact(need)
	slices.Sort(from)
	attr, v := "tags", c.After["tags"]
	if v == nil {
		if l, ok := c.After["labels"]; ok {
			attr, v = "labels", l
		}
	}
	if s, ok := v.(string); ok && (s == maskedUnknown || s == maskedSensitive) {
		return false, fmt.Sprintf("%s: its %s are %s, so the required %s cannot be checked: set them in the configuration", ev.subject(), attr, s, strings.Join(need, ", "))
	}
	have, _ := v.(map[string]any)
	var missing []string
	for _, t := range need {
		if _, ok := have[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%s lacks %s %s: resources of type %s carry them (stacks.requiredTags in %s)",
		ev.subject(), plural(len(missing), "tag", "tags"), strings.Join(missing, ", "), strings.Join(from, ", "), OverridesFile)
}

// checkRegions: the resource's region and location, where it has them,
// are among the allowed regions.
func checkRegions(ev *evaluation) (bool, string) {
	c := &ev.stack.Change
	allowed := ev.set.stackCfg.Regions
	for _, attr := range []string{"region", "location"} {
		v, ok := c.After[attr]
		if !ok || v == nil {
			continue
		}
		s, _ := v.(string)
		switch {
		case s == maskedUnknown || s == maskedSensitive:
			return false, fmt.Sprintf("%s: its %s is %s, so it cannot be checked against the allowed regions (%s)", ev.subject(), attr, s, strings.Join(allowed, ", "))
		case !slices.Contains(allowed, s):
			return false, fmt.Sprintf("%s is in %s %q, which is not allowed: allowed are %s (stacks.regions in %s)",
				ev.subject(), attr, fmt.Sprint(v), strings.Join(allowed, ", "), OverridesFile)
		}
	}
	return true, ""
}
