package reconcile

import (
	"testing"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/store"
)

// TestEmergencyOf: a release is recorded as an emergency change when it
// brings the target of an emergency pin, and not when the unit changes
// later under the same pin.
func TestEmergencyOf(t *testing.T) {
	t.Parallel()
	pinned := &plan.Unit{App: "api", Env: "prod", Revision: "r2", Artifact: "sha256:b", Emergency: "INC-1"}
	noDigest := &plan.Unit{App: "api", Env: "prod", Revision: "r2", Emergency: "INC-1"} // built by socle
	tests := []struct {
		name string
		d    *plan.Unit
		prev *store.Release
		tgt  target
		want string
	}{
		{"a first release", pinned, nil, target{Revision: "r2", Artifact: "sha256:b"}, "INC-1"},
		{"brings a new artifact", pinned, &store.Release{Revision: "r1", Artifact: "sha256:a"}, target{Revision: "r2", Artifact: "sha256:b"}, "INC-1"},
		{"keeps the pin, new config", pinned, &store.Release{Revision: "r2", Artifact: "sha256:b", ConfigHash: "c1"}, target{Revision: "r2", Artifact: "sha256:b", Config: "c2"}, ""},
		{"a pin without digest, first built", noDigest, &store.Release{Revision: "r1", Artifact: "sha256:a"}, target{Revision: "r2", Artifact: "sha256:b"}, "INC-1"},
		{"a pin without digest, later", noDigest, &store.Release{Revision: "r2", Artifact: "sha256:b"}, target{Revision: "r2", Artifact: "sha256:b", Config: "c2"}, ""},
		{"no emergency", &plan.Unit{Revision: "r2", Artifact: "sha256:b"}, nil, target{Revision: "r2", Artifact: "sha256:b"}, ""},
	}
	for _, tt := range tests {
		if got := emergencyOf(tt.d, tt.prev, tt.tgt); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
