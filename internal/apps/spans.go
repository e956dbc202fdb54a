package apps

import (
	"context"
	"errors"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/trace"
)

// rolloutSpans are the spans of the rollout in progress, kept in memory
// across its passes (memo): the rollout's, a child of the revision that
// changed the unit; its step's; and the step's wait, for the new release's
// health, then for its pause. A rollout that a restarted socle resumes
// has none: it is not traced. The methods of a nil one do nothing.
type rolloutSpans struct {
	ctx                 context.Context // the rollout span's, detached from the pass that began it
	rollout, step, wait trace.Span
	stepCtx             context.Context
}

// startRollout starts the trace of a rollout of rel.
func startRollout(ctx context.Context, d *plan.Unit, rel store.Release) *rolloutSpans {
	if !trace.Enabled() {
		return nil
	}
	ctx, _ = trace.From(ctx, trace.UnitKey(d.App, d.Env), true)
	ctx, span := trace.Start(ctx, "rollout", trace.App(d.App), trace.Env(d.Env), trace.Release(rel.ID),
		trace.Revision(rel.Revision), trace.Artifact(rel.Artifact), trace.String("strategy", rel.Strategy))
	return &rolloutSpans{ctx: trace.Detach(ctx), rollout: span}
}

// enter starts the spans of step i: the step's, and its wait for the new
// release to be healthy with enough ready replicas.
func (r *rolloutSpans) enter(i int, st rolloutStep) {
	if r == nil {
		return
	}
	r.endStep("")
	ctx, span := trace.Start(r.ctx, "rollout step", trace.Int("step", i+1), trace.String("step.name", st.name), trace.Int("weight", st.weight))
	r.stepCtx, r.step = trace.Detach(ctx), span
	_, r.wait = trace.Start(r.stepCtx, "health wait", trace.Int("ready.least", st.least))
}

// pause ends the step's health wait and starts its pause, analysed or
// watched.
func (r *rolloutSpans) pause(st rolloutStep, analysed bool) {
	if r == nil || r.step == nil {
		return
	}
	r.wait.End()
	analysis := "health" // the release's workload must stay healthy
	if analysed {
		analysis = "proxy" // its requests' error rate and latency
	}
	_, r.wait = trace.Start(r.stepCtx, "pause", trace.String("pause", st.pause.String()), trace.String("analysis", analysis))
}

// endStep ends the step's spans, failed for why unless it is "".
func (r *rolloutSpans) endStep(why string) {
	if r.step == nil {
		return
	}
	for _, s := range []trace.Span{r.wait, r.step} {
		if why != "" {
			trace.Fail(s, why)
		}
		s.End()
	}
	r.step, r.wait = nil, nil
}

// end ends the rollout's spans as its release ended: status, and reason
// when it did not succeed.
func (r *rolloutSpans) end(status store.ReleaseStatus, reason string) {
	if r == nil {
		return
	}
	why := ""
	if status != store.Succeeded {
		why = string(status) + ": " + reason
	}
	r.endStep(why)
	r.rollout.SetAttributes(trace.Outcome(string(status)))
	var err error
	if why != "" {
		err = errors.New(why)
	}
	trace.End(r.rollout, err)
}
