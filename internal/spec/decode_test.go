package spec

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/score-spec/score-go/loader"
	scoreschema "github.com/score-spec/score-go/schema"
	"github.com/score-spec/score-go/types"
)

// scoreSamples are the Score files the decoders must agree on: score-go's
// own samples/score-full.yaml, the specification's examples, the demo apps,
// the bench's and the tests' files.
func scoreSamples(t testing.TB) map[string][]byte {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/score-spec/score-go").Output()
	if err != nil {
		t.Fatalf("locating score-go: %v", err)
	}
	samples := map[string][]byte{"bench": []byte(benchScore), "minimal": []byte(minimalScore)}
	dirs := []string{filepath.Join(strings.TrimSpace(string(out)), "schema", "files", "samples"), "../../examples", "testdata"}
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ".yaml") && (strings.HasSuffix(p, ScoreFile) || strings.Contains(p, "samples")) && !strings.Contains(p, "/"+TemplatesDir+"/") {
				if b, err := os.ReadFile(p); err == nil {
					samples[p] = b
				}
			}
			return nil
		})
	}
	for name, data := range map[string]string{
		"deprecated": "apiVersion: score.dev/v1b1\nmetadata:\n  name: d\ncontainers:\n  main:\n    image: i\n    files:\n    - target: /x\n      content: [a, b]\n    volumes:\n    - target: /v\n      source: s\n      read_only: true\n",
		"nulls":      "apiVersion: score.dev/v1b1\nmetadata: {name: n, a: ~, b: [1, ~]}\ncontainers:\n  main:\n    image: i\n    args: [a, ~]\n    variables: {A: ~}\nresources:\n  r: {type: t, params: {x: 1, y: 2.5, z: {w: true}}}\n",
		"floats":     "apiVersion: score.dev/v1b1\nmetadata: {name: f}\ncontainers: {main: {image: i}}\nservice: {ports: {p: {port: 80.0, targetPort: 8.08e3}}}\n",
		"cased":      "apiVersion: score.dev/v1b1\nmetadata: {name: c}\ncontainers: {main: {Image: i}}\n",
	} {
		samples[name] = []byte(data)
	}
	return samples
}

// checkMapWorkload compares mapstructureDecoder with score-go's MapSpec on
// one file; it returns whether the fast path was taken.
func checkMapWorkload(t *testing.T, name string, data []byte) bool {
	d, p := parseYAML(name, data)
	if p != nil {
		return false
	}
	raw, ok := d.value.(map[string]any)
	if !ok {
		return false
	}
	if _, err := scoreschema.ApplyCommonUpgradeTransforms(raw); err != nil {
		return false
	}
	var want, got types.Workload
	werr := loader.MapSpec(&want, raw)
	if !mapstructureDecoder.decode(newDecodeState(), raw, &got) {
		return false
	}
	if werr != nil {
		t.Fatalf("%s: the fast path decodes what MapSpec rejects (%v):\n%s", name, werr, data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the fast path gives\n%#v\nMapSpec gives\n%#v", name, got, want)
	}
	return true
}

// socleKinds are the types socle's files decode into, with a fresh value.
var socleKinds = []func() any{
	func() any { return new(Platform) }, func() any { return new(Teams) }, func() any { return new(AppConfig) },
	func() any { return new(Releases) }, func() any { return new(Budgets) }, func() any { return new(PolicySet) },
	func() any { return new(Template) },
}

// checkJSONDecode compares jsonDecoder with the JSON round trip for every
// kind of socle file; it returns how many kinds took the fast path.
func checkJSONDecode(t *testing.T, name string, data []byte) int {
	d, p := parseYAML(name, data)
	if p != nil {
		return 0
	}
	n := 0
	for _, kind := range socleKinds {
		want, got := kind(), kind()
		werr := d.decode(want)
		if !jsonDecoder.decode(newDecodeState(), d.value, got) {
			continue
		}
		n++
		if werr != nil {
			t.Fatalf("%s: the fast path decodes into %T what encoding/json rejects (%v):\n%s", name, got, werr, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the fast path gives\n%#v\nencoding/json gives\n%#v", name, got, want)
		}
	}
	return n
}

func TestValueDecoder(t *testing.T) {
	t.Parallel()
	for name, data := range scoreSamples(t) {
		fast := checkMapWorkload(t, name, data)
		// Not plain: a key that only matches regardless of case, a port
		// that is not a number (the testdata's planted mistake).
		plain := name != "cased" && !strings.HasPrefix(name, "testdata/broken/apps/web")
		if fast != plain {
			t.Errorf("%s: the fast path maps this Score file: %v, want %v", name, fast, plain)
		}
	}
	for _, data := range yamlSeeds(t) {
		checkJSONDecode(t, "seed", data)
	}
	// Every socle file of the demo takes the fast path, but for the
	// template, the stacks and the provisioners (a template's parameters'
	// defaults, a stack's inputs and a provisioner's config are of type
	// any, which encoding/json fills with float64s: not covered).
	filepath.WalkDir("../../examples/platform", func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ScoreFile) || strings.Contains(p, "/files/") || strings.Contains(p, "/tests/") || strings.HasSuffix(p, TemplateFile) || strings.HasSuffix(p, StackFile) || strings.Contains(p, "/"+ProvisionersDir+"/") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if checkJSONDecode(t, p, b) == 0 {
			t.Errorf("%s: no kind takes the fast path", p)
		}
		return nil
	})
	if checkJSONDecode(t, "bench", []byte(benchConf)) == 0 {
		t.Error("the bench's app file does not take the fast path")
	}
}

