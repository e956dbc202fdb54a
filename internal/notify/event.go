package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind says what happened. The kinds are the values that a notification
// target's events filter in socle.yaml lists.
type Kind string

// The kinds of event.
const (
	DeployStarted    Kind = "deploy.started"
	DeploySucceeded  Kind = "deploy.succeeded"
	DeployFailed     Kind = "deploy.failed"
	Rollback         Kind = "rollback"
	ApprovalNeeded   Kind = "approval.needed"
	PromotionBlocked Kind = "promotion.blocked"
	// EmergencyChange: someone declared an emergency change, which passed
	// the soak, the windows or the freezes; it is to be reviewed.
	EmergencyChange Kind = "emergency.change"
	Drift           Kind = "drift"
	BudgetAlert     Kind = "budget.alert"
)

// Kinds lists every kind, in the order of the lifecycle of a release.
var Kinds = []Kind{DeployStarted, DeploySucceeded, DeployFailed, Rollback, ApprovalNeeded, PromotionBlocked, EmergencyChange, Drift, BudgetAlert}

// Event is something people want to hear about. Marshalled to JSON, it is the
// body that generic webhook targets receive (field names in the tags are
// stable; fields may be added, never renamed or removed; empty optional fields
// are left out):
//
//	{
//	  "kind": "deploy.succeeded",
//	  "app": "web",
//	  "env": "prod",
//	  "revision": "9f2c4e1a…",
//	  "release": 42,
//	  "actor": "alice",
//	  "title": "web is live in prod",
//	  "message": "Release 42 replaced release 41 with no downtime.",
//	  "url": "https://socle.example.com/apps/web/envs/prod",
//	  "time": "2026-03-14T09:26:53Z",
//	  "fields": {"digest": "sha256:…"}
//	}
type Event struct {
	// Kind says what happened; required.
	Kind Kind `json:"kind"`
	// App and Env say what the event is about; Notify routes by Env. Both
	// may be empty for a budget alert.
	App string `json:"app,omitempty"`
	Env string `json:"env,omitempty"`
	// Zone, for an event of a zone's own (a stack instance of the zone,
	// Env empty), routes it instead: to the zone's notify list, or without
	// one to those of its environments.
	Zone string `json:"zone,omitempty"`
	// Revision is the platform repository's commit involved.
	Revision string `json:"revision,omitempty"`
	// Release is the release's number, 0 if none.
	Release int64 `json:"release,omitempty"`
	// Actor is who did it: a user, or "socle" for the reconciler.
	Actor string `json:"actor,omitempty"`
	// Title is one line for people; empty means one derived from Kind, App
	// and Env.
	Title string `json:"title"`
	// Message says more, for people.
	Message string `json:"message,omitempty"`
	// URL links to the event's subject in the portal or the API.
	URL string `json:"url,omitempty"`
	// Time is when it happened; zero means when Notify was called. Sent in
	// UTC.
	Time time.Time `json:"time"`
	// Fields are further facts shown as a list (budget, spend, threshold,
	// digest, blocking gate…), sorted by key.
	Fields map[string]string `json:"fields,omitempty"`
}

// normalize checks ev's kind and fills its time.
func (ev *Event) normalize(now time.Time) error {
	if !slices.Contains(Kinds, ev.Kind) {
		return fmt.Errorf("notify: unknown event kind %q", ev.Kind)
	}
	if ev.Time.IsZero() {
		ev.Time = now
	}
	ev.Time = ev.Time.UTC()
	return nil
}

// titles are the default titles by kind.
var titles = map[Kind]string{
	DeployStarted:    "Deploying {app} to {env}",
	DeploySucceeded:  "{app} is live in {env}",
	DeployFailed:     "Deploy of {app} to {env} failed",
	Rollback:         "{app} rolled back in {env}",
	ApprovalNeeded:   "{app} needs an approval to reach {env}",
	PromotionBlocked: "Promotion of {app} to {env} is blocked",
	EmergencyChange:  "Emergency change of {app} in {env}",
	Drift:            "Drift in {app} ({env})",
	BudgetAlert:      "Budget alert",
}

func defaultTitle(ev Event) string {
	title, ok := titles[ev.Kind]
	if !ok {
		title = string(ev.Kind)
	}
	return strings.NewReplacer("{app}", orDash(ev.App), "{env}", orDash(ev.Env)).Replace(title)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
