package policy

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// builtin is a guardrail shipped with socle. Its name is stable: overrides
// and test cases refer to it. It is written in CEL when CEL says it plainly,
// in Go when the message must name what is wrong (which container, which
// variable) or the rule needs parsing.
type builtin struct {
	name, description string
	// applies narrows the built-in (production only, outside sandboxes…);
	// scope says the same in words.
	applies func(*evaluation) bool
	scope   string
	// Either a CEL expression and its message…
	expr, message string
	prg           cel.Program
	// …or Go code that returns the whole message.
	check func(*evaluation) (bool, string)
	// stacks: the built-in judges stack resource changes.
	stacks bool
}

// builtins are the built-in guardrails in evaluation order, their CEL
// compiled once for every Set.
var builtins = sync.OnceValue(func() []*builtin {
	list := []*builtin{
		{
			name:        "owner-team-exists",
			description: "Every app is owned by a team that teams.yaml defines, so that someone answers for it.",
			expr:        `change.new.team in platform.teams`,
			message:     `{{app}} is owned by team "{{team}}", which teams.yaml does not define: set owner in apps/{{app}}/socle.yaml to an existing team`,
		},
		{
			name:        "prod-artifact-proven",
			description: "A production environment runs only artifacts that ran healthy in the environment it is promoted from.",
			applies:     func(ev *evaluation) bool { return ev.environment.Production && ev.environment.From != "" },
			scope:       "production environments (the last of a promotion line)",
			check:       checkProven,
		},
		{
			name:        "immutable-image-tags",
			description: "Images are pinned by version tag or digest: latest, or no tag at all, may change under a running app.",
			applies:     func(ev *evaluation) bool { return ev.environment.ZoneKind != string(spec.ZoneSandbox) },
			scope:       "outside sandbox zones",
			check:       checkImages,
		},
		{
			name:        "prod-resource-limits",
			description: "Production containers declare CPU and memory limits, so that one app cannot starve the others.",
			applies:     func(ev *evaluation) bool { return ev.environment.Production },
			scope:       "production environments (the last of a promotion line)",
			check:       checkLimits,
		},
		{
			name:        "no-plain-secrets",
			description: "Secrets come from resources (${resources.<name>.<key>}), never as plain values in Git.",
			check:       checkSecrets,
		},
		{
			name:        "readiness-probe-for-traffic",
			description: "A workload that receives traffic (it has service ports) declares a readiness probe, so that no request reaches an instance that is not ready.",
			expr:        `size(change.new.service.ports) == 0 || change.new.containers.exists(n, has(change.new.containers[n].readinessProbe))`,
			message:     `{{app}} in {{env}} receives traffic (service ports) but no container declares a readinessProbe: requests would reach instances that are not ready`,
		},
		{
			name:        "sandbox-no-prod-access",
			description: "Apps in a sandbox zone do not reach production: no resource id, class or param and no variable names a production environment, its zone or its account.",
			applies:     func(ev *evaluation) bool { return ev.environment.ZoneKind == string(spec.ZoneSandbox) },
			scope:       "sandbox zones",
			check:       checkSandbox,
		},
	}
	list = append(list, stackBuiltins()...)
	env := celEnv()
	for _, b := range list {
		if b.expr == "" {
			continue
		}
		// No built-in reads the clock: their verdicts change with the change,
		// the platform or the release history, never with time alone.
		prg, _, _, errs := compileExpr(env, b.expr, false)
		if len(errs) > 0 {
			panic(fmt.Sprintf("policy: built-in %s does not compile: %s", b.name, errs[0].msg))
		}
		b.prg = prg
	}
	return list
})

func (b *builtin) compile() *compiled {
	return &compiled{name: b.name, description: b.description, builtin: true, stacks: b.stacks, applies: b.applies, scope: b.scope,
		prg: b.prg, message: b.message, check: b.check}
}

func isBuiltin(name string) bool { return slices.Contains(builtinNames(), name) }

func builtinNames() []string {
	var names []string
	for _, b := range builtins() {
		names = append(names, b.name)
	}
	return names
}

