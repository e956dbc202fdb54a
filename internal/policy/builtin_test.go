package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
)

// builtinCase is one change judged by one built-in: want is allow, deny or
// none (the built-in does not select the change); message, when set, must
// be in the verdict's message.
type builtinCase struct {
	name    string
	env     string
	change  func(in *Input)
	want    string
	message string
}

// withContainer edits the web container of the change's unit.
func withContainer(f func(c *types.Container)) func(*Input) {
	return func(in *Input) {
		c := in.Change.Desired.Containers["web"]
		f(&c)
		in.Change.Desired.Containers["web"] = c
	}
}

func withVar(name, value string) func(*Input) {
	return withContainer(func(c *types.Container) {
		c.Variables = types.ContainerVariables{name: value}
	})
}

func runBuiltin(t *testing.T, policy string, cases []builtinCase) {
	t.Helper()
	set, problems := compile(t, nil)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			in := create(webUnit(tt.env))
			if tt.change != nil {
				tt.change(&in)
			}
			v := verdict(set.Evaluate(in), policy)
			got := ExpectNone
			if v != nil {
				got = verdictWord(*v)
				if !v.Builtin {
					t.Errorf("%s is a built-in", policy)
				}
			}
			if got != tt.want {
				t.Fatalf("got %s, want %s (%+v)", got, tt.want, v)
			}
			if tt.message != "" && !strings.Contains(v.Message, tt.message) {
				t.Errorf("message %q does not contain %q", v.Message, tt.message)
			}
		})
	}
}

func TestOwnerTeamExists(t *testing.T) {
	t.Parallel()
	runBuiltin(t, "owner-team-exists", []builtinCase{
		{name: "existing team", env: "dev", want: ExpectAllow},
		{name: "unknown team", env: "prod", change: func(in *Input) { in.Change.Desired.Team = "ghosts" }, want: ExpectDeny,
			message: `web is owned by team "ghosts", which teams.yaml does not define`},
		{name: "no team", env: "sandbox", change: func(in *Input) { in.Change.Desired.Team = "" }, want: ExpectDeny},
	})
}

func TestProdArtifactProven(t *testing.T) {
	t.Parallel()
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	ran := func(env string) func(*Input) {
		return func(in *Input) {
			in.Change.Desired.Artifact = digest
			in.History = Runs{{App: "web", Artifact: digest, Env: env, Since: testNow.Add(-time.Hour)}}
		}
	}
	runBuiltin(t, "prod-artifact-proven", []builtinCase{
		{name: "ran healthy in preprod", env: "prod", change: ran("preprod"), want: ExpectAllow},
		{name: "ran healthy in dev only", env: "prod", change: ran("dev"), want: ExpectDeny,
			message: "web in prod: artifact sha256:0123456789ab has not run healthy in preprod; promote it through preprod first"},
		{name: "another app's run", env: "prod", change: func(in *Input) {
			ran("preprod")(in)
			in.History.(Runs)[0].App = "api"
		}, want: ExpectDeny},
		{name: "no history", env: "prod", change: func(in *Input) { in.Change.Desired.Artifact = digest }, want: ExpectDeny,
			message: "no release history is available"},
		{name: "no artifact", env: "prod", change: func(in *Input) { in.History = Runs{} }, want: ExpectDeny,
			message: "web in prod names no artifact"},
		{name: "artifact given by the input", env: "prod", change: func(in *Input) {
			ran("preprod")(in)
			in.Change.Desired.Artifact, in.Artifact = "", digest
		}, want: ExpectAllow},
		{name: "no-op keeps what runs", env: "prod", change: func(in *Input) { in.Change.Action = plan.NoOp }, want: ExpectAllow},
		{name: "update keeps the artifact", env: "prod", change: func(in *Input) {
			in.Change.Action, in.Change.Desired.Artifact = plan.Update, digest
			in.Old = webUnit("prod")
			in.Old.Artifact = digest
		}, want: ExpectAllow},
		{name: "update brings a new artifact", env: "prod", change: func(in *Input) {
			in.Change.Action, in.Change.Desired.Artifact = plan.Update, digest
			in.Old = webUnit("prod")
			in.Old.Artifact = "sha256:old"
			in.History = Runs{}
		}, want: ExpectDeny},
		{name: "not production", env: "preprod", want: ExpectNone},
		{name: "sandbox", env: "sandbox", want: ExpectNone},
	})
}

