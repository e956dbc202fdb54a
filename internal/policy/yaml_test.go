package policy

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestTestsAliasBudget: a test case whose new: expands past what socle
// reads of one file is refused at its alias. yaml.v3's own heuristic lets
// it through (a fifth of its nodes are written out), and the decoder would
// build its 800,000 values.
func TestTestsAliasBudget(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: socle.dev/v1\nkind: PolicyTests\ntests:\n  - name: big\n    app: web\n    env: dev\n    expect: allow\n    new:\n")
	b.WriteString("      pad: [" + strings.Repeat("1, ", 200_000) + "1]\n")
	b.WriteString("      one: &a [" + strings.Repeat("1, ", 999) + "1]\n")
	b.WriteString("      many: [" + strings.Repeat("*a, ", 599) + "*a]\n")
	fsys := repoFS(map[string]string{TestsDir + "/big.yaml": b.String()})
	cases, problems := LoadTests(fsys)
	if len(cases) != 0 || len(problems) != 1 || !strings.HasPrefix(problems[0].String(), "policies/tests/big.yaml:11:") ||
		!strings.Contains(problems[0].Message, "aliases expand the file past") {
		t.Fatalf("want the alias on line 11 refused, got %d cases and problems %v", len(cases), problems)
	}
}

// TestPolicyFilesAreNotLinks: the files the policy package reads itself
// (overrides, test cases) are refused when they are symbolic links, and
// never read through.
func TestPolicyFilesAreNotLinks(t *testing.T) {
	t.Parallel()
	link := &fstest.MapFile{Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777}
	want := "is a symbolic link (to /etc/passwd); socle reads regular files only"

	fsys := repoFS(nil)
	fsys[TestsDir+"/cases.yaml"] = link
	_, problems := LoadTests(fsys)
	if len(problems) != 1 || problems[0].File != TestsDir+"/cases.yaml" || !strings.Contains(problems[0].Message, want) {
		t.Errorf("LoadTests: want the link refused, got %v", problems)
	}

	fsys = repoFS(nil)
	fsys[OverridesFile] = link
	_, _, problems = readOverrides(fsys)
	if len(problems) != 1 || problems[0].File != OverridesFile || !strings.Contains(problems[0].Message, want) {
		t.Errorf("overrides: want the link refused, got %v", problems)
	}
}
