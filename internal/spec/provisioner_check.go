package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// loadProvisioners reads provisioners/*.yaml, in file order.
func (l *loading) loadProvisioners() {
	for _, f := range l.yamlFiles(ProvisionersDir) {
		d := l.read(f, true, "provisioners")
		if d == nil {
			continue
		}
		var set ProvisionerSet
		l.decode(d, &set)
		for i := range set.Provisioners {
			p := &set.Provisioners[i]
			p.File, p.index = f, i
			if n, _ := d.locate("provisioners", idx(i)); n != nil {
				p.Line = n.Line
			}
			l.repo.Provisioners = append(l.repo.Provisioners, p)
		}
	}
}

// envVarName is the form of a variable of socle's environment.
var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkProvisioners checks what the schema cannot: unique names, names
// that refer to the platform, and each driver's config against the
// outputs declared.
func (l *loading) checkProvisioners() {
	r := l.repo
	byName := map[string]*Provisioner{}
	runtimes := map[string]bool{}
	for _, e := range r.Platform.Environments {
		if e.Runtime.Type != "" {
			runtimes[string(e.Runtime.Type)] = true
		}
	}
	if l.runtimes != nil {
		for _, t := range l.runtimes.RuntimeTypes() {
			runtimes[string(t.Name)] = true
		}
	}
	for _, p := range r.Provisioners {
		f := p.File
		at := func(field ...string) []string { return append([]string{"provisioners", idx(p.index)}, field...) }
		switch other := byName[p.Name]; {
		case p.Name == "":
		case strings.HasPrefix(p.Name, "builtin/"):
			l.at(f, "names starting with builtin/ are socle's own provisioners: name it otherwise (a provisioner of the platform serves before the built-in ones, whatever its name)", at("name")...)
		case other != nil:
			l.at(f, fmt.Sprintf("a provisioner named %q is already defined at %s:%d", p.Name, other.File, other.Line), at("name")...)
		default:
			byName[p.Name] = p
		}
		m := &p.Match
		l.checkNameList(f, "environment", m.Environments, l.names.envs, at("match", "environments")...)
		l.checkNameList(f, "zone", m.Zones, l.names.zones, at("match", "zones")...)
		rts := make([]string, len(m.Runtimes))
		for i, t := range m.Runtimes {
			rts[i] = string(t)
		}
		l.checkNameList(f, "runtime", rts, runtimes, at("match", "runtimes")...)
		seen := map[string]bool{}
		for i, o := range p.Outputs {
			if seen[o.Name] {
				l.at(f, fmt.Sprintf("output %q is declared twice", o.Name), at("outputs", idx(i), "name")...)
			}
			seen[o.Name] = true
		}
		switch p.Driver {
		case DriverStatic:
			l.checkStaticConfig(p, at)
		case DriverStack:
			l.checkStackConfig(p, at)
		}
	}
}

// checkStaticConfig checks that a static provisioner gives a value to
// every output it declares, and to nothing else.
func (l *loading) checkStaticConfig(p *Provisioner, at func(...string) []string) {
	f := p.File
	for _, k := range slices.Sorted(maps.Keys(p.Config)) {
		if k != "outputs" {
			l.atKey(f, k, fmt.Sprintf("unknown field %q: a static provisioner's config holds outputs", k), at("config")...)
		}
	}
	values, ok := p.Config["outputs"].(map[string]any)
	if !ok {
		l.at(f, "a static provisioner gives the value of each output it declares: config: {outputs: {<output>: <value>, …}}", at("config")...)
		return
	}
	for _, o := range p.Outputs {
		v, ok := values[o.Name]
		if !ok {
			l.at(f, fmt.Sprintf("no value for output %q in config.outputs: a static provisioner gives every output it declares", o.Name), at("config", "outputs")...)
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			name, _ := v["secretFromEnv"].(string)
			switch {
			case len(v) != 1 || !envVarName.MatchString(name):
				l.at(f, "expected a value, or {secretFromEnv: NAME} for a secret output", at("config", "outputs", o.Name)...)
			case !o.Secret:
				l.at(f, fmt.Sprintf("secretFromEnv reads a secret: declare output %q secret: true", o.Name), at("config", "outputs", o.Name)...)
			}
		case []any, nil:
			l.at(f, "expected a value, or {secretFromEnv: NAME} for a secret output", at("config", "outputs", o.Name)...)
		default:
			if o.Secret {
				l.warn(f, fmt.Sprintf("secret output %q is written in clear in the repository: read it from socle's environment with {secretFromEnv: NAME}", o.Name), at("config", "outputs", o.Name)...)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if p.Output(k) == nil {
			l.atKey(f, k, fmt.Sprintf("a value for %q, which the provisioner does not declare in outputs (it declares %s)", k, outputNames(p)), at("config", "outputs")...)
		}
	}
}

// checkStackConfig checks that a stack provisioner names a stack whose
// Terraform outputs are the outputs it declares.
func (l *loading) checkStackConfig(p *Provisioner, at func(...string) []string) {
	f := p.File
	name, _ := p.Config["stack"].(string)
	if name == "" {
		l.at(f, "a stack provisioner names the stack whose outputs are the resource's: config: {stack: <name>}", at("config")...)
		return
	}
	s := l.repo.Stack(name)
	if s == nil {
		l.at(f, fmt.Sprintf("no stack %q under stacks/%s", name, l.knownStacks()), at("config", "stack")...)
		return
	}
	l.checkStackInstances(p, s, at)
	if !s.tfOK {
		return // its outputs are not all known: its own problems say why
	}
	for i, o := range p.Outputs {
		out, ok := s.Outputs[o.Name]
		switch {
		case !ok:
			l.at(f, fmt.Sprintf("stack %q declares no output %q%s", name, o.Name, knownIn("outputs", s.Outputs)), at("outputs", idx(i), "name")...)
		case out.Sensitive && !o.Secret:
			l.at(f, fmt.Sprintf("output %q is sensitive in stack %q: declare it secret: true", o.Name, name), at("outputs", idx(i))...)
		}
	}
}

// checkStackInstances checks that stack s has an instance for every
// environment where p may serve a resource (its match's environments,
// zones and runtimes): a resource there would take the outputs of none.
func (l *loading) checkStackInstances(p *Provisioner, s *Stack, at func(...string) []string) {
	m := &p.Match
	var lack []string
	for _, e := range l.repo.Platform.Environments {
		if (len(m.Environments) > 0 && !slices.Contains(m.Environments, e.Name)) ||
			(len(m.Zones) > 0 && !slices.Contains(m.Zones, e.Zone)) ||
			(len(m.Runtimes) > 0 && !slices.Contains(m.Runtimes, e.Runtime.Type)) {
			continue
		}
		if _, ok := l.repo.StackInstanceFor(s, e.Name); !ok {
			lack = append(lack, e.Name)
		}
	}
	if len(lack) == 0 {
		return
	}
	per := "environments"
	if s.PerZone() {
		per = "zones"
	}
	l.at(p.File, fmt.Sprintf("stack %q has no instance for environment%s %s, where this provisioner serves %s (the stack's %s: %s): narrow its match, or add them to the stack",
		s.Name, plural(len(lack)), strings.Join(lack, ", "), m.Type, per, strings.Join(s.Instances(), ", ")), at("config", "stack")...)
}

// outputNames lists p's outputs for a message, in the order declared.
func outputNames(p *Provisioner) string {
	if len(p.Outputs) == 0 {
		return "none"
	}
	names := make([]string, len(p.Outputs))
	for i, o := range p.Outputs {
		names[i] = o.Name
	}
	return strings.Join(names, ", ")
}
