package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/sandbox"
)

// TestStatusSaysTheSandbox: the API's status says how apps run here, and
// the insecure mode is never silent.
func TestStatusSaysTheSandbox(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		insecure bool
		want     string
	}{{false, "enforced"}, {true, "insecure"}} {
		r := startSandboxed(t, Config{Repo: gitRepo(t), Data: t.TempDir(), InsecureNoSandbox: tc.insecure})
		resp := r.get(t, "/api/v1/status")
		var st api.Status
		err := json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if st.Sandbox == nil || st.Sandbox.Mode != tc.want || st.Sandbox.Message == "" || st.Sandbox.Limits == "" {
			t.Errorf("insecure %v: sandbox %+v, want %s with a message and the limits", tc.insecure, st.Sandbox, tc.want)
		}
		r.stop()
	}
}

// TestChooseSandbox: where no sandbox can be made, socle's demo still
// runs (insecure, and said so), a repository of one's own is refused;
// --insecure-no-sandbox switches it off for both; a sandbox that works
// is kept.
func TestChooseSandbox(t *testing.T) {
	refused := sandbox.With("/nonexistent/bwrap")
	for _, tc := range []struct {
		name     string
		detected *sandbox.Sandbox
		cfg      Config
		want     sandbox.Mode
		says     string
	}{
		{"own repository, no bwrap", refused, Config{}, sandbox.Refused, "bwrap is not installed"},
		{"demo, no bwrap", refused, Config{Demo: true}, sandbox.Insecure, "the demo's apps run without a sandbox"},
		{"insecure asked", refused, Config{InsecureNoSandbox: true}, sandbox.Insecure, "--insecure-no-sandbox"},
		{"demo, sandbox works", sandbox.Detect(), Config{Demo: true}, sandbox.Detect().Mode(), ""},
	} {
		got := chooseSandbox(tc.detected, tc.cfg)
		if got.Mode() != tc.want || !strings.Contains(got.Message(), tc.says) {
			t.Errorf("%s: %s %q, want %s saying %q", tc.name, got.Mode(), got.Message(), tc.want, tc.says)
		}
	}
}
