package runtimetest

import (
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/runtime"
	"github.com/socle-dev/socle/internal/runtime/local"
)

// TestDeadlineAfterOpen: a harness's Open may take minutes the first time
// (the Kubernetes driver builds its test cluster); the suite's deadline for
// the test must start only once Open has returned, or the first run on a
// new machine fails with "context deadline exceeded".
func TestDeadlineAfterOpen(t *testing.T) {
	var opened time.Time
	h := Harness{Open: func(t *testing.T) (runtime.Driver, func() runtime.Driver) {
		d, err := local.New(local.Options{StateDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		opened = time.Now()
		return d, nil
	}}
	f := newFixture(t, h)
	deadline, ok := f.ctx.Deadline()
	if !ok {
		t.Fatal("the fixture's context has no deadline")
	}
	if want := opened.Add(waitTimeout); deadline.Before(want) {
		t.Errorf("deadline %s before Open returned + %s (%s): the harness's setup eats the test's time", deadline, waitTimeout, want)
	}
}
