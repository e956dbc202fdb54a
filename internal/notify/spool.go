package notify

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// delivery is one event on its way to one target, as spooled. It names the
// target and never holds its URL.
type delivery struct {
	// ID is unique and orders the deliveries in the order they were queued;
	// sent as X-Socle-Delivery.
	ID       string    `json:"id"`
	Target   string    `json:"target"`
	Event    Event     `json:"event"`
	Queued   time.Time `json:"queued"`
	Attempts int       `json:"attempts,omitempty"`
	// Next is when the next attempt may start; zero means at once.
	Next time.Time `json:"next,omitzero"`
}

// spool keeps pending deliveries, one file each, named <id>.json.
type spool struct{ dir string }

const (
	spoolExt  = ".json"
	tmpPrefix = ".tmp-"
	badExt    = ".bad" // a file that did not parse, set aside for a person
)

// openSpool creates dir if needed and returns the deliveries it holds, in the
// order they were queued. A file that does not parse is renamed with a .bad
// suffix and logged, so that it neither blocks the others nor disappears.
func openSpool(dir string, log *slog.Logger) (*spool, []*delivery, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the notification spool: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the notification spool: %w", err)
	}
	var ds []*delivery
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			// A write that a crash interrupted before its rename: the
			// delivery was not queued (or its previous version stands).
			if err := os.Remove(path); err != nil {
				return nil, nil, fmt.Errorf("cleaning the notification spool: %w", err)
			}
		case strings.HasSuffix(name, spoolExt):
			d, err := readDelivery(path)
			if err != nil {
				log.Error("setting aside an unreadable pending notification", "file", path+badExt, "err", err)
				if err := os.Rename(path, path+badExt); err != nil {
					return nil, nil, fmt.Errorf("setting aside %s: %w", path, err)
				}
				continue
			}
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b *delivery) int { return strings.Compare(a.ID, b.ID) })
	return &spool{dir: dir}, ds, nil
}

func readDelivery(path string) (*delivery, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d delivery
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if d.ID == "" || d.Target == "" || d.ID+spoolExt != filepath.Base(path) {
		return nil, fmt.Errorf("not a pending notification")
	}
	return &d, nil
}

// write records d durably: once it returns, d survives a crash.
func (s *spool) write(d *delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.dir, d.ID+spoolExt))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return s.syncDir()
}

// remove forgets d durably, so that a restart does not send it again.
func (s *spool) remove(d *delivery) error {
	if err := os.Remove(filepath.Join(s.dir, d.ID+spoolExt)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return s.syncDir()
}

// syncDir makes the directory's entries (a rename, a removal) durable.
func (s *spool) syncDir() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
