package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Render writes the plan for people, in the manner of terraform plan: one
// block per changed unit, + create, ~ update (field old → new), - delete,
// then a summary line. Unchanged units are counted, not listed.
func Render(w io.Writer, p *Plan) error { return RenderWith(w, p, nil) }

// RenderWith is Render with notes under each change (policy verdicts, say);
// an unchanged unit with notes is listed too, so that nothing is hidden.
func RenderWith(w io.Writer, p *Plan, notes func(c *Change) []string) error {
	var b strings.Builder
	for i := range p.Changes {
		c := &p.Changes[i]
		var extra []string
		if notes != nil {
			extra = notes(c)
		}
		if c.Action == NoOp && len(extra) > 0 {
			fmt.Fprintf(&b, "    %s @ %s (unchanged)\n", c.App, c.Env)
		}
		switch c.Action {
		case Create:
			u := c.Desired
			fmt.Fprintf(&b, "  + %s @ %s\n", c.App, c.Env)
			fmt.Fprintf(&b, "      source      %s\n", short(u.Source))
			if u.Artifact != "" {
				fmt.Fprintf(&b, "      artifact    %s\n", short(u.Artifact))
			}
			if u.Revision != "" {
				fmt.Fprintf(&b, "      revision    %s\n", shortRev(u.Revision))
			}
			fmt.Fprintf(&b, "      replicas    %d..%d\n", u.Replicas.Min, u.Replicas.Max)
			fmt.Fprintf(&b, "      rollout     %s\n", u.Rollout.Strategy)
			for _, name := range slices.Sorted(maps.Keys(u.Containers)) {
				fmt.Fprintf(&b, "      container   %s (image %s)\n", name, u.Containers[name].Image)
			}
			if u.Service != nil {
				for _, name := range slices.Sorted(maps.Keys(u.Service.Ports)) {
					fmt.Fprintf(&b, "      port        %s %d\n", name, u.Service.Ports[name].Port)
				}
			}
		case Update:
			fmt.Fprintf(&b, "  ~ %s @ %s\n", c.App, c.Env)
			writeFields(&b, c.Fields)
		case Delete:
			fmt.Fprintf(&b, "  - %s @ %s\n", c.App, c.Env)
		}
		for _, n := range extra {
			fmt.Fprintf(&b, "      %s\n", n)
		}
	}
	renderResources(&b, p.Resources)
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	s := p.Summary
	if !p.HasChanges() {
		fmt.Fprintf(&b, "No changes: %d unit%s up to date.\n", s.Unchanged, plural(s.Unchanged))
	} else {
		fmt.Fprintf(&b, "Plan: %d to create, %d to update, %d to delete, %d unchanged.\n", s.Create, s.Update, s.Delete, s.Unchanged)
	}
	if len(p.Resources) > 0 {
		var n [4]int // provision, again, deprovision, retain
		for _, c := range p.Resources {
			switch {
			case c.Action == Create:
				n[0]++
			case c.Action == Update:
				n[1]++
			case c.Retained:
				n[3]++
			default:
				n[2]++
			}
		}
		fmt.Fprintf(&b, "Resources: %d to provision, %d to provision again, %d to deprovision, %d retained.\n", n[0], n[1], n[2], n[3])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// renderResources writes one block per resource change, as the units'.
func renderResources(b *strings.Builder, changes []ResourceChange) {
	for _, c := range changes {
		sign := map[Action]string{Create: "+", Update: "~", Delete: "-"}[c.Action]
		what := c.Type
		if c.Class != "" {
			what += ", class " + c.Class
		}
		fmt.Fprintf(b, "  %s resource %s @ %s (%s)\n", sign, c.Name, c.Env, what)
		fmt.Fprintf(b, "      provisioner %s (driver %s)\n", c.Provisioner, c.Driver)
		apps := strings.Join(c.Apps, ", ")
		switch c.Action {
		case Create:
			fmt.Fprintf(b, "      used by     %s\n", apps)
		case Update:
			fmt.Fprintf(b, "      used by     %s\n", apps)
			writeFields(b, c.Fields)
			b.WriteString("      provisioned again\n")
		case Delete:
			fmt.Fprintf(b, "      used by     %s, no longer\n", apps)
			if c.Retained {
				fmt.Fprintf(b, "      retained: it holds data in a production environment; an admin deletes it with socle resource delete %s --env %s\n", c.Name, c.Env)
			} else {
				b.WriteString("      deprovisioned: what it holds is deleted\n")
			}
		}
	}
}

// writeFields writes an update's fields: + added, - removed, ~ old → new.
func writeFields(b *strings.Builder, fields []Field) {
	for _, f := range fields {
		switch {
		case f.Old == nil:
			fmt.Fprintf(b, "      + %s = %s\n", f.Path, value(f.New))
		case f.New == nil:
			fmt.Fprintf(b, "      - %s = %s\n", f.Path, value(f.Old))
		default:
			fmt.Fprintf(b, "      ~ %s: %s → %s\n", f.Path, value(f.Old), value(f.New))
		}
	}
}

func value(v any) string {
	if s, ok := v.(string); ok && strings.HasPrefix(s, "sha256:") {
		v = short(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if s := string(b); len(s) <= 80 {
		return s
	}
	return string(b[:77]) + "…"
}

// short abbreviates a sha256:… digest as git abbreviates commits.
func short(digest string) string {
	if algo, hex, ok := strings.Cut(digest, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return digest
}

func shortRev(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