func TestImmutableImageTags(t *testing.T) {
	t.Parallel()
	image := func(img string) func(*Input) {
		return withContainer(func(c *types.Container) { c.Image = img })
	}
	runBuiltin(t, "immutable-image-tags", []builtinCase{
		{name: "version tag", env: "prod", want: ExpectAllow},
		{name: "digest", env: "prod", change: image("registry.example/web@sha256:abc"), want: ExpectAllow},
		{name: "tag and digest", env: "dev", change: image("web:latest@sha256:abc"), want: ExpectAllow},
		{name: "built by socle", env: "prod", change: image("."), want: ExpectAllow},
		{name: "registry port and tag", env: "dev", change: image("localhost:5000/web:2"), want: ExpectAllow},
		{name: "latest", env: "dev", change: image("nginx:latest"), want: ExpectDeny,
			message: "web in dev runs a mutable image: container web (nginx:latest); pin a version tag or a digest"},
		{name: "no tag", env: "preprod", change: image("nginx"), want: ExpectDeny},
		{name: "registry port, no tag", env: "prod", change: image("localhost:5000/web"), want: ExpectDeny},
		{name: "several containers", env: "prod", change: func(in *Input) {
			in.Change.Desired.Containers["sidecar"] = types.Container{Image: "busybox"}
			image("web:latest")(in)
		}, want: ExpectDeny, message: "containers sidecar (busybox), web (web:latest)"},
		{name: "sandbox may use latest", env: "sandbox", change: image("nginx:latest"), want: ExpectNone},
	})
}

func TestProdResourceLimits(t *testing.T) {
	t.Parallel()
	runBuiltin(t, "prod-resource-limits", []builtinCase{
		{name: "cpu and memory", env: "prod", want: ExpectAllow},
		{name: "no memory", env: "prod", change: withContainer(func(c *types.Container) { c.Resources.Limits.Memory = nil }), want: ExpectDeny,
			message: "web in prod: container web (no limits.memory); production containers declare"},
		{name: "empty cpu", env: "prod", change: withContainer(func(c *types.Container) { c.Resources.Limits.Cpu = ptr("") }), want: ExpectDeny,
			message: "container web (no limits.cpu)"},
		{name: "requests only", env: "prod", change: withContainer(func(c *types.Container) {
			c.Resources = &types.ContainerResources{Requests: &types.ResourcesLimits{Cpu: ptr("1"), Memory: ptr("1Gi")}}
		}), want: ExpectDeny, message: "container web (no limits.cpu, limits.memory)"},
		{name: "no resources", env: "prod", change: withContainer(func(c *types.Container) { c.Resources = nil }), want: ExpectDeny},
		{name: "not production", env: "preprod", change: withContainer(func(c *types.Container) { c.Resources = nil }), want: ExpectNone},
	})
}

func TestNoPlainSecrets(t *testing.T) {
	t.Parallel()
	const password = "hunter2-correct-horse"
	runBuiltin(t, "no-plain-secrets", []builtinCase{
		{name: "plain settings", env: "prod", want: ExpectAllow},
		{name: "literal password", env: "dev", change: withVar("DB_PASSWORD", password), want: ExpectDeny,
			message: "web in dev has secrets in plain variables: web.DB_PASSWORD (secret-looking name with a literal value); take them from a resource"},
		{name: "password from a resource", env: "prod", change: withVar("DB_PASSWORD", "${resources.db.password}"), want: ExpectAllow},
		{name: "URL with a literal password", env: "prod", change: withVar("DATABASE_URL", "postgres://app:"+password+"@db:5432/app"), want: ExpectDeny,
			message: "web.DATABASE_URL (a URL with a literal password)"},
		{name: "URL from placeholders", env: "prod", change: withVar("DATABASE_URL",
			"postgres://${resources.db.username}:${resources.db.password}@${resources.db.host}/app"), want: ExpectAllow},
		{name: "token in a harmless name", env: "sandbox", change: withVar("GREETING", "ghp_"+strings.Repeat("a1B2", 9)), want: ExpectDeny,
			message: "holds a GitHub token"},
		{name: "in every environment", env: "sandbox", change: withVar("apiToken", "abc"), want: ExpectDeny},
	})
	// The message never carries the value.
	set, _ := compile(t, nil)
	in := create(webUnit("dev"))
	withVar("DB_PASSWORD", password)(&in)
	if v := verdict(set.Evaluate(in), "no-plain-secrets"); v == nil || strings.Contains(v.Message, password) {
		t.Errorf("the message must name the variable, never its value: %+v", v)
	}
}

