package spec

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"gopkg.in/yaml.v3"
)

// bomb is the "billion laughs" of issue 15: levels anchors, each a list of
// nine aliases to the one before, under keys named prefix0, prefix1, … at
// the indentation given. Nine levels expand to 9^9 = 387,420,489 strings.
func bomb(levels int, prefix, indent string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n", indent, prefix)
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "%s%s%d: &lol%d [", indent, prefix, i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*lol%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// allocated returns the bytes f allocates (the test must not run in
// parallel with others for the figure to be f's alone).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLoadAliasBomb plants the bomb in every kind of file the loader reads:
// each is refused at the alias that takes it over the budget, before
// anything is expanded. (Not parallel: it measures what Load allocates.)
func TestLoadAliasBomb(t *testing.T) {
	Load(minimalRepo()) // compiles the schemas, once, outside the measure
	header := "apiVersion: socle.dev/v1\nkind: %s\n"
	for _, tc := range []struct{ file, before string }{
		{"socle.yaml", minimalPlatform},
		{"teams.yaml", minimalTeams},
		{"apps/shop/score.yaml", minimalScore},
		{"apps/shop/socle.yaml", fmt.Sprintf(header, "App") + "owner: core\n"},
		{"releases/prod.yaml", fmt.Sprintf(header, "Releases") + "environment: prod\n"},
		{"budgets.yaml", fmt.Sprintf(header, "Budgets")},
		{"policies/p.yaml", fmt.Sprintf(header, "Policies")},
		{"templates/t/template.yaml", fmt.Sprintf(header, "Template")},
	} {
		t.Run(tc.file, func(t *testing.T) {
			fsys := minimalRepo()
			fsys[tc.file] = &fstest.MapFile{Data: []byte(tc.before + bomb(9, "x-lol", ""))}
			var ps Problems
			n := allocated(func() { _, ps = Load(fsys) })
			// lol5 is the first list over the budget: 1 + 9×(1 + 9×(…)) =
			// 597,871 nodes.
			line := strings.Count(tc.before, "\n") + 6
			want := fmt.Sprintf("%s:%d:", tc.file, line)
			var found bool
			for _, p := range ps {
				if strings.HasPrefix(p.String(), want) && strings.Contains(p.Message, "aliases") {
					found = true
				}
			}
			if !found {
				t.Errorf("want a problem at %s about aliases, got:\n%v", want, ps.Err())
			}
			if n > 16<<20 {
				t.Errorf("Load allocated %d MB for the bomb; want under 16", n>>20)
			}
			t.Logf("Load allocated %d kB", n>>10)
		})
	}
}

// countNodes counts the nodes of a tree as yaml.v3 built it, every alias
// one node.
func countNodes(n *yaml.Node) int64 {
	if n == nil {
		return 0
	}
	c := int64(1)
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// TestYAMLLimits takes files and revisions over each limit, made small.
func TestYAMLLimits(t *testing.T) {
	t.Parallel()
	small := limits{fileBytes: 4 << 10, fileNodes: 200, revNodes: 400, revBytes: 16 << 10}
	long := strings.Repeat("x", 400)
	apps := func(n int) map[string]string {
		files := map[string]string{}
		for i := range n {
			name := fmt.Sprintf("a%d", i)
			files["apps/"+name+"/score.yaml"] = strings.Replace(minimalScore, "name: shop", "name: "+name, 1)
		}
		return files
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"within", apps(3), ""},
		{"plain file over its nodes", map[string]string{"budgets.yaml": "a: [" + strings.Repeat("1, ", 250) + "1]\n"},
			"budgets.yaml: too much YAML in one file: more than 200 nodes"},
		{"file over its bytes", map[string]string{"budgets.yaml": "a: " + strings.Repeat("x", 5000) + "\n"},
			"budgets.yaml: file is 5004 bytes; the limit is 4096"},
		{"anchored file over its nodes before it is parsed", map[string]string{"budgets.yaml": "a: &a 1\nb: [" + strings.Repeat("1, ", 150) + "1]\n"},
			"budgets.yaml: too much YAML in one file: its line breaks and indicators (- : ? , [ {) allow up to 312 nodes, and socle reads at most 200 of a file"},
		{"aliases over the nodes", map[string]string{"budgets.yaml": "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" +
			"b: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nd: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"},
			// 1 + (1 + 10) + 2 × (2 + 9 × 10) = 196, and d's first alias is one too many.
			"budgets.yaml:4:5: aliases expand the file past what socle reads of one file (200 nodes or 4096 bytes, aliases expanded), here at *a"},
		{"aliases over the bytes", map[string]string{"budgets.yaml": "a: &a " + long + "\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"},
			"budgets.yaml:2:41: aliases expand the file past"},
		{"alias in itself", map[string]string{"budgets.yaml": "a: &x [1, *x]\n"}, "budgets.yaml:1:11: invalid YAML: alias *x is inside the node it refers to"},
		{"revision over its nodes", apps(40), "the revision's YAML, this file included, holds more than socle reads of one revision"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsys := minimalRepo()
			for name, data := range tc.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			_, ps := load(fsys, small, nil)
			var got []string
			for _, p := range ps {
				if !p.Warning && !strings.Contains(p.Message, "budget") { // budgets.yaml's own schema problems aside
					got = append(got, p.String())
				}
			}
			if tc.want == "" {
				if len(got) > 0 {
					t.Fatalf("want no problem, got %q", got)
				}
				return
			}
			n := 0
			for _, g := range got {
				if strings.Contains(g, tc.want) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("want one problem containing\n  %s\ngot %q", tc.want, got)
			}
		})
	}
}