func FuzzValueDecoder(f *testing.F) {
	for _, s := range yamlSeeds(f) {
		f.Add(s)
	}
	for _, s := range scoreSamples(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMapWorkload(t, "fuzz", data)
		checkJSONDecode(t, "fuzz", data)
	})
}

// TestLoadManyApps loads a repository of many varied apps, whose files go
// through the map pools and the shared strings, and compares every app with
// its files decoded on their own the way they were before (yaml.v3, MapSpec,
// encoding/json): nothing one app keeps may be emptied or changed by the
// next.
func TestLoadManyApps(t *testing.T) {
	t.Parallel()
	fsys := minimalRepo()
	const n = 300
	for i := range n {
		name := fmt.Sprintf("app-%03d", i)
		score := fmt.Sprintf("apiVersion: score.dev/v1b1\nmetadata:\n  name: %s\n  annotations: {example.com/team: \"%d\", shared: common}\n  extra: {list: [%d, {k: v%d}], n: %d}\n"+
			"containers:\n  main:\n    image: img-%d\n    variables: {A: \"${resources.db.host}\", B: b%d, COMMON: same}\n    args: [x, \"%d\"]\n"+
			"resources:\n  db:\n    type: postgres\n    params: {size: %d, tags: [a, b%d], nested: {deep: {x: %d}}}\n", name, i, i, i, i, i, i, i, i, i, i)
		conf := fmt.Sprintf("apiVersion: socle.dev/v1\nkind: App\nowner: core\nreplicas: {min: %d, max: %d}\nenvironments:\n  dev: {variables: {A: a%d, COMMON: same}}\n", i%5, 10+i%5, i)
		fsys["apps/"+name+"/score.yaml"] = &fstest.MapFile{Data: []byte(score)}
		fsys["apps/"+name+"/socle.yaml"] = &fstest.MapFile{Data: []byte(conf)}
	}
	r, ps := Load(fsys)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if len(r.Apps) != n+1 {
		t.Fatalf("%d apps", len(r.Apps))
	}
	for _, a := range r.Apps {
		dir := "apps/" + a.Name + "/"
		// The Score file, as score-go reads it.
		root, p := readNodes("s", fsys[dir+ScoreFile].Data)
		if p != nil {
			t.Fatal(p)
		}
		raw, err := referenceValue(root, 0)
		if err != nil {
			t.Fatal(err)
		}
		var w types.Workload
		if _, err := scoreschema.ApplyCommonUpgradeTransforms(raw.(map[string]any)); err != nil {
			t.Fatal(err)
		}
		if err := loader.MapSpec(&w, raw.(map[string]any)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*a.Workload, w) {
			t.Fatalf("%s: workload\n%#v\nwant\n%#v", a.Name, *a.Workload, w)
		}
		if a.Name == "shop" {
			continue
		}
		// The app's socle.yaml through encoding/json, defaults applied.
		croot, p := readNodes("c", fsys[dir+AppFile].Data)
		if p != nil {
			t.Fatal(p)
		}
		cv, _ := referenceValue(croot, 0)
		var c AppConfig
		if err := (&document{value: cv}).decode(&c); err != nil {
			t.Fatal(err)
		}
		want := &Repo{Apps: []*App{{Name: a.Name, Config: c}}}
		applyDefaults(want)
		if !reflect.DeepEqual(a.Config, want.Apps[0].Config) {
			t.Fatalf("%s: config\n%#v\nwant\n%#v", a.Name, a.Config, want.Apps[0].Config)
		}
	}
}
