package notify

import (
	"context"
	"log/slog"

	"github.com/socle-dev/socle/internal/store"
)

// Announcer records socle's events in its event log and notifies them to
// the targets that want them, for the parts that tell of what happened
// (promotion, the server's engine callbacks). Neither is a reason to fail
// what the event tells of, which has happened: a failure is logged, not
// returned.
type Announcer struct {
	Events   EventLog
	Notifier interface {
		Notify(ctx context.Context, ev Event) error
	}
	Log *slog.Logger
}

// Record appends e to the event log.
func (a Announcer) Record(ctx context.Context, e store.Event) {
	if _, err := a.Events.AppendEvent(ctx, e); err != nil {
		a.Log.Error("recording an event", "kind", e.Kind, "err", err)
	}
}

// Notify queues ev for the targets that want it.
func (a Announcer) Notify(ctx context.Context, ev Event) {
	if err := a.Notifier.Notify(ctx, ev); err != nil {
		a.Log.Warn("notifying", "kind", ev.Kind, "err", err)
	}
}
