package spec

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// libraryValid is the library's answer.
func libraryValid(t testing.TB, name string, v any) bool {
	vs, err := validators()
	if err != nil {
		t.Fatal(err)
	}
	return vs[name].schema.Validate(v) == nil
}

func schemaNamesAll() []string { return append(SchemaNames(), "score") }

func checkFastSchema(t testing.TB, name string, v any) bool {
	vs, _ := validators()
	fast := vs[name].fast.valid(v)
	if lib := libraryValid(t, name, v); fast != lib {
		t.Fatalf("schema %s: fastSchema says valid=%v, the library %v, for\n%#v", name, fast, lib, v)
	}
	return fast
}

// mutator breaks documents in the ways people do, and in others.
type mutator struct {
	r     *rand.Rand
	names []string // property names and enum values found in the schemas
	pool  []func() any
}

func newMutator(seed int64) *mutator {
	m := &mutator{r: rand.New(rand.NewSource(seed))}
	vs, _ := validators()
	seen := map[string]bool{}
	var walk func(n any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			for k, v := range n {
				if p, ok := v.(map[string]any); ok && k == "properties" {
					for name := range p {
						seen[name] = true
					}
				}
				if e, ok := v.([]any); ok && k == "enum" {
					for _, x := range e {
						seen[fmt.Sprint(x)] = true
					}
				}
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	for _, c := range vs {
		walk(c.raw)
	}
	for n := range seen {
		m.names = append(m.names, n)
	}
	slices.Sort(m.names)
	strs := []string{"", "a", "ab", "Ab", "a-b", "-a", "a-", "a.b/c", "x=y", "=", "A_B", "1m", "30s", "2d", "soon", "1h30m",
		"Mon 09:00-17:00", "Tue,Thu 10:00-16:00 Europe/Paris", "2026-12-01", "2026-13-01", "EUR", "euro", "0123abc", "abc", "ABCDEF0",
		"sha256:" + strings.Repeat("ab", 32), "sha256:" + strings.Repeat("a", 63), "http://x", "not a uri", "a@b.c", "nope",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 316), strings.Repeat("a", 317), "é", "日本", "${resources.db.host}"}
	nums := []any{int64(0), int64(-1), int64(1), int64(2), int64(3), int64(10), int64(100), int64(101), int64(1000), int64(1001),
		int64(65535), int64(65536), int64(-1 << 62), 0.5, 1.0, 2.0, 0.01, -0.5, 1e300, 100.0, 101.0, 1000.5}
	m.pool = []func() any{
		func() any { return nil }, func() any { return true }, func() any { return false },
		func() any { return nums[m.r.Intn(len(nums))] },
		func() any { return strs[m.r.Intn(len(strs))] },
		func() any { return m.names[m.r.Intn(len(m.names))] },
		func() any { return []any{} }, func() any { return map[string]any{} },
		func() any { return []any{m.value(1)} }, func() any { return []any{m.value(1), m.value(1)} },
		func() any { return map[string]any{m.name(): m.value(1)} },
		func() any { return map[string]any{"target": "/x", "content": "c"} },
		func() any { return map[string]any{"content": "c", "source": "s"} },
		func() any { return map[string]any{"min": int64(1), "max": int64(2)} },
		func() any { return map[string]any{"type": "postgres"} },
	}
	return m
}

func (m *mutator) name() string {
	if m.r.Intn(5) == 0 {
		return []string{"x", "X-y", "Image", "a b", "", "-"}[m.r.Intn(6)]
	}
	return m.names[m.r.Intn(len(m.names))]
}

func (m *mutator) value(depth int) any {
	if depth > 2 {
		return m.pool[m.r.Intn(6)]()
	}
	return m.pool[m.r.Intn(len(m.pool))]()
}

// clone copies a value tree.
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = cloneValue(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = cloneValue(e)
		}
		return c
	}
	return v
}

// mutate changes one place of the tree, chosen at random; it returns the
// new tree.
func (m *mutator) mutate(v any) any {
	var spots []func()
	var walk func(v any, set func(any))
	walk = func(v any, set func(any)) {
		spots = append(spots, func() { set(m.value(0)) })
		switch v := v.(type) {
		case map[string]any:
			spots = append(spots, func() { v[m.name()] = m.value(0) })
			for k, e := range v {
				spots = append(spots, func() { delete(v, k) })
				walk(e, func(n any) { v[k] = n })
			}
		case []any:
			for i, e := range v {
				walk(e, func(n any) { v[i] = n })
			}
			if len(v) > 0 {
				spots = append(spots, func() { set(v[:len(v)-1]) }, func() { set(append(v, cloneValue(v[0]))) })
			}
		}
	}
	root := v
	walk(v, func(n any) { root = n })
	spots[m.r.Intn(len(spots))]()
	return root
}

func TestFastSchema(t *testing.T) {
	t.Parallel()
	n := 30000
	if testing.Short() {
		n = 5000
	}
	checkFastSchemaVariants(t, 1, n)
}

// checkFastSchemaVariants compares fastSchema with the library on the
// seeds and on n variants of them.
func checkFastSchemaVariants(t *testing.T, seed int64, n int) {
	vs, err := validators()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range schemaNamesAll() {
		if vs[name].fast == nil {
			t.Errorf("schema %s: not covered by fastSchema", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	var docs []any
	for _, s := range yamlSeeds(t) {
		if d, p := parseYAML("seed", s); p == nil && d.value != nil {
			docs = append(docs, d.value)
		}
	}
	for _, s := range scoreSamples(t) {
		if d, p := parseYAML("seed", s); p == nil && d.value != nil {
			docs = append(docs, d.value)
		}
	}
	type pair struct {
		doc    any
		schema string
	}
	var pairs []pair // documents with the schema they are valid against
	valid := map[bool]int{}
	for _, v := range docs {
		for _, name := range schemaNamesAll() {
			if checkFastSchema(t, name, v) {
				pairs = append(pairs, pair{v, name})
			}
		}
	}
	if len(pairs) < 20 {
		t.Fatalf("only %d valid documents", len(pairs))
	}
	// Variants of every valid document, broken or not.
	m := newMutator(seed)
	for i := range n {
		p := pairs[i%len(pairs)]
		v := cloneValue(p.doc)
		for range 1 + m.r.Intn(2) {
			v = m.mutate(v)
		}
		valid[checkFastSchema(t, p.schema, v)]++
	}
	t.Logf("%d valid documents; %d variants: %d valid, %d invalid", len(pairs), n, valid[true], valid[false])
	if valid[true] < n/20 || valid[false] < n/20 {
		t.Errorf("the variants are too one-sided to say much")
	}
}

func FuzzFastSchema(f *testing.F) {
	for _, s := range yamlSeeds(f) {
		f.Add(s)
	}
	for _, s := range scoreSamples(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, p := parseYAML("fuzz", data)
		if p != nil {
			return
		}
		for _, name := range schemaNamesAll() {
			checkFastSchema(t, name, d.value)
		}
	})
}
