package template

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/socle-dev/socle/internal/spec"
)

// Values are the parameters a template is rendered with, each of its
// parameter's type (string, int64 or bool).
type Values map[string]any

// MissingError names the required parameters no value was given for.
type MissingError struct {
	Template string
	Missing  []spec.Parameter
}

func (e *MissingError) Error() string {
	var parts []string
	for _, p := range e.Missing {
		s := p.Name
		if p.Description != "" {
			s += " (" + p.Description + ")"
		}
		parts = append(parts, s)
	}
	noun := "parameter"
	if len(parts) > 1 {
		noun += "s"
	}
	return fmt.Sprintf("template %s needs the %s %s: give it with --set %s=VALUE", e.Template, noun, strings.Join(parts, ", "), e.Missing[0].Name)
}

// InvalidError is a value the template refuses.
type InvalidError struct {
	Parameter string
	Err       error
}

func (e *InvalidError) Error() string { return fmt.Sprintf("parameter %s: %v", e.Parameter, e.Err) }

// Choices are the values an owner picker (source: teams) allows: the
// caller's teams.
func Choices(p spec.Parameter, teams []string) []string {
	if p.Source == spec.SourceTeams {
		return teams
	}
	return p.Enum
}

// Resolve checks the values given against t's parameters and fills in
// the defaults. teams are the teams the caller may pick as an owner. A
// value for no parameter is an error; so is a required one missing
// (*MissingError, with every one missing).
func Resolve(name string, t *spec.Template, given map[string]any, teams []string) (Values, error) {
	out := Values{}
	var missing []spec.Parameter
	byName := map[string]bool{}
	for _, p := range t.Parameters {
		byName[p.Name] = true
		v, ok := given[p.Name]
		if !ok || v == nil || v == "" {
			if p.Default != nil {
				v, ok = p.Default, true
			}
		}
		if !ok || v == nil || v == "" {
			if p.Required {
				missing = append(missing, p)
			}
			continue
		}
		x, err := spec.CheckParameter(p, v, nil)
		if err != nil {
			return nil, &InvalidError{p.Name, err}
		}
		if p.Source == spec.SourceTeams && !slices.Contains(teams, x.(string)) {
			return nil, &InvalidError{p.Name, fmt.Errorf("%q is not a team you can create an app for (yours: %s)", x, orNone(teams))}
		}
		out[p.Name] = x
	}
	for _, k := range slices.Sorted(maps.Keys(given)) {
		if !byName[k] {
			return nil, &InvalidError{k, fmt.Errorf("template %s has no such parameter (it has %s)", name, orNone(paramNames(t)))}
		}
	}
	if len(missing) > 0 {
		return nil, &MissingError{Template: name, Missing: missing}
	}
	return out, nil
}

func paramNames(t *spec.Template) []string {
	var out []string
	for _, p := range t.Parameters {
		out = append(out, p.Name)
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Render renders every file of t for app with v: their contents by
// their path under apps/<app>/.
func Render(t *spec.Template, app string, v Values) (map[string][]byte, error) {
	data := map[string]any{}
	for k, x := range v {
		data[k] = x
	}
	data["app"] = app
	out := map[string][]byte{}
	for _, rel := range slices.Sorted(maps.Keys(t.Files)) {
		tt, err := spec.ParseTemplateFile(rel, t.Files[rel])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Join(spec.TemplateFilesDir, rel), err)
		}
		var b bytes.Buffer
		if err := tt.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("rendering %s: %w", path.Join(spec.TemplateFilesDir, rel), err)
		}
		out[rel] = b.Bytes()
	}
	return out, nil
}

// Record is the content of apps/<app>/.template.yaml for an app rendered
// from template name at version, from the files at revision, with v.
func Record(name string, version int, revision string, v Values) []byte {
	rec := spec.AppTemplate{APIVersion: "socle.dev/v1", Kind: "AppTemplate", Template: name, Version: version, Revision: revision, Parameters: map[string]any(v)}
	b, err := yaml.Marshal(rec)
	if err != nil {
		panic(err) // strings, integers and booleans always marshal
	}
	return append([]byte("# Written by socle: the template this app was made from, for socle template status and upgrade.\n"), b...)
}
