package plan

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/score-spec/score-go/types"
)

// Redacted replaces every secret value socle shows.
const Redacted = "[redacted]"

// secretOutputs are the resource outputs that carry credentials: a
// variable that takes one of them is secret.
var secretOutputs = regexp.MustCompile(`\$\{resources\.[^.}]+\.(password|secret|token|key|apiKey|api_key|url|uri|connection|connectionString)\}`)

// SecretVariables returns the names of the unit's variables that are
// secret: those socle.yaml names, and those that take a secret output of a
// resource.
func (u *Unit) SecretVariables() []string {
	var names []string
	for _, c := range u.Containers {
		for k, v := range c.Variables {
			if slices.Contains(u.Secrets, k) || secretOutputs.MatchString(v) {
				names = append(names, k)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Redact returns a copy of u whose secret variables read Redacted. It
// leaves u unchanged: its maps are shared with other units.
func (u Unit) Redact() Unit {
	secret := u.SecretVariables()
	if len(secret) == 0 {
		return u
	}
	cs := make(map[string]types.Container, len(u.Containers))
	for name, c := range u.Containers {
		vars := maps.Clone(c.Variables)
		for _, k := range secret {
			if _, ok := vars[k]; ok {
				vars[k] = Redacted
			}
		}
		c.Variables = vars
		cs[name] = c
	}
	u.Containers = cs
	return u
}

// RedactPlan returns p with the desired state of every change redacted
// and the values of changed secret fields hidden. A variable is secret if
// it is in the desired unit or was in the unit before (old, the applied
// units): a commit that drops a secret must not show its old value.
func RedactPlan(p Plan, old []Unit) Plan {
	was := make(map[Key][]string, len(old))
	for i := range old {
		if names := old[i].SecretVariables(); len(names) > 0 {
			was[old[i].Key()] = names
		}
	}
	out := p
	out.Changes = make([]Change, len(p.Changes))
	for i, c := range p.Changes {
		secret := was[Key{App: c.App, Env: c.Env}]
		if c.Desired != nil {
			secret = append(slices.Clone(secret), c.Desired.SecretVariables()...)
			d := c.Desired.Redact()
			c.Desired = &d
		}
		if len(secret) > 0 && len(c.Fields) > 0 {
			fs := slices.Clone(c.Fields)
			for j, f := range fs {
				_, last, _ := cutLast(f.Path)
				if strings.Contains(f.Path, ".variables.") && slices.Contains(secret, last) {
					fs[j].Old, fs[j].New = redactValue(f.Old), redactValue(f.New)
					continue
				}
				fs[j].Old, fs[j].New = redactKeys(f.Old, secret), redactKeys(f.New, secret)
			}
			c.Fields = fs
		}
		out.Changes[i] = c
	}
	return out
}

func cutLast(path string) (string, string, bool) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

// redactKeys returns v with the value of every map key named in secret,
// at any depth, redacted: a changed field may hold a whole container.
func redactKeys(v any, secret []string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if slices.Contains(secret, k) {
				out[k] = redactValue(e)
			} else {
				out[k] = redactKeys(e, secret)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactKeys(e, secret)
		}
		return out
	case types.ContainerVariables:
		out := make(types.ContainerVariables, len(x))
		for k, e := range x {
			if slices.Contains(secret, k) {
				e = Redacted
			}
			out[k] = e
		}
		return out
	}
	return v
}

func redactValue(v any) any {
	if v == nil {
		return nil
	}
	return Redacted
}
