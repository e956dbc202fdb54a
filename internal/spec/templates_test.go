package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

const svcTemplate = `apiVersion: socle.dev/v1
kind: Template
metadata: {name: svc}
version: 2
parameters:
  - name: owner
    type: string
    required: true
    source: teams
  - name: replicas
    type: integer
    default: 2
`

// TestTemplateProblems plants one mistake at a time in a template: each
// is reported at its file and line.
func TestTemplateProblems(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"templates/svc/template.yaml":    svcTemplate,
		"templates/svc/files/socle.yaml": "owner: {{ .owner }}\nreplicas: {min: 1, max: {{ .replicas }}}\n",
		"templates/svc/files/main.go":    "package main\n\n// {{ .app }}\n{{ with .owner }}{{ .inner }}{{ end }}\n",
	}
	tests := []struct {
		name, file, data string
		want             []string // substrings of one problem's String()
	}{
		{"valid", "", "", nil},
		{"unknown value", "templates/svc/files/main.go", "package main\n\n// {{ .app }} of {{ .team }}\n", []string{"templates/svc/files/main.go:3:", ".team", `no parameter "team"`}},
		{"parse error", "templates/svc/files/socle.yaml", "owner: {{ .owner }}\n{{ if .owner }}\n", []string{"templates/svc/files/socle.yaml:3:", "unexpected EOF"}},
		{"default of the wrong type", "templates/svc/template.yaml", strings.Replace(svcTemplate, "default: 2", "default: many", 1), []string{"templates/svc/template.yaml:12:", "parameters[1].default", "is not an integer"}},
		{"picker of integers", "templates/svc/template.yaml", strings.Replace(svcTemplate, "type: integer\n", "type: integer\n    source: teams\n", 1), []string{"templates/svc/template.yaml:", "parameters[1].source", "string parameter"}},
		{"app is socle's", "templates/svc/template.yaml", strings.Replace(svcTemplate, "name: replicas", "name: app", 1), []string{"parameters[1].name", "socle's own"}},
		{"bad pattern", "templates/svc/template.yaml", strings.Replace(svcTemplate, "source: teams", "pattern: \"[a-\"", 1), []string{"parameters[0].pattern", "error parsing regexp"}},
		{"version zero", "templates/svc/template.yaml", strings.Replace(svcTemplate, "version: 2", "version: 0", 1), []string{"templates/svc/template.yaml:4:", "version"}},
		{"record without version", "apps/shop/.template.yaml", "apiVersion: socle.dev/v1\nkind: AppTemplate\ntemplate: svc\nrevision: abc\n", []string{"apps/shop/.template.yaml", "version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fsys := minimalRepo()
			for p, d := range good {
				fsys[p] = &fstest.MapFile{Data: []byte(d)}
			}
			if tt.file != "" {
				fsys[tt.file] = &fstest.MapFile{Data: []byte(tt.data)}
			}
			repo, ps := Load(fsys)
			if tt.want == nil {
				if ps.Err() != nil {
					t.Fatalf("want no problem, got:\n%v", ps)
				}
				tm := repo.Templates["svc"]
				if tm == nil || tm.TemplateVersion() != 2 || len(tm.Files) != 2 {
					t.Fatalf("template: %+v", tm)
				}
				return
			}
			for _, p := range ps {
				ok := true
				for _, w := range tt.want {
					ok = ok && strings.Contains(p.String(), w)
				}
				if ok {
					return
				}
			}
			t.Errorf("want a problem with %q, got:\n%v", tt.want, ps)
		})
	}
}

// TestAppTemplateRecord reads an app's record of its template.
func TestAppTemplateRecord(t *testing.T) {
	t.Parallel()
	fsys := minimalRepo()
	fsys["apps/shop/.template.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: socle.dev/v1\nkind: AppTemplate\ntemplate: svc\nversion: 3\nrevision: abc123\nparameters: {owner: core, replicas: 2, debug: true}\n")}
	repo, ps := Load(fsys)
	if ps.Err() != nil {
		t.Fatal(ps)
	}
	rec := repo.App("shop").Template
	if rec == nil || rec.Template != "svc" || rec.Version != 3 || rec.Revision != "abc123" || rec.Parameters["owner"] != "core" || rec.Parameters["debug"] != true {
		t.Fatalf("record: %+v", rec)
	}
	if v, err := CheckParameter(Parameter{Name: "replicas", Type: "integer"}, rec.Parameters["replicas"], nil); err != nil || v != int64(2) {
		t.Errorf("replicas read back as %v (%v)", v, err)
	}
}