func TestSecretIn(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, value string
		secret      bool
	}{
		{"DB_PASSWORD", "s3cret", true},
		{"dbPassword", "s3cret", true},
		{"CLIENT_SECRET", "x", true},
		{"AWS_CREDENTIALS", "x", true},
		{"API_TOKEN", "x", true},
		{"STRIPE_KEY", "x", true},
		{"SMTP_PASS", "x", true},
		{"SECRET_KEY_BASE", "x", true},
		{"DB_PASSWORD", "", false},
		{"DB_PASSWORD", "${resources.db.password}", false},
		{"DB_PASSWORD_FILE", "/run/secrets/db", false},
		{"SECRET_NAME", "db-credentials", false},
		{"AWS_ACCESS_KEY_ID", "x", false},
		{"TOKEN_TTL", "3600", false},
		{"KEY_PREFIX", "bookings", false},
		{"MONKEY", "banana", false},
		{"LOG_LEVEL", "debug", false},
		{"API_URL", "http://api.internal", false},
		{"ANY", "-----BEGIN RSA PRIVATE KEY-----\nMII…", true},
		{"ANY", "AKIAIOSFODNN7EXAMPLE", true},
		{"ANY", "xoxb-1234567890-abcdef", true},
		{"ANY", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", true},
		{"ANY", "https://user:pa55@example.com/x", true},
		{"ANY", "https://user@example.com/x", false},
		{"ANY", "https://example.com:8443/x", false},
	} {
		if got := secretIn(tt.name, tt.value) != ""; got != tt.secret {
			t.Errorf("secretIn(%q, %q) = %v, want %v", tt.name, tt.value, got, tt.secret)
		}
	}
}

func TestReadinessProbeForTraffic(t *testing.T) {
	t.Parallel()
	noProbe := withContainer(func(c *types.Container) { c.ReadinessProbe = nil })
	runBuiltin(t, "readiness-probe-for-traffic", []builtinCase{
		{name: "ports and a probe", env: "prod", want: ExpectAllow},
		{name: "ports, no probe", env: "dev", change: noProbe, want: ExpectDeny,
			message: "web in dev receives traffic (service ports) but no container declares a readinessProbe"},
		{name: "no service, no probe", env: "dev", change: func(in *Input) {
			noProbe(in)
			in.Change.Desired.Service = nil
		}, want: ExpectAllow},
		{name: "service without ports", env: "dev", change: func(in *Input) {
			noProbe(in)
			in.Change.Desired.Service = &types.WorkloadService{}
		}, want: ExpectAllow},
		{name: "a sidecar without a probe", env: "prod", change: func(in *Input) {
			in.Change.Desired.Containers["sidecar"] = types.Container{Image: "log:1"}
		}, want: ExpectAllow},
	})
}

func TestSandboxNoProdAccess(t *testing.T) {
	t.Parallel()
	resource := func(r types.Resource) func(*Input) {
		return func(in *Input) { in.Change.Desired.Resources = types.WorkloadResources{"db": r} }
	}
	runBuiltin(t, "sandbox-no-prod-access", []builtinCase{
		{name: "own resources", env: "sandbox", change: resource(types.Resource{Type: "postgres", Params: map[string]any{"host": "db.sandbox.internal"}}), want: ExpectAllow},
		{name: "param names the prod environment", env: "sandbox", change: resource(types.Resource{Type: "postgres", Params: map[string]any{"host": "db.prod.internal"}}),
			want: ExpectDeny, message: `web in sandbox (a sandbox) reaches production: resource db params.host names "prod"`},
		{name: "nested param names the prod account", env: "sandbox", change: resource(types.Resource{Type: "bucket", Params: map[string]any{"replicas": []any{map[string]any{"project": "ACME-Apps-Prod"}}}}),
			want: ExpectDeny, message: `resource db params.replicas[0].project names "acme-apps-prod"`},
		{name: "class names the prod zone", env: "sandbox", change: resource(types.Resource{Type: "postgres", Class: ptr("apps-prod")}), want: ExpectDeny},
		{name: "id names prod", env: "sandbox", change: resource(types.Resource{Type: "postgres", Id: ptr("shared.prod")}), want: ExpectDeny},
		{name: "preprod is not prod", env: "sandbox", change: resource(types.Resource{Type: "postgres", Id: ptr("shared-preprod"), Class: ptr("production-like")}), want: ExpectAllow},
		{name: "variable names prod", env: "sandbox", change: withVar("API_URL", "https://api.prod.example"), want: ExpectDeny,
			message: `container web variable API_URL names "prod"`},
		{name: "placeholders are not literal", env: "sandbox", change: withVar("API_URL", "https://${resources.prod.host}"), want: ExpectAllow},
		{name: "only in sandbox zones", env: "preprod", change: withVar("API_URL", "https://api.prod.example"), want: ExpectNone},
	})
}

func TestMutableImage(t *testing.T) {
	t.Parallel()
	for img, want := range map[string]bool{
		"nginx": true, "nginx:latest": true, "nginx:": true, "nginx:1.25": false, "ghcr.io/acme/web": true,
		"ghcr.io/acme/web:v2": false, "localhost:5000/web": true, "web@sha256:00": false, ".": false,
	} {
		if got := mutableImage(img); got != want {
			t.Errorf("mutableImage(%q) = %v, want %v", img, got, want)
		}
	}
}
