package stack

import (
	"testing"

	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/unit"
)

// TestDescribe: a unit waiting on an instance (a resource that takes its
// outputs) says what the instance waits for, and why it failed in full.
func TestDescribe(t *testing.T) {
	k := NewKind(KindConfig{Runner: &Runner{Dir: t.TempDir()}})
	key := unit.Key{Kind: KindID, Name: "databases", Env: "prod"}
	for _, tc := range []struct {
		st   reconcile.UnitStatus
		want string
	}{
		{reconcile.UnitStatus{Phase: reconcile.Blocked, Reason: ReasonAwaitingApproval, Message: "plan p (1 to add) waits for 1 approval"},
			"stack databases @ prod not applied yet (awaiting approval)"},
		{reconcile.UnitStatus{Phase: reconcile.Progressing, Reason: ReasonPlanning, Message: "planning"},
			"stack databases @ prod not applied yet (planning)"},
		{reconcile.UnitStatus{Phase: reconcile.Failed, Reason: ReasonStackPlanFailed, Message: "plan failed (Terraform): boom"},
			"stack databases @ prod not applied yet (plan failed (Terraform): boom)"},
		{reconcile.UnitStatus{Phase: reconcile.Pending},
			"stack databases @ prod not applied yet (pending)"},
	} {
		if got := k.Describe(key, nil, tc.st); got != tc.want {
			t.Errorf("Describe(%s %s) = %q, want %q", tc.st.Phase, tc.st.Reason, got, tc.want)
		}
	}
}
