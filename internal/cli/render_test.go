package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/golden"
)

// TestRender: `socle render APP --env E` prints the demo's objects, secrets
// redacted; a manual environment that does not pin the app renders the head.
func TestRender(t *testing.T) {
	for _, tc := range []struct{ app, env string }{{"api", "dev"}, {"web", "prod"}} {
		var out, errs bytes.Buffer
		cmd := newRenderCmd()
		cmd.Flags().StringP("output", "o", "text", "") // root's persistent flags
		cmd.Flags().String("server", "http://socle.example:7070", "")
		cmd.SetOut(&out)
		cmd.SetErr(&errs)
		cmd.SetArgs([]string{tc.app, "../../examples/platform", "--env", tc.env})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("render %s --env %s: %v\n%s", tc.app, tc.env, err, errs.String())
		}
		// REDACTED, base64-encoded as Secret data is.
		if tc.app == "api" && !strings.Contains(out.String(), "UkVEQUNURUQ=") {
			t.Errorf("render %s shows its database URL", tc.app)
		}
		golden.Check(t, filepath.Join("testdata", "render-"+tc.app+"-"+tc.env+".yaml"), out.Bytes())
	}
}

// TestRenderKubernetesEnvironment: an environment on Kubernetes renders in
// its namespace, pulling from the registry its block names, unless
// --registry says otherwise.
func TestRenderKubernetesEnvironment(t *testing.T) {
	t.Parallel()
	dir := setRuntimes(t, "{type: kubernetes, context: kind, namespace: shop-dev, registry: reg.example/socle}")
	// socle provisions no postgres on Kubernetes yet: the api's database is
	// one that exists.
	if err := os.MkdirAll(filepath.Join(dir, "provisioners"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "provisioners", "postgres.yaml"), []byte(`apiVersion: socle.dev/v1
kind: Provisioners
provisioners:
  - name: managed-postgres
    match: {type: postgres, runtimes: [kubernetes]}
    driver: static
    outputs: [{name: host}, {name: port}, {name: name}, {name: username}, {name: password, secret: true}]
    config:
      outputs: {host: db.internal, port: 5432, name: api, username: api, password: {secretFromEnv: API_DB_PASSWORD}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		image string
	}{
		{nil, "image: reg.example/socle/apps/api@sha256:built-at-deploy"},
		{[]string{"--registry", "mirror.example"}, "image: mirror.example/apps/api@sha256:built-at-deploy"},
	} {
		out, errOut, code := run(t, append([]string{"render", "api", dir, "--env", "dev"}, tc.args...)...)
		if code != ExitOK {
			t.Fatalf("render: exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "namespace: shop-dev") || strings.Contains(out, "namespace: default") {
			t.Errorf("render %v: not in namespace shop-dev:\n%s", tc.args, out)
		}
		if !strings.Contains(out, tc.image) {
			t.Errorf("render %v: want %q in:\n%s", tc.args, tc.image, out)
		}
	}
}
