package cli

import (
	"bufio"
	"maps"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/api"
)

// TestAsk is the prompt of socle new at a terminal: what --set gave is
// not asked, a default is taken with Enter, a required parameter is asked
// again, an owner picker of one team takes it.
func TestAsk(t *testing.T) {
	tmpl := api.Template{Name: "worker", Parameters: []api.TemplateParameter{
		{Name: "owner", Type: "string", Required: true, Source: "teams", Enum: []string{"bookings"}},
		{Name: "queue", Type: "string", Required: true, Description: "The queue it polls"},
		{Name: "interval", Type: "string", Default: "5s", Enum: []string{"1s", "5s"}},
		{Name: "description", Type: "string", Default: "A worker"},
	}}
	params := map[string]any{"description": "mails out"}
	var out strings.Builder
	if err := ask(bufio.NewReader(strings.NewReader("\n\nmails\n\n")), &out, tmpl, params); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"owner": "bookings", "queue": "mails", "description": "mails out"}
	if !maps.Equal(params, want) {
		t.Errorf("params %v, want %v", params, want)
	}
	for _, s := range []string{"owner [bookings] default bookings: ", "queue (The queue it polls): queue is required.\nqueue (The queue it polls): ", "interval [1s, 5s] default 5s: "} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the prompts lack %q:\n%s", s, out.String())
		}
	}
	if strings.Contains(out.String(), "description") {
		t.Errorf("asked for a parameter --set gave:\n%s", out.String())
	}
	// Standard input ends before a required answer: an error naming it.
	if err := ask(bufio.NewReader(strings.NewReader("")), &out, api.Template{Parameters: tmpl.Parameters[1:2]}, map[string]any{}); err == nil || !strings.Contains(err.Error(), "queue") {
		t.Errorf("no answer: %v", err)
	}
}
