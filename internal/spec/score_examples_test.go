package spec

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/score-spec/score-go/framework"

	"github.com/socle-dev/socle/internal/golden"
)

// examplesPlatform is the small platform the Score project's examples are
// loaded in: one local environment, which declares the variable the
// environment example reads (score-compose reads it from the shell that
// runs it: socle from the environment's variables). (Kubernetes
// environments have no provisioner of socle's yet: there every example
// with a resource is refused, which TestProvisionerProblems shows.)
const examplesPlatform = `apiVersion: socle.dev/v1
kind: Platform
metadata: {name: examples}
environments:
  - name: dev
    runtime: {type: local}
    sync: auto
    variables: {NAME: World}
`

// TestScoreExamples loads every Score workload of the Score project's
// examples (testdata/score-examples, see its README), beside the other
// workloads of its example: each either
// validates and renders, its placeholders substituted with the outputs
// its provisioners declare, or is refused by validate with a message that
// names the missing output or the unsupported feature. None validates and
// then fails to render. The golden file lists the verdicts.
func TestScoreExamples(t *testing.T) {
	t.Parallel()
	const dir = "testdata/score-examples"
	src := os.DirFS(dir)
	files, err := fs.Glob(src, "*/*/*/score*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := fs.Glob(src, "*/*/*/*/score*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	slices.Sort(files)
	if len(files) != 32 {
		t.Fatalf("found %d example workloads, want the 32 of the Score project's repositories", len(files))
	}
	var verdicts strings.Builder
	accepted := 0
	for _, file := range files {
		data, err := fs.ReadFile(src, file)
		if err != nil {
			t.Fatal(err)
		}
		d, p := parseYAML(file, data)
		if p != nil {
			t.Fatal(p)
		}
		app, _ := field(field(d.value, "metadata"), "name").(string)
		fsys := fstest.MapFS{
			"socle.yaml":                  {Data: []byte(examplesPlatform)},
			"teams.yaml":                  {Data: []byte(minimalTeams)},
			"apps/" + app + "/score.yaml": {Data: data},
		}
		// The other workloads of its example, which it may reach
		// (service-port), each an app of its own.
		others, _ := fs.Glob(src, path.Join(path.Dir(file), "score*.yaml"))
		for _, o := range slices.DeleteFunc(others, func(o string) bool { return o == file }) {
			b, err := fs.ReadFile(src, o)
			if err != nil {
				t.Fatal(err)
			}
			od, p := parseYAML(o, b)
			if p != nil {
				t.Fatal(p)
			}
			name, _ := field(field(od.value, "metadata"), "name").(string)
			fsys["apps/"+name+"/score.yaml"] = &fstest.MapFile{Data: b}
		}
		// The files a workload mounts from its directory.
		siblings, _ := fs.Glob(src, path.Join(path.Dir(file), "*.txt"))
		for _, s := range siblings {
			b, err := fs.ReadFile(src, s)
			if err != nil {
				t.Fatal(err)
			}
			fsys["apps/"+app+"/"+path.Base(s)] = &fstest.MapFile{Data: b}
		}
		r, ps := Load(fsys)
		if ps.Err() == nil {
			accepted++
			fmt.Fprintf(&verdicts, "%s: accepted\n", file)
			if err := renderLocal(r, r.App(app)); err != nil {
				t.Errorf("%s passes validate and then fails to render: %v", file, err)
			}
			continue
		}
		var first Problem
		for _, p := range ps {
			if !p.Warning {
				first = p
				break
			}
		}
		fmt.Fprintf(&verdicts, "%s: refused: %s\n", file, first)
		if !strings.Contains(first.Message, "has no output") && !strings.Contains(first.Message, "not supported yet") &&
			!strings.Contains(first.Message, "no provisioner serves it") {
			t.Errorf("%s is refused for something else than a missing output or an unsupported feature: %s", file, first)
		}
	}
	fmt.Fprintf(&verdicts, "%d accepted, %d refused\n", accepted, len(files)-accepted)
	golden.Check(t, "testdata/score-examples.golden", []byte(verdicts.String()))
}

// renderLocal substitutes every placeholder of an app's workload where
// Score substitutes them, as a runtime does in environment dev, with
// outputs made from what the resources' provisioners declare.
func renderLocal(r *Repo, a *App) error {
	w := a.Workload
	outputs := map[string]framework.OutputLookupFunc{}
	for name, res := range w.Resources {
		p := r.ProvisionerFor(res.Type, deref(res.Class), deref(res.Id), "dev")
		if p == nil {
			return fmt.Errorf("resource %s (%s): no provisioner", name, res.Type)
		}
		values := map[string]any{}
		for _, o := range p.Outputs {
			values[o.Name] = name + "-" + o.Name
		}
		outputs[name] = func(keys ...string) (any, error) {
			switch {
			case len(keys) == 0:
				return values, nil
			case len(keys) > 1:
				return nil, fmt.Errorf("output %q is a string", keys[0])
			}
			v, ok := values[keys[0]]
			if !ok {
				return nil, fmt.Errorf("resource %s has no output %q (it has %s)", name, keys[0], strings.Join(slices.Sorted(maps.Keys(values)), ", "))
			}
			return v, nil
		}
	}
	subst := framework.BuildSubstitutionFunction(w.Metadata, outputs)
	str := func(s string) error {
		_, err := framework.SubstituteString(s, subst)
		return err
	}
	for _, c := range w.Containers {
		for k, v := range c.Variables {
			if err := str(v); err != nil {
				return fmt.Errorf("variable %s: %w", k, err)
			}
		}
		for target, f := range c.Files {
			if f.Content != nil && (f.NoExpand == nil || !*f.NoExpand) {
				if err := str(*f.Content); err != nil {
					return fmt.Errorf("file %s: %w", target, err)
				}
			}
		}
		for target, v := range c.Volumes {
			if err := str(v.Source); err != nil {
				return fmt.Errorf("volume %s: %w", target, err)
			}
		}
	}
	for name, res := range w.Resources {
		if _, err := framework.Substitute(map[string]any(res.Params), subst); err != nil {
			return fmt.Errorf("resource %s params: %w", name, err)
		}
	}
	return nil
}
