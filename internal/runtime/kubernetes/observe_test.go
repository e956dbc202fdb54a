package kubernetes

import (
	"slices"
	"testing"

	"github.com/socle-dev/socle/internal/runtime"
)

// TestCompare: only the fields socle applies are compared; lists of named
// elements match by name; values compare as the API server stores them.
func TestCompare(t *testing.T) {
	want := map[string]any{
		"metadata": map[string]any{"name": "web", "labels": map[string]any{"socle.dev/app": "web"}},
		"spec": map[string]any{
			"replicas": int64(2),
			"strategy": map[string]any{},
			"template": map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "web", "env": []any{map[string]any{"name": "A", "value": "1"}},
					"resources": map[string]any{"limits": map[string]any{"cpu": "0.5"}}},
			}}},
		},
	}
	live := func(change func(spec map[string]any)) map[string]any {
		l := map[string]any{
			"metadata": map[string]any{"name": "web", "uid": "x", "labels": map[string]any{"socle.dev/app": "web", "other": "x"}},
			"spec": map[string]any{
				"replicas": float64(2), "paused": false,
				"template": map[string]any{"spec": map[string]any{"containers": []any{
					map[string]any{"name": "sidecar"},
					map[string]any{"name": "web", "image": "x", "env": []any{map[string]any{"name": "B", "value": "2"}, map[string]any{"name": "A", "value": "1"}},
						"resources": map[string]any{"limits": map[string]any{"cpu": "500m"}}},
				}}},
			},
			"status": map[string]any{"replicas": int64(7)},
		}
		if change != nil {
			change(l["spec"].(map[string]any))
		}
		return l
	}
	tests := []struct {
		name   string
		change func(spec map[string]any)
		want   []string
	}{
		{"same, with others' fields and normalised values", nil, nil},
		{"kubectl scale", func(s map[string]any) { s["replicas"] = int64(5) }, []string{"spec.replicas: 5, socle applies 2"}},
		{"kubectl edit of a variable", func(s map[string]any) {
			c := s["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[1].(map[string]any)
			c["env"] = []any{map[string]any{"name": "A", "value": "9"}}
		}, []string{"spec.template.spec.containers[web].env[A].value: 9, socle applies 1"}},
		{"container removed", func(s map[string]any) {
			s["template"].(map[string]any)["spec"].(map[string]any)["containers"] = []any{}
		}, []string{"spec.template.spec.containers[web]: removed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := compare(want, live(tc.change), "")
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("compare = %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCanaryWorkloadLabels(t *testing.T) {
	u := demoUnits(t)["web"]
	objs, err := Render(runtime.UnitSpec{App: "web", Env: "dev", Workloads: []runtime.Workload{{Release: "r9", Unit: u, Artifact: testDigest, Dedicated: true, Replicas: 1}}}, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "HorizontalPodAutoscaler" {
			t.Errorf("a canary of a fixed size has an autoscaler")
		}
		if o.GetKind() == "Deployment" && (o.GetName() != "web-r9" || o.Release != "r9") {
			t.Errorf("canary Deployment %s of release %q, want web-r9 of r9", o.GetName(), o.Release)
		}
		if (o.GetKind() == "Service" || o.GetKind() == "PodDisruptionBudget") && o.Release != "" {
			t.Errorf("%s belongs to release %q, want every release's", o.GetKind(), o.Release)
		}
	}
}
