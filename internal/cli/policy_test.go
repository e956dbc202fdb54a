package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/examples"
)

// runPolicy runs `socle policy …` on a command tree of its own.
func runPolicy(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	g := newGlobals(&o, &e)
	defer g.flush()
	root := &cobra.Command{Use: "socle", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&o)
	root.SetErr(&e)
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "")
	root.AddCommand(newPolicyCmd(g))
	root.SetArgs(append([]string{"policy"}, args...))
	if err := root.Execute(); err != nil {
		code = ExitError
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else if isUsage(err) {
			code = ExitUsage
		}
		if err.Error() != "" {
			e.WriteString("socle: " + err.Error() + "\n")
		}
	}
	return o.String(), e.String(), code
}

func TestPolicyTestExample(t *testing.T) {
	t.Parallel()
	out, errOut, code := runPolicy(t, "test", example)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, "ok    worker declares no memory limit, so it is denied in the sandbox\n") ||
		!strings.HasSuffix(out, "\n14 passed, 0 failed\n") || strings.Contains(out, "FAIL") {
		t.Errorf("output:\n%s", out)
	}

	out, _, code = runPolicy(t, "test", example, "-o", "json", "--run", "sandbox")
	var report policyTestReport
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != ExitOK {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if report.Passed != 5 || report.Failed != 0 || len(report.Results) != 5 || report.Problems == nil {
		t.Errorf("report: %+v", report)
	}
}

func TestPolicyTestFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := examples.WritePlatform(dir); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("policies/tests/more.yaml", `apiVersion: socle.dev/v1
kind: PolicyTests
tests:
  - name: api passes everything in dev
    app: api
    env: dev
    expect: allow
  - name: bad
    app: api
    env: dev
    expect: maybe
`)
	write("policies/typo.yaml", `apiVersion: socle.dev/v1
kind: Policies
policies:
  - {name: typo, severity: warn, message: m, expression: "change.new.replica.min > 0"}
`)
	out, _, code := runPolicy(t, "test", dir, "--run", "api passes")
	if code != ExitProblems {
		t.Errorf("exit %d, want %d", code, ExitProblems)
	}
	for _, want := range []string{
		"policies/typo.yaml:4:69: policies[0].expression: CEL: undefined field 'replica'\n",
		`policies/tests/more.yaml:11:13: tests[1].expect: expected allow, deny, warn or none, found "maybe"` + "\n",
		"FAIL  policies/tests/more.yaml:4: api passes everything in dev\n      want allow, got deny\n" +
			"      typo: policy typo does not compile, so it denies every change it matches: undefined field 'replica'\n" +
			"      liveness-probe-for-services: api in dev serves traffic without a livenessProbe: a hung process would never be restarted\n",
		"\n0 passed, 1 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyCommandErrors(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"test", broken}, ExitProblems},
		{[]string{"test", filepath.Join(empty, "nope")}, ExitUsage},
		{[]string{"test", example, "--run", "("}, ExitUsage},
		{[]string{"list", broken}, ExitProblems},
	} {
		_, errOut, code := runPolicy(t, tt.args...)
		if code != tt.code || errOut == "" {
			t.Errorf("policy %v: exit %d, want %d, stderr %q", tt.args, code, tt.code, errOut)
		}
	}
}

func TestPolicyList(t *testing.T) {
	t.Parallel()
	out, _, code := runPolicy(t, "list", example)
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	want := `POLICY                         SEVERITY  FROM                      APPLIES TO
owner-team-exists              deny      built-in                  every change
prod-artifact-proven           deny      built-in                  production environments (the last of a promotion line)
immutable-image-tags           deny      built-in                  outside sandbox zones
prod-resource-limits           deny      built-in                  production environments (the last of a promotion line)
no-plain-secrets               deny      built-in                  every change
readiness-probe-for-traffic    deny      built-in                  every change
sandbox-no-prod-access         deny      built-in                  sandbox zones
stack-protected-in-production  deny      built-in                  stack destroys and replaces in production (stacks.protect)
stack-required-tags            deny      built-in                  stack creates, updates and replaces (stacks.requiredTags)
stack-allowed-regions          deny      built-in                  stack creates, updates and replaces (stacks.regions)
sandbox-memory-limits          deny      policies/guardrails.yaml  zones sandbox
liveness-probe-for-services    warn      policies/guardrails.yaml  every change
stack-tags-for-finops          deny      policies/stacks.yaml      every stack resource change
stack-swiss-regions            deny      policies/stacks.yaml      every stack resource change
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}
