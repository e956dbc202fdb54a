package apps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/trace"
)

// buildFailure is a build that failed, kept so that it is not run again
// at every pass: only when the app's files change, or at retryAt.
type buildFailure struct {
	source   string // the app's source hash the build failed on
	revision string
	err      error
	tail     string // the last lines of its log
	attempts int    // failed builds of this source in a row
	retryAt  time.Time
}

// Backoff of failed builds: the first retry after buildBackoff, doubling
// up to maxBuildBackoff. A compiler error does not go away by itself, a
// module proxy that was down does.
const (
	buildBackoff    = time.Minute
	maxBuildBackoff = time.Hour
)

// build builds the image of the unit's desired state, or finds the one
// built before. The unit says it builds, with the build log's last line;
// a failed build is kept (memo.buildErr) with its log's end and its
// backoff, and the status says so (Health).
func (k *Kind) build(ctx context.Context, u *reconcile.Unit, o *observed) error {
	d, m := o.d, memoOf(u)
	// The build goes on in the trace of the revision that changed the unit.
	bctx, _ := trace.From(ctx, trace.UnitKey(d.App, d.Env), false)
	bctx, span := trace.Start(bctx, "build", trace.App(d.App), trace.Env(d.Env), trace.Revision(d.Revision))
	digest, err := k.cfg.Images.Build(bctx, *d, func(line string) {
		u.Progress(func(s *reconcile.UnitStatus) {
			s.Phase, s.Reason = reconcile.Building, reconcile.ReasonBuilding
			s.Message = fmt.Sprintf("building %s at %s; what runs is untouched", d.App, abbrevSHA(d.Revision))
			s.LogTail = line
		})
	})
	span.SetAttributes(trace.Artifact(digest))
	trace.End(span, err)
	if err == nil {
		m.source, m.digest, m.buildErr = d.Source, digest, nil
		u.RequeueAfter(0)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // socle is stopping: not a failure of the build
	}
	f := &buildFailure{source: d.Source, revision: d.Revision, err: err, attempts: 1}
	if prev := m.buildErr; prev != nil && prev.source == d.Source {
		f.attempts = prev.attempts + 1
	}
	f.retryAt = u.Now.Add(min(buildBackoff<<min(f.attempts-1, 16), maxBuildBackoff)) // 16: no overflow, past the bound
	// A failed build command (artifact.BuildError) says its cause apart from
	// its log.
	var be interface {
		error
		LogTail() string
	}
	if errors.As(err, &be) {
		f.tail = be.LogTail()
		if cause := errors.Unwrap(be); cause != nil {
			f.err = cause
		}
	}
	m.buildErr = f
	k.log.Warn("build failed", "app", d.App, "env", d.Env, "revision", abbrevSHA(d.Revision), "attempt", f.attempts, "retryAt", f.retryAt, "err", firstLine(err.Error()))
	return nil
}