// checkProven: a change that brings an artifact into production is allowed
// only when that artifact ran healthy in the previous environment. A no-op,
// or an update that keeps the artifact already running, brings nothing new.
func checkProven(ev *evaluation) (bool, string) {
	from := ev.environment.From
	if ev.in.Change.Action == plan.NoOp {
		return true, ""
	}
	if old := ev.in.Old; old != nil && ev.artifact != "" && old.Artifact == ev.artifact {
		return true, ""
	}
	if ev.artifact == "" {
		return false, fmt.Sprintf("%s in %s names no artifact: production runs only a built artifact (sha256:…) that ran healthy in %s; promote one from %s",
			ev.app, ev.env, from, from)
	}
	if _, ok := ev.history.ranHealthy(ev.artifact, from); !ok {
		if ev.in.History == nil {
			return false, fmt.Sprintf("%s in %s: no release history is available to show that artifact %s ran healthy in %s",
				ev.app, ev.env, shortDigest(ev.artifact), from)
		}
		return false, fmt.Sprintf("%s in %s: artifact %s has not run healthy in %s; promote it through %s first",
			ev.app, ev.env, shortDigest(ev.artifact), from, from)
	}
	return true, ""
}

// checkImages: every container's image has a digest, or a tag other than
// latest. The image "." is the app's own build, which socle runs by digest.
func checkImages(ev *evaluation) (bool, string) {
	var bad []string
	for name, c := range ev.unit.Containers {
		if mutableImage(c.Image) {
			bad = append(bad, fmt.Sprintf("%s (%s)", name, c.Image))
		}
	}
	slices.Sort(bad)
	if len(bad) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%s in %s runs a mutable image: %s %s; pin a version tag or a digest (image@sha256:…)",
		ev.app, ev.env, plural(len(bad), "container", "containers"), list(bad))
}

// mutableImage reports whether an image reference can change under a
// running app: tag latest, or no tag and no digest.
func mutableImage(img string) bool {
	if img == "." || img == "" || strings.Contains(img, "@") {
		return false
	}
	name := img[strings.LastIndex(img, "/")+1:] // a registry's port is not a tag
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return true
	}
	tag := name[i+1:]
	return tag == "" || tag == "latest"
}

// checkLimits: every container sets resources.limits.cpu and .memory.
func checkLimits(ev *evaluation) (bool, string) {
	var bad []string
	for name, c := range ev.unit.Containers {
		var missing []string
		var cpu, mem *string
		if r := c.Resources; r != nil && r.Limits != nil {
			cpu, mem = r.Limits.Cpu, r.Limits.Memory
		}
		if cpu == nil || *cpu == "" {
			missing = append(missing, "cpu")
		}
		if mem == nil || *mem == "" {
			missing = append(missing, "memory")
		}
		if len(missing) > 0 {
			bad = append(bad, fmt.Sprintf("%s (no limits.%s)", name, strings.Join(missing, ", limits.")))
		}
	}
	slices.Sort(bad)
	if len(bad) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%s in %s: %s %s; production containers declare resources.limits.cpu and .memory, so that one app cannot starve the others",
		ev.app, ev.env, plural(len(bad), "container", "containers"), list(bad))
}

// checkSecrets: no variable holds a secret as a plain value (see secretIn).
// The message names containers and variables, never values.
func checkSecrets(ev *evaluation) (bool, string) {
	var bad []string
	for cname, c := range ev.unit.Containers {
		for name, value := range c.Variables {
			// A name listed under secrets takes its value from a SOPS file
			// (validate refuses it a value in clear).
			if slices.Contains(ev.unit.Secrets, name) {
				continue
			}
			if why := secretIn(name, value); why != "" {
				bad = append(bad, fmt.Sprintf("%s.%s (%s)", cname, name, why))
			}
		}
	}
	slices.Sort(bad)
	if len(bad) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%s in %s has secrets in plain variables: %s; take them from a resource (${resources.<name>.<key>}) or list them under secrets with their values in a SOPS file (apps/<app>/secrets.<env>.yaml), so that they stay out of Git in clear",
		ev.app, ev.env, list(bad))
}

// checkSandbox: nothing the unit uses names production (see reachesProd).
func checkSandbox(ev *evaluation) (bool, string) {
	bad := reachesProd(ev.unit, ev.set.ctx.prodNames)
	if len(bad) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%s in %s (a sandbox) reaches production: %s; sandbox apps use sandbox resources only",
		ev.app, ev.env, list(bad))
}

// list joins at most three items, then says how many more.
func list(items []string) string {
	if len(items) <= 3 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// shortDigest abbreviates sha256:<64 hex> to its first 12 hex digits, as
// docker does.
func shortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
}
