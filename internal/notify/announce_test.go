package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

type failingLog struct{}

func (failingLog) AppendEvent(context.Context, store.Event) (int64, error) {
	return 0, errors.New("disk full")
}

type fullNotifier struct{ got []Event }

func (n *fullNotifier) Notify(_ context.Context, ev Event) error {
	n.got = append(n.got, ev)
	return ErrQueueFull
}

// TestAnnouncer: an event is recorded in the store and handed to the
// notifier; what cannot be done is logged with the event's kind, and
// nothing is returned to the caller, whose action has happened.
func TestAnnouncer(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n := &fullNotifier{}

	a := Announcer{Events: st, Notifier: n, Log: log}
	a.Record(t.Context(), store.Event{Kind: "drift", App: "web", Env: "dev", Message: "web drifted"})
	evs, err := st.Events(t.Context(), store.EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].Kind != "drift" || evs[0].Message != "web drifted" {
		t.Errorf("events recorded: %+v, %v", evs, err)
	}
	a.Notify(t.Context(), Event{Kind: Drift, App: "web", Env: "dev", Title: "Drift in dev"})
	if len(n.got) != 1 || n.got[0].Kind != Drift {
		t.Errorf("notified: %+v", n.got)
	}
	if !strings.Contains(logs.String(), "msg=notifying kind=drift") || !strings.Contains(logs.String(), "queue full") {
		t.Errorf("the full queue is not logged:\n%s", logs.String())
	}

	logs.Reset()
	Announcer{Events: failingLog{}, Notifier: n, Log: log}.Record(t.Context(), store.Event{Kind: "approval"})
	if !strings.Contains(logs.String(), `msg="recording an event" kind=approval err="disk full"`) {
		t.Errorf("the failed record is not logged:\n%s", logs.String())
	}
}
