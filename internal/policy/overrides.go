package policy

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/socle-dev/socle/internal/spec"
)

// OverridesFile is where a repository changes the severity of socle's
// built-in guardrails or turns them off:
//
//	apiVersion: socle.dev/v1
//	kind: BuiltinPolicies
//	builtins:
//	  immutable-image-tags: warn          # deny (the default), warn or off
//	  readiness-probe-for-traffic: off
//
// It lives in a folder of policies/ because the files directly in
// policies/ are policy sets.
const OverridesFile = "policies/builtins/overrides.yaml"

// off is the override that turns a built-in off.
const off spec.Severity = "off"

// readOverrides reads OverridesFile, if the repository has one: the
// built-ins' severities and the settings of the stack built-ins.
func readOverrides(fsys fs.FS) (map[string]spec.Severity, stackSettings, spec.Problems) {
	out := map[string]spec.Severity{}
	var cfg stackSettings
	if fsys == nil {
		return out, cfg, nil
	}
	root, missing, problems := readYAML(fsys, OverridesFile, nil)
	if missing || problems != nil {
		return out, cfg, problems
	}
	y := &yamlFile{fsys: fsys, file: OverridesFile}
	fields := map[string]string{"apiVersion": spec.APIVersion, "kind": "BuiltinPolicies", "builtins": ""}
	// stacks is optional, and so is builtins beside it.
	if root != nil && root.Kind == yaml.MappingNode && child(root, "stacks") != nil {
		fields["stacks"] = ""
		if child(root, "builtins") == nil {
			delete(fields, "builtins")
		}
	}
	if bad := checkHeader(y, root, fields); len(bad) > 0 {
		return out, cfg, bad
	}
	if n := child(root, "stacks"); n != nil {
		cfg, problems = readStackSettings(n)
	}
	list := child(root, "builtins")
	if list == nil {
		return out, cfg, problems
	}
	if list.Kind != yaml.MappingNode {
		return out, cfg, append(problems, y.problem("expected a mapping of built-in name to deny, warn or off", "builtins"))
	}
	for i := 0; i+1 < len(list.Content); i += 2 {
		k, v := list.Content[i], list.Content[i+1]
		if !isBuiltin(k.Value) {
			problems = append(problems, spec.Problem{File: OverridesFile, Line: k.Line, Column: k.Column, Field: "builtins." + k.Value,
				Message: fmt.Sprintf("no built-in guardrail is named %q; they are %s", k.Value, strings.Join(builtinNames(), ", "))})
			continue
		}
		switch s := spec.Severity(v.Value); s {
		case spec.SeverityDeny, spec.SeverityWarn, off:
			out[k.Value] = s
		default:
			problems = append(problems, spec.Problem{File: OverridesFile, Line: v.Line, Column: v.Column, Field: "builtins." + k.Value,
				Message: fmt.Sprintf("expected deny, warn or off, found %q", v.Value)})
		}
	}
	return out, cfg, problems
}

// checkHeader checks a socle file's top-level fields: only the known ones,
// apiVersion and kind with their required values, every field present.
func checkHeader(y *yamlFile, root *yaml.Node, fields map[string]string) spec.Problems {
	y.root, y.parsed = root, true
	if root == nil || root.Kind != yaml.MappingNode {
		return spec.Problems{{File: y.file, Line: 1, Column: 1, Message: "expected a mapping of fields (apiVersion, kind, …)"}}
	}
	var problems spec.Problems
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		want, known := fields[k.Value]
		switch {
		case !known:
			problems = append(problems, spec.Problem{File: y.file, Line: k.Line, Column: k.Column, Field: k.Value,
				Message: fmt.Sprintf("unknown field %q: expected %s", k.Value, fieldList(fields))})
		case want != "" && v.Value != want:
			problems = append(problems, spec.Problem{File: y.file, Line: v.Line, Column: v.Column, Field: k.Value,
				Message: fmt.Sprintf("expected %q, found %q", want, v.Value)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if child(root, name) == nil {
			problems = append(problems, spec.Problem{File: y.file, Line: root.Line, Column: root.Column,
				Message: fmt.Sprintf("missing field %q", name)})
		}
	}
	return problems
}

func fieldList(fields map[string]string) string {
	var names []string
	for _, n := range []string{"apiVersion", "kind"} {
		if _, ok := fields[n]; ok {
			names = append(names, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(fields)) {
		if n != "apiVersion" && n != "kind" {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}
