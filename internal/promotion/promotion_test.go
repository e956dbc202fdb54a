package promotion

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/gate"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

// TestDecideSync: a deploy to an environment that follows Git says what
// the unit really runs, the last revision that changed it, not the head.
func TestDecideSync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		desired, running, head  string
		synced                  bool
		held                    string
		outcome, revision, word string
	}{
		{"the head does not touch it", "e0958a9", "e0958a9", "2281b36", true, "", api.OutcomeUnchanged, "e0958a9", "already runs e0958a9, the last revision that changed it; nothing changes (the newest revision 2281b36 does not touch it)"},
		{"at the head", "2281b36", "2281b36", "2281b36", true, "", api.OutcomeUnchanged, "2281b36", "already runs 2281b36"},
		{"a rollout to do", "2281b36", "e0958a9", "2281b36", true, "", api.OutcomeSyncing, "2281b36", "syncing api in dev from e0958a9 to 2281b36"},
		{"runs it, not healthy", "e0958a9", "e0958a9", "2281b36", false, "", api.OutcomeSyncing, "e0958a9", "syncing api in dev from e0958a9 to e0958a9"},
		{"nothing yet", "", "", "2281b36", false, "", api.OutcomeSyncing, "2281b36", "deploying api in dev at 2281b36"},
		{"held", "e0958a9", "e0958a9", "2281b36", true, "denied by policy x: y", api.OutcomeHeld, "e0958a9", "keeps e0958a9: denied by policy x: y"},
	}
	for _, tt := range tests {
		o := decideSync(tt.desired, tt.running, tt.head, tt.synced, tt.held)
		if o.Outcome != tt.outcome || o.Revision != tt.revision || !strings.Contains(o.Words("api", "dev"), tt.word) {
			t.Errorf("%s: %+v %q, want %s at %s saying %q", tt.name, o, o.Words("api", "dev"), tt.outcome, tt.revision, tt.word)
		}
	}
}

// TestEmergencyIn: the release an emergency pin brings passes as one when
// whoever it names may declare it; later changes under the same pin, and
// pins by others, do not.
func TestEmergencyIn(t *testing.T) {
	t.Parallel()
	fsys := os.DirFS("../../examples/platform")
	repo, problems := spec.Load(fsys)
	if problems.Errors() > 0 {
		t.Fatal(problems.Err())
	}
	pinBy := func(user string) *spec.Repo {
		r := *repo
		r.Releases = map[string]*spec.Releases{"prod": {Environment: "prod", Apps: map[string]spec.Pin{
			"api": {Revision: "2222222", Artifact: "sha256:b", PromotedBy: user, Emergency: &spec.PinEmergency{Reason: "INC-1"}}}}}
		return &r
	}
	u := &plan.Unit{App: "api", Env: "prod", Revision: "2222222", Artifact: "sha256:b", Emergency: "INC-1"}
	before := &plan.Unit{App: "api", Env: "prod", Revision: "1111111", Artifact: "sha256:a"}
	tests := []struct {
		name    string
		repo    *spec.Repo
		u, old  *plan.Unit
		want    bool
		refused error
	}{
		{"an approver of the app's team", pinBy("sofia"), u, before, true, nil},
		{"an admin", pinBy("lena"), u, before, true, nil},
		{"a first release", pinBy("lena"), u, nil, true, nil},
		{"a developer", pinBy("marco"), u, before, false, gate.ErrDeclarer},
		{"an approver of another team", pinBy("ines"), u, before, false, gate.ErrDeclarer},
		{"nobody", pinBy(""), u, before, false, gate.ErrDeclarer},
		{"the release runs already", pinBy("sofia"), u, u, false, nil},
		{"no emergency", pinBy("sofia"), before, u, false, nil},
	}
	for _, tt := range tests {
		got, err := emergencyIn(tt.repo, tt.u, tt.old)
		if got != tt.want || !errors.Is(err, tt.refused) || (tt.refused == nil) != (err == nil) {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.refused)
		}
	}
}

type noUnits struct{}

func (noUnits) Status() []reconcile.UnitStatus { return nil }

// TestIncomingSaysWhenGatesOpen: the environment matrix's incoming
// promotion carries each closed gate with when it opens where that is
// known (the portal writes "opens in 58 min"), not only the sentence.
func TestIncomingSaysWhenGatesOpen(t *testing.T) {
	t.Parallel()
	repo, problems := spec.Load(os.DirFS("../../examples/platform"))
	if problems.Errors() > 0 {
		t.Fatal(problems.Err())
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A Tuesday at 11:00 in Paris, inside prod's window: only the soak
	// (1h) holds api, which preprod has run for 2 minutes.
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now.Add(-2 * time.Minute))
	st.Clock = clk
	rel, err := st.BeginRelease(t.Context(), store.Release{App: "api", Env: "preprod", Revision: "2222222", Artifact: "sha256:b", Trigger: store.TriggerSync}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRelease(t.Context(), rel.ID, store.Succeeded, "", nil); err != nil {
		t.Fatal(err)
	}
	clk.Set(now)
	s := New(Config{Store: st, Units: noUnits{}, Clock: clk})
	from := &reconcile.UnitStatus{App: "api", Env: "preprod", Revision: "2222222", Artifact: "sha256:b"}
	in := s.Incoming(t.Context(), repo, repo.Environment("prod"), "api", from, "sha256:a", func(string) string { return "ann" })
	if in == nil || !in.Blocked {
		t.Fatalf("incoming %+v, want a promotion the soak holds", in)
	}
	var soak *gate.Block
	for i := range in.Blocks {
		if in.Blocks[i].Gate == "soak" {
			soak = &in.Blocks[i]
		}
	}
	if soak == nil || !soak.Opens.Equal(now.Add(58*time.Minute)) || !strings.Contains(in.Reason, soak.Reason) {
		t.Errorf("blocks %+v (reason %q), want the soak, opening in 58 min", in.Blocks, in.Reason)
	}
}
