// Package contract holds the parts of the store.Store contract that every
// implementation enforces the same way, in Go rather than in SQL: how times
// are kept, how list limits are read, and which arguments are rejected before
// anything is written. JSON validity is left to the database, which checks it
// where the document is written.
package contract

import (
	"errors"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/store"
)

// Time returns t as every store keeps it: in UTC, truncated to the
// microsecond (the precision of PostgreSQL's timestamptz).
func Time(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// TimeOr returns Time(t), or Time(now) if t is zero.
func TimeOr(t, now time.Time) time.Time {
	if t.IsZero() {
		return Time(now)
	}
	return Time(t)
}

// Limit reads the limit of a list method: 0 means store.DefaultLimit and
// anything above store.MaxLimit means store.MaxLimit.
func Limit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("negative limit %d", n)
	case n == 0:
		return store.DefaultLimit, nil
	case n > store.MaxLimit:
		return store.MaxLimit, nil
	}
	return n, nil
}

// CheckRevision rejects a revision without a SHA, or valid with problems.
func CheckRevision(r store.Revision) error {
	if r.SHA == "" {
		return errors.New("revision without SHA")
	}
	if r.Valid && len(r.Problems) > 0 {
		return fmt.Errorf("revision %s is valid but has problems", r.SHA)
	}
	return nil
}

// CheckEvent rejects an event without a kind.
func CheckEvent(e store.Event) error {
	if e.Kind == "" {
		return errors.New("event without kind")
	}
	return nil
}

// CheckApply rejects the arguments of store.Store.ApplyDesired that name no
// revision, disagree on it, name a unit without app or environment, or name a
// unit twice.
func CheckApply(revision string, set []store.Desired, remove []store.Unit, plan store.Plan, events []store.Event) error {
	if revision == "" {
		return errors.New("no revision")
	}
	if plan.Revision != "" && plan.Revision != revision {
		return fmt.Errorf("plan is for revision %s", plan.Revision)
	}
	seen := make(map[store.Unit]string, len(set)+len(remove))
	check := func(where string, u store.Unit) error {
		if u.App == "" || u.Env == "" {
			return fmt.Errorf("%s: unit %q/%q: app and environment are required", where, u.App, u.Env)
		}
		if first, ok := seen[u]; ok {
			return fmt.Errorf("%s: unit %s/%s already in %s", where, u.App, u.Env, first)
		}
		seen[u] = where
		return nil
	}
	for i, d := range set {
		where := fmt.Sprintf("set[%d]", i)
		if err := check(where, d.Unit()); err != nil {
			return err
		}
		if d.Revision != "" && d.Revision != revision {
			return fmt.Errorf("%s: unit %s/%s is from revision %s", where, d.App, d.Env, d.Revision)
		}
	}
	for i, u := range remove {
		if err := check(fmt.Sprintf("remove[%d]", i), u); err != nil {
			return err
		}
	}
	for i, e := range events {
		if err := CheckEvent(e); err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	return nil
}
