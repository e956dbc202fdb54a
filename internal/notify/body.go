package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/spec"
)

// The target types, as socle.yaml spells them.
const (
	TypeWebhook spec.NotificationType = "webhook"
	TypeSlack   spec.NotificationType = "slack"
	TypeTeams   spec.NotificationType = "teams"
)

// Render returns the body that a target of type typ receives for ev:
//
//   - webhook: ev as JSON (see [Event]).
//   - slack: a Slack incoming-webhook message, {"text": title, "blocks": […]}
//     with a header block (the title), a section (the message), sections of
//     up to ten fields (app, environment, revision, release, actor, then
//     Fields by key), an actions block with an "Open in socle" link button
//     (when ev.URL is set) and a context block (kind and time, shown in the
//     reader's time zone). Texts are cut to Slack's limits.
//   - teams: an Adaptive Card 1.4 in the message envelope that Teams
//     Workflows ("When a Teams webhook request is received") and bots accept:
//     {"type": "message", "attachments": [{"contentType":
//     "application/vnd.microsoft.card.adaptive", "content": {…}}]}. The card
//     holds the title (coloured by kind), the message, a FactSet of the same
//     fields, a subtle line with kind and time, and an Action.OpenUrl. The
//     retired Office 365 connectors' MessageCard is not produced.
//
// An empty title is replaced by one derived from the kind, app and
// environment; the time is sent as given (Notify fills it).
func Render(typ spec.NotificationType, ev Event) ([]byte, error) {
	if ev.Title == "" {
		ev.Title = defaultTitle(ev)
	}
	var body any
	switch typ {
	case TypeWebhook:
		body = ev
	case TypeSlack:
		body = slackMessage(ev)
	case TypeTeams:
		body = teamsMessage(ev)
	default:
		return nil, fmt.Errorf("unknown notification type %q", typ)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // <, > and & are text, in every format
	if err := enc.Encode(body); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// fact is one labelled value of an event, shown as a field (Slack) or a fact
// (Teams).
type fact struct{ label, value string }

func facts(ev Event) []fact {
	var fs []fact
	add := func(label, value string) {
		if value != "" {
			fs = append(fs, fact{label, value})
		}
	}
	add("App", ev.App)
	add("Environment", ev.Env)
	add("Zone", ev.Zone)
	add("Revision", shortRevision(ev.Revision))
	if ev.Release != 0 {
		add("Release", strconv.FormatInt(ev.Release, 10))
	}
	add("Actor", ev.Actor)
	for _, k := range slices.Sorted(maps.Keys(ev.Fields)) {
		add(k, ev.Fields[k])
	}
	return fs
}

// shortRevision abbreviates a full commit hash to 12 characters, as git's
// short hashes; people read it, the generic body keeps it whole.
func shortRevision(rev string) string {
	if len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == "" {
		return rev[:12]
	}
	return rev
}

// cut shortens s to at most n runes, marking the cut with an ellipsis.
func cut(s string, n int) string {
	if len(s) <= n { // bytes ≥ runes
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Slack's limits on Block Kit messages.
const (
	slackHeaderMax       = 150
	slackTextMax         = 3000
	slackFieldMax        = 2000
	slackFieldsPerBlock  = 10
	slackFieldBlocksMax  = 4 // with the other blocks, well under 50
	slackButtonURLMax    = 3000
	slackNotificationMax = 150 // the top-level text, shown in notifications
)

type slackText struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

type slackButton struct {
	Type string    `json:"type"`
	Text slackText `json:"text"`
	URL  string    `json:"url"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []any       `json:"elements,omitempty"`
}

func slackMessage(ev Event) any {
	blocks := []slackBlock{{Type: "header", Text: &slackText{Type: "plain_text", Text: cut(ev.Title, slackHeaderMax), Emoji: true}}}
	if ev.Message != "" {
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{Type: "plain_text", Text: cut(ev.Message, slackTextMax)}})
	}
	fs := facts(ev)
	for i := 0; i < len(fs) && i < slackFieldsPerBlock*slackFieldBlocksMax; i += slackFieldsPerBlock {
		var fields []slackText
		for _, f := range fs[i:min(i+slackFieldsPerBlock, len(fs))] {
			fields = append(fields, slackText{Type: "mrkdwn", Text: cut("*"+slackEscape(f.label)+"*\n"+slackEscape(f.value), slackFieldMax)})
		}
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	if ev.URL != "" && len(ev.URL) <= slackButtonURLMax {
		button := slackButton{Type: "button", Text: slackText{Type: "plain_text", Text: "Open in socle"}, URL: ev.URL}
		blocks = append(blocks, slackBlock{Type: "actions", Elements: []any{button}})
	}
	// <!date^…> shows the time in the reader's time zone, with a fallback.
	when := fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", ev.Time.Unix(), ev.Time.UTC().Format(time.RFC3339))
	blocks = append(blocks, slackBlock{Type: "context", Elements: []any{slackText{Type: "mrkdwn", Text: "socle · " + string(ev.Kind) + " · " + when}}})
	return struct {
		Text   string       `json:"text"`
		Blocks []slackBlock `json:"blocks"`
	}{slackEscape(cut(ev.Title, slackNotificationMax)), blocks}
}

// slackEscape escapes the three characters that Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

type teamsTextBlock struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Wrap     bool   `json:"wrap"`
	Size     string `json:"size,omitempty"`
	Weight   string `json:"weight,omitempty"`
	Color    string `json:"color,omitempty"`
	IsSubtle bool   `json:"isSubtle,omitempty"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type teamsFactSet struct {
	Type  string      `json:"type"`
	Facts []teamsFact `json:"facts"`
}

type teamsAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

type teamsCard struct {
	Schema  string            `json:"$schema"`
	Type    string            `json:"type"`
	Version string            `json:"version"`
	MSTeams map[string]string `json:"msteams"`
	Body    []any             `json:"body"`
	Actions []teamsAction     `json:"actions,omitempty"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"` // null, as Teams' own examples send it
	Content     teamsCard `json:"content"`
}

// teamsColor colours a card's title by what the event asks of its readers.
var teamsColor = map[Kind]string{
	DeployStarted:    "Accent",
	DeploySucceeded:  "Good",
	DeployFailed:     "Attention",
	Rollback:         "Warning",
	ApprovalNeeded:   "Accent",
	PromotionBlocked: "Warning",
	EmergencyChange:  "Attention",
	Drift:            "Warning",
	BudgetAlert:      "Attention",
}

func teamsMessage(ev Event) any {
	body := []any{teamsTextBlock{Type: "TextBlock", Text: ev.Title, Wrap: true, Size: "Large", Weight: "Bolder", Color: teamsColor[ev.Kind]}}
	if ev.Message != "" {
		body = append(body, teamsTextBlock{Type: "TextBlock", Text: ev.Message, Wrap: true})
	}
	if fs := facts(ev); len(fs) > 0 {
		set := teamsFactSet{Type: "FactSet"}
		for _, f := range fs {
			set.Facts = append(set.Facts, teamsFact{f.label, f.value})
		}
		body = append(body, set)
	}
	// {{DATE()}} and {{TIME()}} show the time in the reader's time zone; they
	// want seconds and a Z.
	at := ev.Time.UTC().Format(time.RFC3339)
	body = append(body, teamsTextBlock{Type: "TextBlock", Text: fmt.Sprintf("socle · %s · {{DATE(%s, SHORT)}} {{TIME(%s)}}", ev.Kind, at, at), Wrap: true, Size: "Small", IsSubtle: true})
	card := teamsCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		MSTeams: map[string]string{"width": "Full"},
		Body:    body,
	}
	if ev.URL != "" {
		card.Actions = []teamsAction{{Type: "Action.OpenUrl", Title: "Open in socle", URL: ev.URL}}
	}
	return struct {
		Type        string            `json:"type"`
		Attachments []teamsAttachment `json:"attachments"`
	}{"message", []teamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}
}
