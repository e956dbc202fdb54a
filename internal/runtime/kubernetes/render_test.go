package kubernetes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/score-spec/score-go/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

const (
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

var testOptions = RenderOptions{Namespace: "shop-dev", Registry: "registry.example:5000", Secret: []byte("test-secret"), ProgressDeadline: time.Minute}

// demoUnits are the demo platform's units in dev.
func demoUnits(t *testing.T) map[string]*plan.Unit {
	t.Helper()
	repo, problems := spec.Load(os.DirFS("../../../examples/platform"))
	if problems.Errors() > 0 {
		t.Fatalf("the demo platform does not load: %v", problems)
	}
	out := map[string]*plan.Unit{}
	for _, u := range plan.Desired(repo, testRevision, nil) {
		if u.Env == "dev" {
			out[u.App] = &u
		}
	}
	return out
}

func steady(u *plan.Unit) runtime.UnitSpec {
	return runtime.UnitSpec{App: u.App, Env: u.Env, Workloads: []runtime.Workload{{Release: "r7", Unit: u, Artifact: testDigest}}}
}

// TestRender renders units into manifests compared with testdata/*.yaml
// (go test -run TestRender -args -update rewrites them).
func TestRender(t *testing.T) {
	units := demoUnits(t)
	files := *units["web"]
	files.Containers = map[string]types.Container{"web": withFiles(files.Containers["web"])}
	files.Resources = types.WorkloadResources{"db": {Type: "postgres"}}
	files.Secrets = []string{"GREETING"}
	fixed := *units["worker"]
	fixed.Replicas = spec.Replicas{Min: 3, Max: 3}
	tests := map[string]struct {
		spec runtime.UnitSpec
		opts RenderOptions
	}{
		// web: probes, resources, a port, replicas 1..2 and so an autoscaler.
		"web": {spec: steady(units["web"])},
		// api: a variable that reads a resource's credentials is a secret.
		"api": {spec: steady(units["api"])},
		// socle render: the same, secrets redacted.
		"api-redacted": {spec: steady(units["api"]), opts: RenderOptions{Redact: true}},
		// worker: no service, a fixed count and no autoscaler.
		"worker": {spec: steady(&fixed)},
		// Files: inline content expanded, binary content, a mode, a file
		// that reads a credential goes to the Secret, and so does a
		// variable socle.yaml marks secret.
		"files": {spec: steady(&files)},
		// A blue/green step: the new release in a Deployment of its own,
		// the service still on the old one.
		"bluegreen": {spec: runtime.UnitSpec{App: "web", Env: "dev", Serve: "r6", Keep: []string{"r6"},
			Workloads: []runtime.Workload{{Release: "r7", Unit: units["web"], Artifact: testDigest, Dedicated: true}}}},
		// A canary at one replica beside the old release, both served.
		"canary": {spec: runtime.UnitSpec{App: "web", Env: "dev", Keep: []string{"r6"},
			Workloads: []runtime.Workload{{Release: "r7", Unit: units["web"], Artifact: testDigest, Dedicated: true, Replicas: 1}}}},
	}
	// A token to pull socle's build with: a dockerconfigjson Secret for
	// the registry, named by the pods; redacted for people.
	tests["worker-pull"] = struct {
		spec runtime.UnitSpec
		opts RenderOptions
	}{spec: steady(&fixed), opts: RenderOptions{PullToken: "socle_000000000000_pull-token-for-the-test-0000000000000000"}}
	tests["worker-pull-redacted"] = struct {
		spec runtime.UnitSpec
		opts RenderOptions
	}{spec: steady(&fixed), opts: RenderOptions{PullToken: "socle_000000000000_pull-token-for-the-test-0000000000000000", Redact: true}}
	// socle's build beside two external images, each container pinned to
	// its own digest by the release; the pull Secret for the build.
	sidecars := fixed
	sidecars.Containers = map[string]types.Container{
		"worker": fixed.Containers["worker"],
		"proxy":  {Image: "docker.io/library/nginx:1.27"},
		"agent":  {Image: "registry.example:5000/tools/agent@sha256:3333333333333333333333333333333333333333333333333333333333333333"},
	}
	tests["pinned-images"] = struct {
		spec runtime.UnitSpec
		opts RenderOptions
	}{spec: runtime.UnitSpec{App: "worker", Env: "dev", Workloads: []runtime.Workload{{Release: "r7", Unit: &sidecars, Artifact: testDigest, Images: map[string]string{
		"worker": "sha256:1212121212121212121212121212121212121212121212121212121212121212",
		"proxy":  "sha256:2222222222222222222222222222222222222222222222222222222222222222",
		"agent":  "sha256:3333333333333333333333333333333333333333333333333333333333333333",
	}}}}, opts: RenderOptions{PullToken: "socle_000000000000_pull-token-for-the-test-0000000000000000"}}
	gateway := &Gateway{Name: "public", Namespace: "gateways", Domain: "dev.example.com"}
	// A unit behind a Gateway: an HTTPRoute to its service.
	tests["gateway"] = struct {
		spec runtime.UnitSpec
		opts RenderOptions
	}{spec: steady(units["web"]), opts: RenderOptions{Gateway: gateway}}
	// A canary step at 10% by weight: the unit's service stays on the old
	// release, the canary has a service of its own, the route splits.
	tests["gateway-canary"] = struct {
		spec runtime.UnitSpec
		opts RenderOptions
	}{spec: runtime.UnitSpec{App: "web", Env: "dev", Keep: []string{"r6"}, Weight: 10,
		Workloads: []runtime.Workload{{Release: "r7", Unit: units["web"], Artifact: testDigest, Dedicated: true, Replicas: 1}}}, opts: RenderOptions{Gateway: gateway}}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := testOptions
			opts.Redact, opts.Gateway, opts.PullToken = tc.opts.Redact, tc.opts.Gateway, tc.opts.PullToken
			objs, err := Render(tc.spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := YAML(objs)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".yaml"), got)
		})
	}
}

