package template

import (
	"errors"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/spec"
)

var tmpl = &spec.Template{Version: 1, Parameters: []spec.Parameter{
	{Name: "owner", Type: "string", Required: true, Source: spec.SourceTeams},
	{Name: "replicas", Type: "integer", Default: 2},
	{Name: "tier", Type: "string", Enum: []string{"web", "batch"}},
}, Files: map[string]string{"socle.yaml": "owner: {{ .owner }}\nmax: {{ .replicas }}\napp: {{ .app }}\n"}}

func TestResolve(t *testing.T) {
	t.Parallel()
	teams := []string{"bookings", "guests"}
	v, err := Resolve("svc", tmpl, map[string]any{"owner": "bookings", "replicas": "3"}, teams)
	if err != nil || v["owner"] != "bookings" || v["replicas"] != int64(3) {
		t.Fatalf("%v %v", v, err)
	}
	if v, _ := Resolve("svc", tmpl, map[string]any{"owner": "guests"}, teams); v["replicas"] != int64(2) {
		t.Errorf("the default: %v", v)
	}
	var missing *MissingError
	if _, err := Resolve("svc", tmpl, nil, teams); !errors.As(err, &missing) || missing.Missing[0].Name != "owner" || !strings.Contains(err.Error(), "--set owner=VALUE") {
		t.Errorf("missing owner: %v", err)
	}
	var invalid *InvalidError
	for give, name := range map[string]string{"owner=sales": "owner", "replicas=x": "replicas", "tier=gpu": "tier", "size=3": "size"} {
		k, val, _ := strings.Cut(give, "=")
		given := map[string]any{"owner": "bookings", k: val}
		if _, err := Resolve("svc", tmpl, given, teams); !errors.As(err, &invalid) || invalid.Parameter != name {
			t.Errorf("%s: %v", give, err)
		}
	}
	files, err := Render(tmpl, "pay", v)
	if err != nil || string(files["socle.yaml"]) != "owner: bookings\nmax: 3\napp: pay\n" {
		t.Errorf("render: %q %v", files["socle.yaml"], err)
	}
}

// TestMerge is the three-way merge of a template upgrade, file by file,
// with git merge-file.
func TestMerge(t *testing.T) {
	t.Parallel()
	lines := func(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }
	base := map[string][]byte{
		"main.go":   lines("a", "b", "c", "d", "e"),
		"same.txt":  lines("x"),
		"gone.txt":  lines("old"),
		"kept.txt":  lines("k"),
		"clash.txt": lines("1", "2", "3"),
	}
	theirs := map[string][]byte{
		"main.go":   lines("a", "B", "c", "d", "e"), // the template changes b
		"same.txt":  lines("x"),
		"new.txt":   lines("n"),
		"kept.txt":  lines("K"),
		"clash.txt": lines("1", "two", "3"),
	}
	ours := map[string][]byte{
		"main.go":   lines("a", "b", "c", "d", "E"), // the app changed e
		"same.txt":  lines("x", "mine"),
		"gone.txt":  lines("old"),
		"clash.txt": lines("1", "deux", "3"),
		// kept.txt removed by the app
	}
	got, err := Merge(t.Context(), base, theirs, ours, [3]string{"app", "v1", "v2"})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]FileMerge{}
	for _, f := range got {
		by[f.Path] = f
	}
	check := func(path, want string, conflicts int, changed bool) {
		t.Helper()
		f := by[path]
		if string(f.Result) != want || f.Conflicts != conflicts || f.Changed != changed {
			t.Errorf("%s: %q, %d conflicts, changed %v; want %q, %d, %v", path, f.Result, f.Conflicts, f.Changed, want, conflicts, changed)
		}
	}
	check("main.go", "a\nB\nc\nd\nE\n", 0, true)
	check("same.txt", "x\nmine\n", 0, false)
	check("new.txt", "n\n", 0, true)
	check("gone.txt", "", 0, true)
	check("kept.txt", "", 0, false)
	if f := by["gone.txt"]; f.Result != nil {
		t.Errorf("gone.txt stays: %q", f.Result)
	}
	c := string(by["clash.txt"].Result)
	if by["clash.txt"].Conflicts != 1 || !strings.Contains(c, "<<<<<<< app\ndeux\n||||||| v1\n2\n=======\ntwo\n>>>>>>> v2\n") {
		t.Errorf("clash.txt: %d conflicts:\n%s", by["clash.txt"].Conflicts, c)
	}
	d, err := Diff(t.Context(), "apps/pay/main.go", ours["main.go"], by["main.go"].Result)
	if err != nil || !strings.Contains(d, "--- a/apps/pay/main.go\n+++ b/apps/pay/main.go\n") || !strings.Contains(d, "-b\n+B\n") {
		t.Errorf("diff: %v\n%s", err, d)
	}
}
