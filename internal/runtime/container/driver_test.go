package container

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/runtimetest"
)

// TestContainerRemovedByHand: a replica whose container someone removed
// (podman rm -f) is created again and serves, and the containers of
// another state directory are never touched by this driver's New.
func TestContainerRemovedByHand(t *testing.T) {
	image := testImage(t, "testserver", map[string]string{"/testserver": buildServer(t)})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	other := open(t, t.TempDir())
	defer other.Close()
	spec := runtimetest.Spec(runtime.ReplicaSpec{Image: image, Command: []string{"/testserver"}}, 0)
	spec.Limits = runtime.Limits{MilliCPU: 500, Memory: 64 << 20}
	theirs, err := other.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop(context.Background(), theirs)

	d := open(t, t.TempDir())
	defer d.Close()
	defer d.StopAll(context.Background())
	h, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.WaitFor(ctx, d, h, runtime.IsReady); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("podman", "inspect", "--format", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{index .Config.Labels \"socle.dev/app\"}}", h.ID).Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "500000000 67108864 app" {
		t.Errorf("limits and label = %q, %v; want 500000000 67108864 app", got, err)
	}
	if out, err := exec.Command("podman", "rm", "--force", "--time", "0", h.ID).CombinedOutput(); err != nil {
		t.Fatalf("podman rm: %v: %s", err, out)
	}
	st, err := runtime.WaitFor(ctx, d, h, func(st runtime.Status) bool { return st.Restarts >= 1 && st.Ready })
	if err != nil {
		t.Fatalf("the removed container was not created again: %v", err)
	}
	if st.LastExit == nil {
		t.Errorf("no LastExit for the removed container")
	}
	if st, err := other.Status(ctx, theirs); err != nil || st.Restarts != 0 || !st.Ready {
		t.Errorf("the other driver's replica: %+v, %v; want it untouched", st, err)
	}
}
