package runtime

import (
	"context"
	"fmt"
	"time"
)

// WaitFor returns the replica's status once cond holds for it. It reads the
// status again after every event about the replica and at least every
// second, since events are only hints. It returns the last status read and
// ctx's error if ctx ends first, and Status's error if that fails.
func WaitFor(ctx context.Context, d Driver, h Handle, cond func(Status) bool) (Status, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := d.Watch(ctx) // before the first Status, so no change is missed
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st, err := d.Status(ctx, h)
		if err != nil || cond(st) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("waiting for replica %s (%s: %s): %w", st.Ref, st.State, st.Message, ctx.Err())
		case <-tick.C:
		case <-events:
		}
	}
}

// IsReady is a condition for WaitFor.
func IsReady(st Status) bool { return st.Ready }
