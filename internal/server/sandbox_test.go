package server

import (
	"encoding/json"
	"testing"

	"github.com/socle-dev/socle/internal/api"
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