func withFiles(c types.Container) types.Container {
	s := func(v string) *string { return &v }
	c.Files = map[string]types.ContainerFile{
		"/etc/web/motd":      {Content: s("Welcome to ${metadata.name}\n"), Mode: s("0644")},
		"/etc/web/raw":       {Content: s("${not.expanded}"), NoExpand: new(true)},
		"/etc/web/logo.bin":  {BinaryContent: s("AAEC")},
		"/etc/web/db.secret": {Content: s("${resources.db.password}")},
	}
	return c
}

func TestRenderRejects(t *testing.T) {
	units := demoUnits(t)
	for name, change := range map[string]func(u *plan.Unit){
		"bad quantity": func(u *plan.Unit) {
			c := u.Containers["web"]
			v := "lots"
			c.Resources = &types.ContainerResources{Limits: &types.ResourcesLimits{Cpu: &v}}
			u.Containers = map[string]types.Container{"web": c}
		},
		"file from the repository": func(u *plan.Unit) {
			c := u.Containers["web"]
			v := "motd.txt"
			c.Files = map[string]types.ContainerFile{"/etc/motd": {Source: &v}}
			u.Containers = map[string]types.Container{"web": c}
		},
		"reference to a secret manager": func(u *plan.Unit) {
			c := u.Containers["web"]
			c.Variables = map[string]string{"KEY": "ref+vault://apps/web#key"}
			u.Containers = map[string]types.Container{"web": c}
			u.Secrets = []string{"KEY"}
		},
		"unknown placeholder": func(u *plan.Unit) {
			c := u.Containers["web"]
			c.Variables = map[string]string{"X": "${resources.nope.host}"}
			u.Containers = map[string]types.Container{"web": c}
		},
	} {
		u := *units["web"]
		change(&u)
		if _, err := Render(steady(&u), testOptions); !errors.Is(err, runtime.ErrInvalidUnit) {
			t.Errorf("%s: Render = %v, want ErrInvalidUnit", name, err)
		}
	}
}

// TestHashIsStable: the same unit renders the same objects, byte for byte,
// so that the inventory recognises an unchanged desired state.
func TestHashIsStable(t *testing.T) {
	u := demoUnits(t)["api"]
	a, _ := Render(steady(u), testOptions)
	b, _ := Render(steady(u), testOptions)
	if Hash(a) != Hash(b) {
		t.Error("two renders of one unit differ")
	}
	c, _ := Render(runtime.UnitSpec{App: "api", Env: "dev", Workloads: []runtime.Workload{{Release: "r8", Unit: u, Artifact: testDigest}}}, testOptions)
	if Hash(a) == Hash(c) {
		t.Error("a new release renders the same objects")
	}
}

// TestRenderPortPlaceholders: on Kubernetes, socle's port placeholders are
// the service's container ports, in the command line and the variables; one
// that names no port is refused.
func TestRenderPortPlaceholders(t *testing.T) {
	u := *demoUnits(t)["web"]
	c := u.Containers["web"]
	c.Args = []string{"-p", "${socle.port}"}
	c.Variables = map[string]string{"LISTEN": ":${socle.port.http}"}
	u.Containers = map[string]types.Container{"web": c}
	objs, err := Render(steady(&u), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	var env []any
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			got, _, _ = unstructured.NestedSlice(cs[0].(map[string]any), "args")
			env, _, _ = unstructured.NestedSlice(cs[0].(map[string]any), "env")
		}
	}
	if fmt.Sprint(got) != "[-p 8080]" || !strings.Contains(fmt.Sprint(env), "LISTEN value::8080") {
		t.Errorf("args %v, env %v: want the container port 8080", got, env)
	}
	c.Args = nil
	c.Variables = map[string]string{"X": "${socle.port.admin}"}
	u.Containers = map[string]types.Container{"web": c}
	if _, err := Render(steady(&u), testOptions); !errors.Is(err, runtime.ErrInvalidUnit) || !strings.Contains(err.Error(), "socle.port.admin") {
		t.Errorf("a placeholder of no port: %v", err)
	}
}
