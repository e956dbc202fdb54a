package web

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
)

// bigMatrix is 1,000 apps × 4 environments, decoded as the API gives them.
func bigMatrix() (api.Platform, []api.App) {
	plat := fakePlatform()
	plat.Environments = append(plat.Environments, api.Environment{Name: "sandbox", Zone: "sandbox", Sync: "auto"})
	apps := make([]api.App, 1000)
	for i := range apps {
		name := fmt.Sprintf("app-%04d", i)
		cells := fakeCells(name, "sofia")
		cells = append(cells, api.AppEnv{Env: "sandbox", Phase: "Failed", Reason: "replica 1 exited with status 2; retrying in 30s", Revision: cells[0].Revision, Artifact: cells[0].Artifact, Desired: 1, Actions: []string{"deploy"}})
		apps[i] = api.App{Name: name, Owner: "bookings", Envs: cells}
	}
	return plat, apps
}

// BenchmarkMatrix measures the server-side render of the home page's
// matrix, 1,000 apps × 4 environments, from API data already decoded.
func BenchmarkMatrix(b *testing.B) {
	p := &portal{log: slog.New(slog.NewTextHandler(io.Discard, nil)), pages: parsePages(time.Now)}
	plat, apps := bigMatrix()
	s := &session{me: fakeUsers["tok-sofia"]}
	var out strings.Builder
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		v := buildMatrix(plat, apps, "", "", "")
		if err := p.pages["home"].ExecuteTemplate(&out, "layout", view{Title: "Environments", Nav: "home", Session: s, Data: v}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Len())/1e6, "MB/page")
}

func TestMatrixAlignsCells(t *testing.T) {
	plat := fakePlatform()
	apps := []api.App{
		{Name: "a", Envs: []api.AppEnv{{Env: "prod", Phase: "Failed"}, {Env: "dev", Phase: "Synced"}}}, // out of order, no preprod
		{Name: "b", Envs: fakeCells("b", "marco")},
	}
	v := buildMatrix(plat, apps, "", "", "")
	var got []string
	for _, r := range v.Rows {
		for _, c := range r.Cells {
			got = append(got, r.Name+"/"+c.Env+"="+string(c.Phase))
		}
	}
	want := "a/dev=Synced a/preprod=Absent a/prod=Failed b/dev=Synced b/preprod=Progressing b/prod=Blocked"
	if strings.Join(got, " ") != want {
		t.Errorf("cells:\n%s\nwant:\n%s", strings.Join(got, " "), want)
	}
	v = buildMatrix(plat, apps, "", "apps-prod", "")
	if len(v.Envs) != 1 || v.Rows[0].Cells[0].Phase != "Failed" {
		t.Errorf("zone apps-prod: %+v", v.Rows[0].Cells)
	}
}

// TestBuildingCell: a cell whose image is being built says for how long,
// and the build log's last line, escaped; a failed build its log's last
// line.
func TestBuildingCell(t *testing.T) {
	now := time.Now()
	c := api.AppEnv{Env: "dev", Phase: "Building", ReasonCode: "Building", Reason: "building api at 2281b36; what runs is untouched",
		Since: now.Add(-72 * time.Second), LogTail: "$ go build\n<b>go: downloading x</b>\n\n"}
	if got := phaseLabel(c, now); got != "Building (1m12s)" {
		t.Errorf("phase label %q, want Building (1m12s)", got)
	}
	body := string(cellBody(c, now))
	if !strings.Contains(body, `<span class="phase">Building (1m1`) || !strings.Contains(body, `<code class="logtail">&lt;b&gt;go: downloading x&lt;/b&gt;</code>`) {
		t.Errorf("building cell:\n%s", body)
	}
	c = api.AppEnv{Env: "dev", Phase: "Failed", ReasonCode: "BuildFailed", Reason: "build of api failed", LogTail: "$ go build\n./main.go:3: undefined: x\n"}
	if body := string(cellBody(c, now)); !strings.Contains(body, `<span class="phase">Failed</span>`) || !strings.Contains(body, `<code class="logtail">./main.go:3: undefined: x</code>`) {
		t.Errorf("failed build cell:\n%s", body)
	}
}

// TestHeldCellSaysWhenTheGateOpens: a promotion held by a soak gate says
// when the gate opens in words, with the instant for the script that keeps
// the words current; not as a raw timestamp inside the sentence.
func TestHeldCellSaysWhenTheGateOpens(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 42, 0, 0, time.UTC)
	opens := now.Add(58*time.Minute + 42*time.Second)
	c := api.AppEnv{Env: "prod", Phase: "Synced", Revision: "9a8b7c6", Ready: 1, Desired: 1,
		Incoming: &api.Incoming{From: "preprod", Revision: "9a8b7c6", Approvals: []string{}, Needed: 1, Blocked: true,
			Reason: "approvals: 0 of 1 approvals; soak: preprod has run it healthy for 2m of 1h (opens 2026-11-24T13:40:42Z)",
			Blocks: []api.GateBlock{{Gate: "approvals", Reason: "0 of 1 approvals"}, {Gate: "soak", Reason: "preprod has run it healthy for 2m of 1h", Opens: opens}}}}
	body := string(cellBody(c, now))
	want := `; waits: approvals: 0 of 1 approvals; soak: preprod has run it healthy for 2m of 1h (opens <time datetime="2026-11-24T13:40:42Z" title="2026-11-24 13:40:42 UTC" data-rel="until">in 58 min</time>)</span>`
	if !strings.Contains(body, want) {
		t.Errorf("held cell:\n%s\nwant it to contain\n%s", body, want)
	}
	// An answer without the gates one by one keeps its sentence.
	c.Incoming.Blocks = nil
	if body := string(cellBody(c, now)); !strings.Contains(body, "(opens 2026-11-24T13:40:42Z)") {
		t.Errorf("held cell without blocks:\n%s", body)
	}
}
