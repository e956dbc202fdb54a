package web

import (
	"regexp"
	"strings"
	"testing"
)

// TestAppShowsSignals: the app page draws api's signals in dev as three
// SVG charts with the deploy, promotion and rollback markers, and says
// that nothing was counted in the environments without traffic.
func TestAppShowsSignals(t *testing.T) {
	srv, _ := newTestPortal(t)
	_, body := get(t, srv, "tok-marco", "/apps/api")
	i, j := strings.Index(body, `id="env-dev"`), strings.Index(body, `id="env-preprod"`)
	if i < 0 || j < i {
		t.Fatalf("no dev then preprod section:\n%s", body)
	}
	dev, preprod := body[i:j], body[j:]
	if !strings.Contains(dev, "runs r12 · now 10.0 req/s, 1.0% errors, p95 9 ms") {
		t.Error("dev's signals summary is missing")
	}
	for _, title := range []string{"Requests per second", "Errors (5xx and unanswered)", "Latency"} {
		if !strings.Contains(dev, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 560 220" width="560" height="220" role="img" aria-label="`+title+`">`) {
			t.Errorf("dev has no chart %q", title)
		}
	}
	for kind, n := range map[string]int{"deploy": 3, "promotion": 3, "rollback": 3} {
		if got := strings.Count(dev, `<g class="marker marker-`+kind+`">`); got != n {
			t.Errorf("%d %s markers, want %d (one per chart)", got, kind, n)
		}
	}
	if !strings.Contains(dev, "<title>rollback r13 at 09:10:00: error rate 20% above 1%</title>") {
		t.Error("the rollback marker does not say why")
	}
	// Latency: p50, p95 and p99 lines; the first 5 minutes had no request,
	// so they are gaps (55 dots per line), where requests/s draws 60.
	latency := dev[strings.Index(dev, `aria-label="Latency"`):]
	latency = latency[:strings.Index(latency, "</svg>")]
	if n := strings.Count(latency, "<polyline"); n != 3 {
		t.Errorf("%d latency lines, want 3", n)
	}
	if n := len(regexp.MustCompile(`<circle class="s1"`).FindAllString(latency, -1)); n != 55 {
		t.Errorf("%d p95 dots, want 55", n)
	}
	if !strings.Contains(latency, "<title>09:06 p95: 120 ms</title>") {
		t.Error("the bad release's p95 (120 ms at 09:06) is not drawn")
	}
	if strings.Contains(preprod, `class="chart"`) || !strings.Contains(preprod, "No request reached it through socle's proxy in the last hour.") {
		t.Error("preprod, without traffic, should say so instead of drawing charts")
	}
}
