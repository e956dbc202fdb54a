package pipeline

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/spec"
)

// fileKeys is a Decrypter whose "files" are name=value lines, and which
// cannot decrypt a file that says so: a stand-in for the keyring, whose
// real decryption sopsfile's and server's tests cover.
type fileKeys struct{}

func (fileKeys) Decrypt(b []byte) (map[string]string, error) {
	out := map[string]string{}
	for l := range strings.Lines(string(b)) {
		if l == "undecryptable\n" {
			return nil, errors.New("encrypted for age1other")
		}
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		out[k] = v
	}
	return out, nil
}

// TestWithSecrets: the zone's file, then the environment's, whose values
// win; only the names listed under secrets are given; the repository's
// maps are not changed; a file not decrypted blocks its unit only.
func TestWithSecrets(t *testing.T) {
	repo := &spec.Repo{Platform: spec.Platform{Environments: []spec.Environment{{Name: "dev", Zone: "nonprod"}, {Name: "prod", Zone: "live"}}}}
	shared := map[string]string{"MODE": "fast"}
	unit := func(env string) plan.Unit {
		return plan.Unit{App: "web", Env: env, Secrets: []string{"KEY", "PIN"}, Containers: map[string]types.Container{"web": {Variables: shared}}}
	}
	units := []plan.Unit{unit("dev"), unit("prod")}
	fsys := fstest.MapFS{
		"apps/web/secrets.nonprod.yaml": {Data: []byte("KEY=zone-key\nPIN=111\nOTHER=x\n")},
		"apps/web/secrets.dev.yaml":     {Data: []byte("PIN=222\n")},
		"apps/web/secrets.live.yaml":    {Data: []byte("undecryptable\n")},
	}
	blocked := withSecrets(fsys, repo, units, fileKeys{})
	got := units[0].Containers["web"].Variables
	if got["KEY"] != "zone-key" || got["PIN"] != "222" || got["MODE"] != "fast" || got["OTHER"] != "" {
		t.Errorf("dev's variables: %v", got)
	}
	if len(shared) != 1 {
		t.Errorf("the repository's map changed: %v", shared)
	}
	b, ok := blocked[plan.Key{App: "web", Env: "prod"}]
	if len(blocked) != 1 || !ok || b.Reason != reconcile.ReasonSecretUndecryptable || !strings.Contains(b.Message, "apps/web/secrets.live.yaml: encrypted for age1other") {
		t.Errorf("blocked: %+v", blocked)
	}
	if _, ok := units[1].Containers["web"].Variables["KEY"]; ok {
		t.Error("prod got a value")
	}
	if blocked := withSecrets(fsys, repo, []plan.Unit{unit("dev")}, nil); !strings.Contains(blocked[plan.Key{App: "web", Env: "dev"}].Message, "socle holds no age identity") {
		t.Errorf("without a keyring: %+v", blocked)
	}
}