// naiveSize expands n the slow way, node by node, as nodeValue does: its
// nodes, and the bytes of the scalars that aliases repeat. ok is false once
// it passes lim nodes, or goes in circles.
func naiveSize(n *yaml.Node, lim int64) (s yamlSize, ok bool) {
	var walk func(n *yaml.Node, viaAlias bool, depth int) bool
	walk = func(n *yaml.Node, viaAlias bool, depth int) bool {
		if depth > 10000 {
			return false
		}
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				s.nodes++
				return true
			}
			return walk(n.Alias, true, depth+1)
		}
		if s.nodes++; s.nodes > lim {
			return false
		}
		if viaAlias {
			s.bytes += int64(len(n.Value))
		}
		for _, c := range n.Content {
			if !walk(c, viaAlias, depth+1) {
				return false
			}
		}
		return true
	}
	if n == nil {
		return s, true
	}
	return s, walk(n, false, 0)
}

// valueNodes counts the nodes of nodeValue's values: a mapping, its keys
// and its values; a list and its items; a scalar.
func valueNodes(v any) int64 {
	switch v := v.(type) {
	case map[string]any:
		n := int64(1)
		for _, e := range v {
			n += 1 + valueNodes(e)
		}
		return n
	case []any:
		n := int64(1)
		for _, e := range v {
			n += valueNodes(e)
		}
		return n
	}
	return 1
}

// checkBudget is what the budget claims of any input: yaml.v3 builds no
// more nodes than nodeBound says before it parses; measure agrees with an
// expansion done the slow way, and refuses exactly what goes over; nodeValue
// builds exactly the nodes measured.
func checkBudget(t *testing.T, data []byte) {
	lim := limits{fileBytes: 1 << 16, fileNodes: 2000}
	doc, p := readDocument("f.yaml", data)
	if p != nil {
		return
	}
	if got, bound := countNodes(doc), nodeBound(data); got > bound {
		t.Fatalf("yaml.v3 builds %d nodes for %q, more than the bound %d", got, data, bound)
	}
	root := top(doc)
	size, p := measure("f.yaml", root, int64(len(data)), lim)
	want, ok := naiveSize(root, lim.fileNodes)
	want.bytes += int64(len(data))
	ok = ok && want.bytes <= lim.fileBytes
	if (p == nil) != ok {
		t.Fatalf("measure(%q) = %+v, %v; expanding it gives %+v, within the limits: %v", data, size, p, want, ok)
	}
	if p != nil {
		if p.Line == 0 {
			t.Fatalf("measure(%q): a problem without a line: %v", data, p)
		}
		return
	}
	if size != want {
		t.Fatalf("measure(%q) = %+v; expanding it gives %+v", data, size, want)
	}
	if root == nil {
		return
	}
	// nodeValue reads a key as its text, so a key that is a list or a
	// mapping costs less than measured.
	if v, err := nodeValue(root, 0); err == nil && (valueNodes(v) > size.nodes || valueNodes(v) != size.nodes && scalarKeys(root)) {
		t.Fatalf("nodeValue(%q) builds %d nodes, measure says %d", data, valueNodes(v), size.nodes)
	}
}

// scalarKeys reports whether every key of n's mappings is a scalar.
func scalarKeys(n *yaml.Node) bool {
	seen := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if seen[n] {
			return true
		}
		seen[n] = true
		if n.Kind == yaml.AliasNode {
			return n.Alias == nil || walk(n.Alias)
		}
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 && c.Kind != yaml.ScalarNode {
				return false
			}
			if !walk(c) {
				return false
			}
		}
		return true
	}
	return walk(n)
}

func TestBudgetSeeds(t *testing.T) {
	t.Parallel()
	for _, s := range budgetSeeds(t) {
		checkBudget(t, s)
	}
}

func budgetSeeds(t testing.TB) [][]byte {
	seeds := yamlSeeds(t)
	for i := 1; i <= 9; i++ {
		seeds = append(seeds, []byte(bomb(i, "x", "")), []byte("a:\n"+bomb(i, "b", "  ")))
	}
	for _, s := range []string{
		"a: &x [*x]\n", "a: &x {b: *x}\n", "&k a: *k\n", "a: &a {k: v}\nb: {c: *a, d: [*a, *a]}\n",
		"a: &a x\nb: &b [*a, *a]\nc: &c {k: *b, l: *b}\nd: [*c, *c, *c]\n", "- &a [1, 2]\n- *a\n- [*a, *a]\n",
		"a: &a\nb: *a\n", "? &k [1, 2]\n: *k\n", "a: [&a 1, *a, &b [*a], *b]\n", "a: *nope\n",
		"a: &a " + strings.Repeat("long ", 100) + "\nb: [*a, *a, *a, *a, *a]\n", "a: [b: c, d: e]\n", "{a, b, c}\n",
		"a:\r  - b\r  - c\r", "a: \"x\u2028y\"\n", "- - - - a\n", "[[[[a]]]]\n", "? a\n? b\n", "a:\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzYAMLBudget checks the budget's claims on alias-heavy inputs.
func FuzzYAMLBudget(f *testing.F) {
	for _, s := range budgetSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkBudget)
}
