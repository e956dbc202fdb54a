package spec

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// referenceValue is nodeValue as it was before the strconv conversions: every
// scalar through yaml.v3's own decoder. The fast paths must agree with it.
func referenceValue(n *yaml.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, errors.New("too deep")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return referenceValue(n.Content[0], depth+1)
	case yaml.AliasNode:
		return referenceValue(n.Alias, depth+1)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				return nil, errors.New("merge")
			}
			if _, dup := m[k.Value]; dup {
				return nil, errors.New("duplicate")
			}
			val, err := referenceValue(v, depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := referenceValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			err := n.Decode(&b)
			return b, err
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i, nil
			}
			var f float64
			err := n.Decode(&f)
			return f, err
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			if math.IsInf(f, 0) || math.IsNaN(f) {
				return n.Value, nil
			}
			return f, nil
		default:
			return n.Value, nil
		}
	}
	return nil, errors.New("unsupported node")
}

// yamlSeeds are the repository's YAML files and a few shapes on the edge of
// fastYAML's subset.
func yamlSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, dir := range []string{"../../examples", "testdata"} {
		filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ".yaml") {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				seeds = append(seeds, b)
			}
			return nil
		})
	}
	for _, s := range []string{
		benchScore, benchConf, minimalPlatform, minimalTeams, minimalScore,
		"a: 1\nb: [1, 2.5, -3, 0x1F, 0o17, 0b101, 017, 1_000, 1e3, .5, +1, -0, 9223372036854775808, -9223372036854775809]\n",
		"a: [true, True, TRUE, false, yes, no, on, off, y, n, ~, null, Null, NULL, .inf, -.Inf, .nan, 2026-12-20, 2026-12-20T10:00:00Z]\n",
		"a: {b: c, 'd': \"e\", f: 'it''s', g: \"a\\tb\\\"c\\\\\", h: sha256:abc, i: http://x:80/y}\n",
		"- a\n- b\n", "a:\n- b\n- c\nd: e\n", "a:\n  - b: 1\n    c: 2\n  - d\n", "a: b # c\nd: 'e' # f\n# g\n",
		"---\na: 1\n", "a: 1\n---\nb: 2\n", "a: 1\n...\n", "a:\n  b\n", "a: b\n  c\n", "a: b: c\n", "a: [b, c,]\n",
		"a: {b: 1, b: 2}\n", "a: 1\na: 2\n", "<<: {a: 1}\n", "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  x\n",
		"a: \"multi\n  line\"\n", "a: [1,\n  2]\n", " a: 1\n b: 2\n", " a: 1\nb: 2\n", "a:\n- b\n - c\n", "a: -1\nb: - 1\n",
		"a: {b}\n", "a: {b: }\n", "a: [b: c]\n", "a: [b :c]\n", "a: {b:c}\n", "a: {\"b\":c}\n", "a: b #c: d\n",
		"a: [-]\n", "a: [-b, ?c]\n", "a: [b?]\n", "a: [b#c]\n", "a: [b #c]\n", "a:\tb\n", "a: b\r\n", "\ufeffa: 1\n",
		"a: Grüezi\n", "a: \"\\x41\\u0041\"\n", "a: \"\\/\"\n", "a: '\\n'\n", "? a\n: b\n", "[a]: b\n", "a: b\n  # c\nd: e\n",
		"a:   \n  b: 1\n", "a: # c\n  b: 1\n", "- a: 1\n  b: 2\n- c: 3\n", "- - a\n", "-\n  a: 1\n", "- a:\n- b\n",
		"a: 1e400\nb: 1_0.5\nc: -0b11\nd: 0b\ne: +.5\nf: 1.\ng: -.5e-3\n", "'a': 1\n\"b\": 2\n'c' : 3\n", "a: '': 1\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// checkFastYAML is the claim fastYAML makes: when it accepts an input,
// yaml.v3 reads the same document without error and with the same values.
func checkFastYAML(t *testing.T, data []byte) {
	root, p := readNodes("f.yaml", data)
	if p == nil {
		// Only what is within the limits is expanded: the fuzzer writes
		// alias bombs too.
		_, p = measure("f.yaml", root, int64(len(data)), defaultLimits)
	}
	if root != nil && p == nil {
		// nodeValue's strconv conversions agree with yaml.v3's decoder.
		want, werr := referenceValue(root, 0)
		got, gerr := nodeValue(root, 0)
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("nodeValue(%q) = %#v, %v; yaml.v3's decoder gives %#v, %v", data, got, gerr, want, werr)
		}
	}
	v, nodes, ok := fastYAML(data, nil, defaultLimits.fileNodes)
	if !ok {
		return
	}
	if want := countNodes(root); nodes != want {
		t.Fatalf("fastYAML counts %d nodes in %q, yaml.v3 builds %d", nodes, data, want)
	}
	if p != nil {
		t.Fatalf("fastYAML accepts %q, yaml.v3 rejects it: %v", data, p)
	}
	if root == nil || root.Kind != yaml.MappingNode {
		t.Fatalf("fastYAML accepts %q, which is not a mapping", data)
	}
	want, err := referenceValue(root, 0)
	if err != nil {
		t.Fatalf("fastYAML accepts %q, nodeValue rejects it: %v", data, err)
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("fastYAML(%q) = %#v\nyaml.v3 reads %#v", data, v, want)
	}
}

