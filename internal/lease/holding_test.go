package lease

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHoldingStopsEveryJobWhenTheHeldLeaseIsLost: jobs of several scopes
// run under one held lease, with its token; when its file goes, every job
// stops and none runs again, though Run keeps waiting until its context
// ends; releasing a job's lease does not release the held one.
func TestHoldingStopsEveryJobWhenTheHeldLeaseIsLost(t *testing.T) {
	dir := t.TempDir()
	f := &File{Dir: dir, Poll: time.Millisecond}
	held, err := f.TryAcquire(t.Context(), Platform, me())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	l := Holding(held)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type run struct {
		scope string
		token uint64
	}
	runs, stopped, done := make(chan run, 4), make(chan string, 4), make(chan error, 2)
	for _, scope := range []string{Platform, "env.prod"} {
		go func() {
			done <- Run(ctx, l, scope, me(), func(ctx context.Context, token uint64) error {
				runs <- run{scope, token}
				<-ctx.Done()
				stopped <- scope
				return nil
			})
		}()
	}
	for range 2 {
		if r := <-runs; r.token != held.Token() {
			t.Errorf("%s runs with token %d, want the held lease's %d", r.scope, r.token, held.Token())
		}
	}
	// A job's own lease released: the held one stays.
	v, err := l.TryAcquire(ctx, "env.dev", me())
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	if _, err := f.TryAcquire(ctx, Platform, me()); !errors.Is(err, ErrHeld) {
		t.Fatalf("after a job's release, the platform lease is free (%v)", err)
	}

	if err := os.Remove(filepath.Join(dir, "platform.lease")); err != nil {
		t.Fatal(err)
	}
	<-stopped
	<-stopped
	if _, err := l.TryAcquire(ctx, "env.prod", me()); !errors.Is(err, ErrLost) {
		t.Errorf("TryAcquire after the loss: %v, want ErrLost", err)
	}
	select {
	case r := <-runs:
		t.Fatalf("%s ran again under a lost lease", r.scope)
	case err := <-done:
		t.Fatalf("Run returned %v before its context ended", err)
	default:
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil when ctx ends", err)
		}
	}
	if len(runs) != 0 {
		t.Errorf("a job ran again under a lost lease")
	}
}
