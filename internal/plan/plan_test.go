package plan

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
)

// example returns the demo platform as an editable in-memory tree.
func example(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	root := "../../examples/platform"
	err := fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(root, p))
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func load(t *testing.T, fsys fs.FS) *spec.Repo {
	t.Helper()
	r, ps := spec.Load(fsys)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

func edit(m fstest.MapFS, file, old, new string) {
	m[file] = &fstest.MapFile{Data: []byte(strings.Replace(string(m[file].Data), old, new, 1))}
}

const (
	rev1 = "1111111111111111111111111111111111111111"
	rev2 = "2222222222222222222222222222222222222222"
	dig  = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// TestPlans is the golden test of spec in, plan out: each case edits the
// demo platform and plans against the state of the unedited one (or of
// the one its before edits, for both): units and the resources they use.
func TestPlans(t *testing.T) {
	t.Parallel()
	base := Desired(load(t, example(t)), rev1, nil)
	pinAPI := func(m fstest.MapFS) {
		edit(m, "releases/prod.yaml", "apps: {}", "apps:\n  api: {revision: \""+rev1+"\", artifact: "+dig+", from: preprod}")
	}
	noDB := func(m fstest.MapFS) {
		edit(m, "apps/api/score.yaml", "DATABASE_URL: \"postgres://${resources.db.username}:${resources.db.password}@${resources.db.host}:${resources.db.port}/${resources.db.name}?sslmode=disable\"", "LOG_LEVEL: info")
		edit(m, "apps/api/score.yaml", "resources:\n  db:\n    type: postgres\n", "")
	}
	tests := []struct {
		name    string
		applied []Unit
		before  func(m fstest.MapFS) // applied to the state planned against, and to the edited tree
		edit    func(m fstest.MapFS)
	}{
		{name: "initial", applied: nil, edit: func(fstest.MapFS) {}},
		{name: "nothing", applied: base, edit: func(fstest.MapFS) {}},
		{name: "unrelated-commit", applied: base, edit: func(m fstest.MapFS) {
			m["README.md"] = &fstest.MapFile{Data: []byte("docs only\n")}
			edit(m, "apps/api/socle.yaml", "description: Room and ski-pass bookings", "description: Bookings")
		}},
		{name: "variable-and-replicas", applied: base, edit: func(m fstest.MapFS) {
			edit(m, "apps/web/socle.yaml", "variables: {LOG_LEVEL: debug}", "variables: {LOG_LEVEL: info, FEATURE_X: \"on\"}")
			edit(m, "apps/web/socle.yaml", "replicas: {min: 1, max: 2}", "replicas: {min: 2, max: 2}")
		}},
		{name: "source-change", applied: base, edit: func(m fstest.MapFS) {
			edit(m, "apps/worker/main.go", "no confirmation to send", "nothing to confirm")
		}},
		{name: "remove-app", applied: base, edit: func(m fstest.MapFS) {
			for _, f := range []string{"score.yaml", "socle.yaml", "main.go", "go.mod"} {
				delete(m, "apps/worker/"+f)
			}
		}},
		{name: "promote", applied: base, edit: func(m fstest.MapFS) {
			edit(m, "releases/prod.yaml", "apps: {}", "apps:\n  web: {revision: \""+rev1+"\", artifact: "+dig+", from: preprod}")
		}},
		{name: "disable-in-sandbox", applied: base, edit: func(m fstest.MapFS) {
			edit(m, "apps/web/socle.yaml", "environments:\n", "environments:\n  sandbox: {disabled: true}\n")
		}},
		// Resources: a new one provisioned, one whose params change
		// provisioned again, one served by another provisioner, and one
		// removed: deprovisioned in dev, retained in prod, where it holds
		// data.
		{name: "add-resource", applied: base, edit: func(m fstest.MapFS) {
			edit(m, "apps/worker/score.yaml", "containers:", "resources:\n  queue: {type: redis}\n  shared: {type: postgres, id: bookings-db}\ncontainers:")
		}},
		{name: "resource-params", applied: base, edit: func(m fstest.MapFS) {
			edit(m, "apps/api/score.yaml", "    type: postgres\n", "    type: postgres\n    class: large\n    params: {extensions: [pgcrypto]}\n")
		}},
		{name: "resource-provisioner", applied: base, edit: func(m fstest.MapFS) {
			m["provisioners/postgres.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: socle.dev/v1
kind: Provisioners
provisioners:
  - name: managed-postgres
    match: {type: postgres, environments: [dev]}
    driver: static
    data: true
    outputs: [{name: host}, {name: port}, {name: name}, {name: username}, {name: password, secret: true}]
    config:
      outputs: {host: db.internal, port: "5432", name: api, username: api, password: {secretFromEnv: API_DB_PASSWORD}}
`)}
		}},
		{name: "remove-resource", before: pinAPI, edit: noDB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, m := example(t), example(t)
			if tt.before != nil {
				tt.before(old)
				tt.before(m)
				tt.applied = Desired(load(t, old), rev1, nil)
			}
			oldRepo := load(t, old)
			tt.edit(m)
			repo := load(t, m)
			desired := Desired(repo, rev2, nil)
			p := Diff(rev2, desired, tt.applied)
			p.Resources = DiffResources(ResourcesOf(oldRepo, tt.applied), ResourcesOf(repo, desired))
			var text bytes.Buffer
			if err := Render(&text, &p); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tt.name+".txt"), text.Bytes())
			js, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tt.name+".json"), append(js, '\n'))
		})
	}
}

func TestDiffIsPure(t *testing.T) {
	t.Parallel()
	r := load(t, example(t))
	a, b := Desired(r, rev1, nil), Desired(r, rev1, nil)
	p1, p2 := Diff(rev1, a, nil), Diff(rev1, b, nil)
	j1, _ := json.Marshal(p1)
	j2, _ := json.Marshal(p2)
	if !bytes.Equal(j1, j2) {
		t.Fatal("the same inputs gave different plans")
	}
	if p := Diff(rev2, a, b); p.HasChanges() {
		t.Fatalf("a new revision alone changed %d units", p.Summary.Update)
	}
}

func TestPinnedRevisionUsesItsOwnDefinition(t *testing.T) {
	t.Parallel()
	old := example(t)
	edit(old, "apps/web/socle.yaml", "replicas: {min: 3, max: 8}", "replicas: {min: 5, max: 5}")
	oldWeb := load(t, old).App("web")
	m := example(t)
	edit(m, "releases/prod.yaml", "apps: {}", "apps:\n  web: {revision: \""+rev1+"\", artifact: "+dig+"}")
	at := func(app, rev string) *spec.App {
		if app == "web" && rev == rev1 {
			return oldWeb
		}
		return nil
	}
	for _, u := range Desired(load(t, m), rev2, at) {
		if u.App == "web" && u.Env == "prod" {
			if u.Replicas.Min != 5 || u.Revision != rev1 || u.Artifact != dig || u.Source != oldWeb.Source {
				t.Fatalf("prod runs %+v, want the definition pinned at %s", u, rev1)
			}
			return
		}
	}
	t.Fatal("web is not planned in prod")
}

// TestSameAgreesWithDeepEqual keeps the hand-written comparison of units
// honest: it must say what reflect.DeepEqual says (revisions aside), and it
// must know every field of Unit, or it silently falls back to DeepEqual.
func TestSameAgreesWithDeepEqual(t *testing.T) {
	t.Parallel()
	if !unitShapesKnown() {
		t.Fatal("plan.Unit or the Score types changed shape: update same and unitShapesKnown")
	}
	base := Desired(load(t, example(t)), rev1, nil)
	m := example(t)
	edit(m, "apps/web/socle.yaml", "variables: {LOG_LEVEL: debug}", "variables: {LOG_LEVEL: info}")
	edit(m, "apps/api/socle.yaml", "replicas: {min: 2, max: 6}", "replicas: {min: 2, max: 7}")
	edit(m, "apps/web/socle.yaml", "kind: App\n", "kind: App\nroutes: [{host: shop.example.com, path: /shop, strip: true}]\n")
	other := Desired(load(t, m), rev2, nil)
	for i := range base {
		for j := range other {
			x, y := base[i], other[j]
			x.Revision, y.Revision = "", ""
			if got, want := same(&base[i], &other[j]), reflect.DeepEqual(x, y); got != want {
				t.Errorf("same(%s@%s, %s@%s) = %v, DeepEqual says %v", base[i].App, base[i].Env, other[j].App, other[j].Env, got, want)
			}
		}
	}
}

// TestEmergencyPin: an emergency pin is carried by its unit, is no change
// by itself, and covers the release it brings, not the changes after it.
func TestEmergencyPin(t *testing.T) {
	t.Parallel()
	plain, urgent := example(t), example(t)
	edit(plain, "releases/prod.yaml", "apps: {}", "apps:\n  web: {revision: \""+rev1+"\", artifact: "+dig+"}")
	edit(urgent, "releases/prod.yaml", "apps: {}", "apps:\n  web: {revision: \""+rev1+"\", artifact: "+dig+", promotedBy: lena, emergency: {reason: INC-1}}")
	find := func(units []Unit) Unit {
		for _, u := range units {
			if u.App == "web" && u.Env == "prod" {
				return u
			}
		}
		t.Fatal("web is not planned in prod")
		return Unit{}
	}
	before, after := find(Desired(load(t, plain), rev2, nil)), find(Desired(load(t, urgent), rev2, nil))
	if before.Emergency != "" || after.Emergency != "INC-1" {
		t.Fatalf("emergency %q, then %q", before.Emergency, after.Emergency)
	}
	if p := Diff(rev2, []Unit{after}, []Unit{before}); p.HasChanges() || before.Hash() != after.Hash() {
		t.Errorf("declaring an emergency for what is desired already is a change: %+v", p.Summary)
	}
	for _, tt := range []struct {
		artifact, revision, want string
	}{
		{"", "", "INC-1"},               // a first release
		{"sha256:other", rev1, "INC-1"}, // another artifact
		{dig, rev2, "INC-1"},            // another revision
		{dig, rev1, ""},                 // what the pin brings runs already
	} {
		if got := after.EmergencyAfter(tt.artifact, tt.revision); got != tt.want {
			t.Errorf("after %s at %s: %q, want %q", tt.artifact, tt.revision, got, tt.want)
		}
	}
	if got := before.EmergencyAfter("", ""); got != "" {
		t.Errorf("a plain pin is an emergency: %q", got)
	}
}

// TestResourceChanges: a resource that only gains an app is not
// provisioned again, and a plan of one environment keeps only its
// resources.
func TestResourceChanges(t *testing.T) {
	t.Parallel()
	old := load(t, example(t))
	m := example(t)
	edit(m, "apps/api/score.yaml", "    type: postgres\n", "    type: postgres\n    id: bookings-db\n")
	edit(m, "apps/worker/score.yaml", "containers:", "resources:\n  db: {type: postgres, id: bookings-db}\ncontainers:")
	shared := load(t, m)
	before := ResourcesOf(shared, Desired(old, rev1, nil))
	before = slices.DeleteFunc(before, func(r *Resource) bool { return r.Name != "api-db" })
	after := ResourcesOf(shared, Desired(shared, rev2, nil))
	if len(after) != 2 || after[0].Name != "bookings-db" || !slices.Equal(after[0].Apps, []string{"api", "worker"}) {
		t.Fatalf("shared resource in dev: %+v", after[0])
	}
	// Only the apps differ between bookings-db in dev with api alone and
	// with api and worker.
	alone := *after[0]
	alone.Apps = []string{"api"}
	if got := DiffResources([]*Resource{&alone}, after[:1]); len(got) != 0 {
		t.Errorf("a resource gaining an app: %+v, want no change", got)
	}
	p := Plan{Resources: DiffResources(before, after)}
	if got := p.Only("sandbox").Resources; len(got) != 1 || got[0].Env != "sandbox" || got[0].Action != Create {
		t.Errorf("sandbox's resources: %+v", got)
	}
	if got := p.Only("dev").Resources; len(got) != 2 || got[0].Action != Delete || got[0].Name != "api-db" || got[1].Action != Create || got[1].Name != "bookings-db" {
		t.Errorf("dev's resources: %+v", got)
	}
}