func TestFastYAML(t *testing.T) {
	t.Parallel()
	accepted := 0
	for _, s := range yamlSeeds(t) {
		checkFastYAML(t, s)
		if _, _, ok := fastYAML(s, nil, defaultLimits.fileNodes); ok {
			accepted++
		}
	}
	// The subset must cover the files socle's users write, or it is no use.
	for _, s := range []string{benchScore, benchConf, minimalPlatform, minimalTeams, minimalScore} {
		if _, _, ok := fastYAML([]byte(s), nil, defaultLimits.fileNodes); !ok {
			t.Errorf("fastYAML does not read\n%s", s)
		}
	}
	t.Logf("fastYAML reads %d of %d seeds", accepted, len(yamlSeeds(t)))
}

func FuzzFastYAML(f *testing.F) {
	for _, s := range yamlSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFastYAML(t, data) })
}

func TestPlainValue(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"0", "-0", "+0", "1", "-1", "+1", "017", "08", "0x1F", "0X1F", "0o17", "0O17", "0b101", "-0b101", "0b-1", "0b+1", "-0b-1",
		"-0o17", "0o-7", "0b", "0o", "0x", "1_000", "_1", "1_", "0x_1F", "0b_1", "9223372036854775807", "9223372036854775808",
		"18446744073709551615", "18446744073709551616", "-9223372036854775808", "-9223372036854775809", "1e3", "1E3", "1e+3",
		"1e-3", "1.", ".5", "-.5", "+.5", "1.5e400", "1e400", ".5_0", "1_0.5", "0x1p-2", "inf", "+inf", "nan", ".inf", ".Inf",
		".INF", "+.inf", "-.inf", "-.INF", ".nan", ".NaN", ".NAN", "true", "True", "TRUE", "tRue", "false", "False", "FALSE",
		"yes", "no", "on", "off", "y", "n", "~", "null", "Null", "NULL", "nULL", "2026-12-20", "2026-12-20T10:00:00Z",
		"2026-1-2", "1:20", "1:20:30", "12:30", "+", "-", ".", "1.2.3", "1e", "e3", "0.0", "-0.0", "00", "007", "0_7", "<<",
	} {
		n := &yaml.Node{Kind: yaml.ScalarNode, Value: s}
		n.Tag = n.ShortTag() // what yaml.v3's parser sets on a plain scalar
		want, err := referenceValue(n, 0)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got := plainValue(s); !reflect.DeepEqual(got, want) {
			t.Errorf("plainValue(%q) = %#v, yaml.v3 gives %#v", s, got, want)
		}
	}
}

// benchScore and benchConf are the files bench/loadplan writes for each app.
const benchScore = `apiVersion: score.dev/v1b1
metadata:
  name: app-00001
containers:
  main:
    image: .
    variables:
      LOG_LEVEL: info
      DB_HOST: ${resources.db.host}
    resources:
      limits: {cpu: 500m, memory: 256Mi}
    readinessProbe:
      httpGet: {path: /readyz, port: 8080}
service:
  ports:
    http: {port: 80, targetPort: 8080}
resources:
  db:
    type: postgres
`

const benchConf = `apiVersion: socle.dev/v1
kind: App
owner: payments
build:
  command: go build -o "$SOCLE_OUT/app" .
rollout:
  strategy: canary
  steps: [{weight: 10, pause: 1m}, {weight: 50, pause: 1m}]
  analysis: {maxErrorRate: 0.01, maxP95: 300ms}
replicas: {min: 2, max: 6}
environments:
  dev: {replicas: {min: 1, max: 2}, variables: {LOG_LEVEL: debug}}
  prod: {replicas: {min: 3, max: 12}}
`
