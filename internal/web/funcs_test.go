package web

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// relCase is one case of testdata/reltime.json, which the browser tests
// also run against relTime's twin in static/app.js.
type relCase struct {
	T     time.Time `json:"t"`
	Now   time.Time `json:"now"`
	Until bool      `json:"until"`
	Want  string    `json:"want"`
}

func TestRelTime(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "reltime.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []relCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if got := relTime(c.T, c.Now, c.Until); got != c.Want {
			t.Errorf("relTime(%s, now %s, until %v) = %q, want %q", c.T.Format(time.RFC3339), c.Now.Format(time.RFC3339), c.Until, got, c.Want)
		}
	}
}

func TestTimeTag(t *testing.T) {
	now := time.Date(2026, 12, 5, 7, 30, 0, 0, time.UTC)
	opens := time.Date(2026, 12, 5, 9, 28, 42, 0, time.FixedZone("CET", 3600))
	want := `<time datetime="2026-12-05T08:28:42Z" title="2026-12-05 08:28:42 UTC" data-rel="until">in 58 min</time>`
	if got := string(timeTag(opens, now, true)); got != want {
		t.Errorf("timeTag = %s\nwant %s", got, want)
	}
	if got := timeTag(time.Time{}, now, false); got != "—" {
		t.Errorf("a zero time is %q, want a dash", got)
	}
}

// TestNextButton: the primary button is the incoming release's next step,
// and none when nothing waits (approve was primary on prod whatever the
// state).
func TestNextButton(t *testing.T) {
	all := []string{"promote", "approve", "rollback", "logs"}
	waiting := &api.Incoming{From: "preprod", Revision: "9a8b7c6", Needed: 1, Approvals: []string{}}
	approved := &api.Incoming{From: "preprod", Revision: "9a8b7c6", Needed: 1, Approvals: []string{"sofia"}}
	held := &api.Preview{Blocked: true, Gates: api.GateResult{Blocks: []api.GateBlock{{Gate: "approvals", Reason: "0 of 1 approvals"}}}}
	soaking := &api.Preview{Blocked: true, Gates: api.GateResult{Blocks: []api.GateBlock{{Gate: "soak", Reason: "2m of 1h"}}}}
	open := &api.Preview{}
	for _, tc := range []struct {
		name      string
		actions   []string
		incoming  *api.Incoming
		promotion *api.Preview
		want      string
	}{
		{"nothing waits", all, nil, nil, ""},
		{"waits for an approval", all, waiting, held, "approve"},
		{"waits for an approval, no preview", all, waiting, nil, "approve"},
		{"waits for an approval the user may not give", []string{"logs"}, waiting, held, ""},
		{"approved, still soaking", all, approved, soaking, ""},
		{"approved, gates open", all, approved, open, "promote"},
		{"gates open, the user may not promote", []string{"approve", "logs"}, approved, open, ""},
	} {
		e := appEnvView{Cell: api.AppEnv{Env: "prod", Actions: tc.actions, Incoming: tc.incoming}, Promotion: tc.promotion}
		if got := e.Next(); got != tc.want {
			t.Errorf("%s: the primary button is %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestBlockedSaidOnce: the app page and the confirmation say what blocks a
// promotion once, with the gate's opening as a relative time, not the
// API's sentence ("api to prod is blocked: …") after a "blocked:" of their
// own, nor a raw timestamp.
func TestBlockedSaidOnce(t *testing.T) {
	srv, _ := newTestPortal(t)
	for _, path := range []string{"/apps/api", "/apps/api/envs/prod/confirm?action=approve"} {
		_, body := get(t, srv, "tok-sofia", path)
		if strings.Contains(body, "is blocked") || strings.Contains(body, "T13:40:42Z)") {
			t.Errorf("%s repeats the API's reason:\n%s", path, body)
		}
		if !strings.Contains(body, `(opens <time datetime="2026-11-24T13:40:42Z" title="2026-11-24 13:40:42 UTC" data-rel="until">in 58 min</time>)`) {
			t.Errorf("%s does not say the soak ends in 58 min", path)
		}
	}
}
