package server

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	scoretypes "github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/artifact"
	"github.com/socle-dev/socle/internal/artifact/registry"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/kubernetes"
	"github.com/socle-dev/socle/internal/spec"
)

// externalRegistry serves images that are not socle's to pin: socle's
// registry code on loopback, with no authentication, standing in for
// Docker Hub or a company registry (the test reaches no internet).
func externalRegistry(t *testing.T) string {
	t.Helper()
	st, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.NewHandler(st, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// newImages is the server's images over a registry of its own.
func newImages(t *testing.T, dir string, app *spec.App) *images {
	t.Helper()
	reg, err := registry.Open(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := artifact.NewBuilder(artifact.Config{Dir: filepath.Join(dir, "artifacts"), Registry: reg, Host: "socle.test:7070"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := artifact.NewUnpacker(filepath.Join(dir, "rootfs"), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &images{builder: b, unpacker: u, appAt: func(name, _ string) *spec.App {
		if name == app.Name {
			return app
		}
		return nil
	}}
}

// TestEachContainerRunsItsOwnImage: a workload of two containers with
// different external images gets one artifact (what a release records and
// a promotion carries) that pins each container to its own image's digest;
// Kubernetes runs each on its image, the local runtime unpacks the right
// one, and a socle restarted on the same data (or a later environment)
// reads the same pins from the artifact alone. Before, both containers ran
// the digest of whichever image was resolved last.
func TestEachContainerRunsItsOwnImage(t *testing.T) {
	ext := externalRegistry(t)
	digests := map[string]string{}
	for _, name := range []string{"proxy", "app"} {
		img := testImage(t, name)
		cfg, _ := img.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.Config.Env = []string{"WHO=" + name}
		img, err := mutate.ConfigFile(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(imageRef(t, ext+"/ext/"+name+":1.0"), img); err != nil {
			t.Fatal(err)
		}
		digests[name] = digestOf(t, img)
	}
	containers := map[string]scoretypes.Container{
		"a-proxy": {Image: ext + "/ext/proxy:1.0"},
		"b-app":   {Image: ext + "/ext/app:1.0"},
	}
	app := &spec.App{Name: "duo", Workload: &scoretypes.Workload{Containers: containers}}
	u := plan.Unit{App: "duo", Env: "prod", Revision: "abc1234", Containers: containers}
	dir := t.TempDir()
	im := newImages(t, dir, app)
	ctx := t.Context()

	artifactDigest, err := im.Build(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if artifactDigest == digests["proxy"] || artifactDigest == digests["app"] {
		t.Fatalf("the artifact is %s, one container's image: the other's is lost", artifactDigest)
	}
	want := map[string]string{"a-proxy": digests["proxy"], "b-app": digests["app"]}
	again, err := im.Build(ctx, u, nil)
	if err != nil || again != artifactDigest {
		t.Errorf("building again: %s %v, want the same artifact %s", again, err, artifactDigest)
	}
	// A socle restarted on the same data reads the pins from the artifact.
	for _, im := range []*images{im, newImages(t, dir, app)} {
		pins, err := im.Pins(ctx, u, artifactDigest)
		if err != nil {
			t.Fatal(err)
		}
		for c, d := range want {
			if pins[c] != d {
				t.Errorf("container %s pinned to %s, want %s", c, pins[c], d)
			}
		}
	}

	pins, _ := im.Pins(ctx, u, artifactDigest)
	objs, err := kubernetes.Render(runtime.UnitSpec{App: "duo", Env: "prod", Workloads: []runtime.Workload{
		{Release: "r1", Unit: &u, Artifact: artifactDigest, Images: pins},
	}}, kubernetes.RenderOptions{Namespace: "prod", Registry: "socle.test:7070"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
		for _, c := range cs {
			c := c.(map[string]any)
			name, image := c["name"].(string), c["image"].(string)
			if wantImage := strings.TrimSuffix(containers[name].Image, ":1.0") + "@" + want[name]; image != wantImage {
				t.Errorf("Deployment container %s runs %s, want %s", name, image, wantImage)
			}
		}
	}

	// The local runtime runs the first container: its own image.
	img, err := im.Unpack(ctx, containers["a-proxy"].Image, pins["a-proxy"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(img.Env, " "), "WHO=proxy") {
		t.Errorf("a-proxy unpacked with environment %v, want proxy's image", img.Env)
	}
}

// TestOneImageIsItsOwnArtifact: containers that all run one image keep
// that image's digest as the artifact, as before pin lists; so does a
// release recorded before them, whose pins are read from the workload.
func TestOneImageIsItsOwnArtifact(t *testing.T) {
	ext := externalRegistry(t)
	img := testImage(t, "shared")
	if err := remote.Write(imageRef(t, ext+"/ext/shared:1"), img); err != nil {
		t.Fatal(err)
	}
	d := digestOf(t, img)
	containers := map[string]scoretypes.Container{"a": {Image: ext + "/ext/shared:1"}, "b": {Image: ext + "/ext/shared:1"}}
	u := plan.Unit{App: "same", Env: "dev", Containers: containers}
	im := newImages(t, t.TempDir(), &spec.App{Name: "same", Workload: &scoretypes.Workload{Containers: containers}})
	got, err := im.Build(t.Context(), u, nil)
	if err != nil || got != d {
		t.Fatalf("artifact %s %v, want the image's digest %s", got, err, d)
	}
	pins, err := im.Pins(t.Context(), u, d)
	if err != nil || pins["a"] != d || pins["b"] != d {
		t.Errorf("pins %v %v, want both on %s", pins, err, d)
	}
}
