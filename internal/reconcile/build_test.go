package reconcile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/spec"
)

// scriptedImages stands in for socle's image builder (artifact.Builder,
// tested with the real toolchain in its own package): its builds print the
// lines a test gives, then fail or succeed as the test says, and are
// counted.
type scriptedImages struct {
	mu     sync.Mutex
	builds int
	lines  []string
	err    error
}

func (s *scriptedImages) Build(_ context.Context, _ plan.Unit, progress func(string)) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.builds++
	for _, l := range s.lines {
		progress(l)
	}
	return "", s.err
}

func (s *scriptedImages) Pins(context.Context, plan.Unit, string) (map[string]string, error) {
	return nil, nil
}

func (s *scriptedImages) Unpack(context.Context, string, string) (Image, error) {
	return Image{}, errors.New("no image in this test")
}

// commandFailed is a failed build command as the builder returns it: its
// cause, and its log's end apart.
type commandFailed struct{ cause, tail string }

func (e *commandFailed) Error() string   { return "building web at r1: " + e.cause + "\n" + e.tail }
func (e *commandFailed) Unwrap() error   { return errors.New(e.cause) }
func (e *commandFailed) LogTail() string { return e.tail }

// TestFailedBuildWaits: a build says it runs, with its log's last line; a
// failed build shows its log's end and is not run again at every pass,
// only once its backoff (which doubles) has passed or when the app's files
// change.
func TestFailedBuildWaits(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	c := clock.NewFake(now)
	var mu sync.Mutex
	var phases []UnitStatus
	im := &scriptedImages{
		lines: []string{"$ go build -o $SOCLE_OUT/web .", "# example.com/web"},
		err:   &commandFailed{cause: "exit status 1", tail: "$ go build -o $SOCLE_OUT/web .\n# example.com/web\n./main.go:12:2: undefined: handler"},
	}
	e := New(Config{Images: im, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:   c,
		OnPhase: func(s UnitStatus) { mu.Lock(); phases = append(phases, s); mu.Unlock() }})
	advance := func(d time.Duration) { c.Advance(d); now = c.Now() }
	w := newWorker(e, plan.Key{App: "web", Env: "dev"})
	w.setDesired(&plan.Unit{App: "web", Env: "dev", Revision: "r1", Source: "files-1", Runtime: spec.RuntimeLocal})
	ctx := t.Context()

	w.pass(ctx)
	if len(phases) != 2 || phases[0].Phase != Building || phases[0].Reason != ReasonBuilding || phases[0].LogTail != "$ go build -o $SOCLE_OUT/web ." || !phases[0].Since.Equal(now) {
		t.Fatalf("phases %+v, want Building since now with the log's first line, then Failed", phases)
	}
	st := w.snapshot()
	if st.Phase != Failed || st.Reason != ReasonBuildFailed || !strings.Contains(st.LogTail, "undefined: handler") ||
		!st.RetryAt.Equal(now.Add(time.Minute)) || strings.Contains(st.Message, "\n") || !strings.Contains(st.Message, "failed: exit status 1;") {
		t.Fatalf("after a failed build: %+v", st)
	}

	for range 5 { // the resync, again and again: nothing changed
		w.pass(ctx)
	}
	advance(59 * time.Second)
	w.pass(ctx)
	if im.builds != 1 {
		t.Fatalf("%d builds before the backoff ended, want 1", im.builds)
	}
	if st := w.snapshot(); st.Reason != ReasonBuildFailed || st.LogTail == "" {
		t.Errorf("waiting for the retry: %+v", st)
	}

	advance(2 * time.Second)
	w.pass(ctx)
	if st := w.snapshot(); im.builds != 2 || !st.RetryAt.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("after the backoff: %d builds, retry at %s; want 2 builds and a retry in 2m", im.builds, st.RetryAt)
	}
	for range 70 { // the backoff doubles up to its bound, and stays there
		advance(maxBuildBackoff)
		w.pass(ctx)
	}
	if st := w.snapshot(); !st.RetryAt.Equal(now.Add(maxBuildBackoff)) {
		t.Errorf("retry at %s, want the bound, %s after now", st.RetryAt, maxBuildBackoff)
	}

	// The app's files change: built again at once, the backoff starts over.
	builds := im.builds
	w.setDesired(&plan.Unit{App: "web", Env: "dev", Revision: "r2", Source: "files-2", Runtime: spec.RuntimeLocal})
	w.pass(ctx)
	if st := w.snapshot(); im.builds != builds+1 || !st.RetryAt.Equal(now.Add(time.Minute)) {
		t.Errorf("after the app changed: %d builds (want %d), retry at %s (want in 1m)", im.builds, builds+1, st.RetryAt)
	}
	// A new platform revision that leaves the app's files as they are is
	// no reason to build again.
	w.setDesired(&plan.Unit{App: "web", Env: "dev", Revision: "r3", Source: "files-2", Runtime: spec.RuntimeLocal})
	w.pass(ctx)
	if im.builds != builds+1 {
		t.Errorf("a revision that does not touch the app built it again")
	}
}
