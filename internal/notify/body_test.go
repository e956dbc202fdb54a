package notify

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
)

var at = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// bodyEvents are the events whose bodies are golden files.
var bodyEvents = map[string]Event{
	"deploy": {
		Kind: DeploySucceeded, App: "web", Env: "prod",
		Revision: "9f2c4e1ab37d5c60e8f14b2a9c7d3e5f60718293", Release: 42, Actor: "alice",
		Message: "Release 42 replaced release 41 with no downtime.",
		URL:     "https://socle.example.com/apps/web/envs/prod",
		Time:    at,
		Fields:  map[string]string{"digest": "sha256:3b7e…", "strategy": "canary"},
	},
	// Mrkdwn's reserved characters and a title set by the caller; no link.
	"budget": {
		Kind: BudgetAlert, Title: "Budget team-payments at 80% <forecast 104%>",
		Message: "Spend is 8,012.40 EUR of 10,000.00 EUR & rising.",
		Time:    at,
		Fields:  map[string]string{"budget": "team-payments", "threshold": "80%", "forecast": "10,412.00 EUR"},
	},
	// Only what is required: the title is derived from the kind.
	"minimal": {Kind: Rollback, App: "api", Env: "dev", Time: at},
}

func TestBodies(t *testing.T) {
	for name, ev := range bodyEvents {
		for _, typ := range []spec.NotificationType{TypeWebhook, TypeSlack, TypeTeams} {
			t.Run(name+"/"+string(typ), func(t *testing.T) {
				got, err := Render(typ, ev)
				if err != nil {
					t.Fatal(err)
				}
				var indented bytes.Buffer
				if err := json.Indent(&indented, got, "", "  "); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, got)
				}
				indented.WriteByte('\n')
				golden.Check(t, filepath.Join("testdata", name+"."+string(typ)+".json"), indented.Bytes())
			})
		}
	}
}

func TestGenericBodyIsTheEvent(t *testing.T) {
	ev := bodyEvents["deploy"]
	ev.Title = "web is live in prod"
	b, err := Render(TypeWebhook, ev)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Kind != ev.Kind || back.Title != ev.Title || !back.Time.Equal(ev.Time) || back.Fields["digest"] != ev.Fields["digest"] || back.Release != 42 {
		t.Errorf("round trip: got %+v, want %+v", back, ev)
	}
}

func TestSlackLimits(t *testing.T) {
	fields := map[string]string{}
	for i := range 60 {
		fields[string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
	}
	ev := Event{Kind: Drift, Title: strings.Repeat("é", 400), Message: strings.Repeat("m", 5000), Time: at, Fields: fields}
	b, err := Render(TypeSlack, ev)
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text   string
		Blocks []struct {
			Type   string
			Text   *struct{ Text string }
			Fields []struct{ Text string }
		}
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(msg.Blocks[0].Text.Text)); n != slackHeaderMax {
		t.Errorf("header has %d characters, want %d", n, slackHeaderMax)
	}
	if n := len(msg.Blocks[1].Text.Text); n > slackTextMax+len("…") {
		t.Errorf("section has %d bytes", n)
	}
	fieldBlocks := 0
	for _, bl := range msg.Blocks {
		if len(bl.Fields) > slackFieldsPerBlock {
			t.Errorf("a section has %d fields", len(bl.Fields))
		}
		if len(bl.Fields) > 0 {
			fieldBlocks++
		}
	}
	if fieldBlocks != slackFieldBlocksMax {
		t.Errorf("%d field sections, want %d", fieldBlocks, slackFieldBlocksMax)
	}
}

func TestRenderUnknownType(t *testing.T) {
	if _, err := Render("email", bodyEvents["minimal"]); err == nil {
		t.Error("no error for an unknown type")
	}
}
