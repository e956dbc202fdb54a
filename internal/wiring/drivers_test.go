package wiring

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/spec"
)

// TestDriversRetryLater: a runtime that fails to open is not asked again
// on every pass of every unit, but after a while; then it serves.
func TestDriversRetryLater(t *testing.T) {
	t.Parallel()
	shelves := &toyShelves{}
	toy := shelves.typ()
	opens, fail := 0, true
	open := toy.Open
	toy.Open = func(h runtime.Host, shelf string) (runtime.Instance, error) {
		opens++
		if fail {
			return nil, errors.New("the shelf is out of reach")
		}
		return open(h, shelf)
	}
	reg := Runtimes(RuntimeOptions{})
	if err := reg.Register(toy); err != nil {
		t.Fatal(err)
	}
	repo, ps := Load(os.DirFS(writeRepo(t, nil)), reg)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	drivers := NewDrivers(DriversConfig{Registry: reg, Host: runtime.Host{Data: t.TempDir()}, Env: repo.Environment,
		Envs: func() []spec.Environment { return repo.Platform.Environments }, Clock: clk})
	defer drivers.Close()
	for range 3 {
		if _, err := drivers.For("play"); err == nil || err.Error() != "the shelf is out of reach" {
			t.Fatalf("For(play) = %v, want the shelf's error", err)
		}
	}
	if opens != 1 {
		t.Errorf("opened %d times in a row, want once", opens)
	}
	fail = false
	clk.Advance(openRetry - time.Second)
	if _, err := drivers.For("play"); err == nil || opens != 1 {
		t.Errorf("before the retry: %v, %d opens", err, opens)
	}
	clk.Advance(time.Second)
	if ud, err := drivers.For("play"); err != nil || ud == nil || opens != 2 {
		t.Errorf("after the retry: %v, %v, %d opens", ud, err, opens)
	}
}

// TestDriversNeedDecodedRuntimes: a revision read without the runtime
// types (spec.Load) has no runtime config, and the wiring says so rather
// than guess.
func TestDriversNeedDecodedRuntimes(t *testing.T) {
	t.Parallel()
	reg, _ := toyRegistry(t)
	repo, _ := spec.Load(os.DirFS(writeRepo(t, nil)))
	drivers := NewDrivers(DriversConfig{Registry: reg, Host: runtime.Host{Data: t.TempDir()}, Env: repo.Environment,
		Envs: func() []spec.Environment { return repo.Platform.Environments }})
	defer drivers.Close()
	if _, err := drivers.For("play"); !errors.Is(err, ErrNoRuntime) {
		t.Errorf("For(play) = %v, want ErrNoRuntime", err)
	}
	if all := drivers.All(); len(all) != 0 {
		t.Errorf("All() = %v", all)
	}
	drivers.Close()
	if _, err := drivers.Replicas("local"); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Replicas after Close = %v, want ErrClosed", err)
	}
}

// TestDriversAdaptReplicas: a runtime of replicas (local) reaches the
// engine as the unit driver DriversConfig.Replicas makes of it (socle's
// replica runtime), made once for its instance and listed by All beside
// the runtimes of whole units; without Replicas it is left out.
func TestDriversAdaptReplicas(t *testing.T) {
	t.Parallel()
	reg, _ := toyRegistry(t)
	repo, ps := Load(os.DirFS(writeRepo(t, nil)), reg)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	adapted := 0
	drivers := NewDrivers(DriversConfig{Registry: reg, Host: runtime.Host{Data: t.TempDir()}, Env: repo.Environment,
		Envs: func() []spec.Environment { return repo.Platform.Environments },
		Replicas: func(d runtime.Driver) runtime.UnitDriver {
			adapted++
			return replicas.New(replicas.Config{Driver: d})
		}})
	defer drivers.Close()
	dev, err := drivers.For("dev")
	if err != nil {
		t.Fatal(err)
	}
	rt, ok := dev.(*replicas.Runtime)
	if !ok || rt.Name() != string(spec.RuntimeLocal) {
		t.Fatalf("For(dev) = %#v, want the replica runtime over the local driver", dev)
	}
	if again, err := drivers.Units(string(spec.RuntimeLocal)); err != nil || again != dev {
		t.Errorf("Units(local) = %v, %v, want For(dev)'s", again, err)
	}
	if _, err := drivers.For("dev"); err != nil || adapted != 1 {
		t.Errorf("adapted %d times (%v), want once", adapted, err)
	}
	play, err := drivers.For("play")
	if err != nil {
		t.Fatal(err)
	}
	all := drivers.All()
	if len(all) != 2 || !slices.Contains(all, dev) || !slices.Contains(all, play) {
		t.Errorf("All() = %v, want the replica runtime and the toy", all)
	}
	if ud, err := drivers.For("gone"); ud != nil || err != nil {
		t.Errorf("For(gone) = %v, %v, want none", ud, err)
	}
}
