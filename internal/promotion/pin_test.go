package promotion

import (
	"strings"
	"testing"
	"time"
)

// TestSetPin edits a releases file: comments and other pins stay; a file
// over the limits of one YAML file (here the head's, which need not have
// validated) is refused with its name before yaml.v3 builds its tree.
func TestSetPin(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	target := Target{App: "web", Env: "prod", From: "dev", Revision: "0123abc", Artifact: "sha256:ab"}
	old := "# pinned by hand\napiVersion: socle.dev/v1\nkind: Releases\nenvironment: prod\napps:\n  api: {revision: 4567def} # keep\n"
	b, err := setPin([]byte(old), target, "ann", at)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# pinned by hand", "revision: 4567def} # keep", `revision: "0123abc"`, `promotedBy: "ann"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("want %q in\n%s", want, b)
		}
	}
	huge := old + "  big: [" + strings.Repeat("1,", 300_000) + "1]\n"
	if _, err := setPin([]byte(huge), target, "ann", at); err == nil || !strings.Contains(err.Error(), "releases/prod.yaml: too much YAML in one file") {
		t.Errorf("a file over the limits: %v", err)
	}
}
