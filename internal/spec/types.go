package spec

import (
	"encoding/json"
	"maps"

	"github.com/invopop/jsonschema"
	"github.com/score-spec/score-go/types"
)

// APIVersion is the apiVersion every socle file carries.
const APIVersion = "socle.dev/v1"

// Platform is socle.yaml at the root of the platform repository: the landing
// zones, the environments in promotion order, the runtimes and the defaults
// that every app inherits.
type Platform struct {
	// APIVersion must be socle.dev/v1.
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	// Kind must be Platform.
	Kind string `json:"kind" jsonschema:"required,enum=Platform"`
	// Metadata names the platform.
	Metadata Metadata `json:"metadata" jsonschema:"required"`
	// Zones are the landing zones: platform zones (connectivity, identity,
	// management, devops), application zones and sandbox zones.
	Zones []Zone `json:"zones,omitempty"`
	// Environments in promotion order: each one's promotion.from names an
	// earlier one.
	Environments []Environment `json:"environments" jsonschema:"required,minItems=1"`
	// Freezes are periods in which no promotion reaches the listed environments
	// (release trains, year-end trading freezes).
	Freezes []Freeze `json:"freezes,omitempty"`
	// Notifications are the targets that environments and budgets send events to.
	Notifications []Notification `json:"notifications,omitempty"`
	// Defaults apply to every app unless its socle.yaml says otherwise.
	Defaults AppDefaults `json:"defaults,omitempty"`
	// Costs configures the import and allocation of cloud billing data.
	Costs *Costs `json:"costs,omitempty"`
	// SecretStores are the secret managers that secrets' values may refer
	// to (ref+vault://apps/web#password), for every environment.
	SecretStores *SecretStores `json:"secretStores,omitempty"`
}

// Metadata names a document.
type Metadata struct {
	// Name is a DNS-label-like name: lowercase letters, digits and dashes.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,maxLength=63"`
	// Description is free text shown in the portal.
	Description string `json:"description,omitempty"`
}

// ZoneKind says what a landing zone is for.
type ZoneKind string

// The kinds of landing zone.
const (
	ZonePlatform    ZoneKind = "platform"
	ZoneApplication ZoneKind = "application"
	ZoneSandbox     ZoneKind = "sandbox"
)

// Zone is a landing zone: a boundary of networks, identities and policies that
// environments belong to.
type Zone struct {
	// Name of the zone, referred to by environments.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,maxLength=63"`
	// Kind is platform (shared services: connectivity, identity, management,
	// devops), application or sandbox.
	Kind ZoneKind `json:"kind" jsonschema:"required,enum=platform,enum=application,enum=sandbox"`
	// Description is free text shown in the portal.
	Description string `json:"description,omitempty"`
	// Provider is the cloud provider or site hosting the zone (aws, azure, gcp, on-prem, local).
	Provider string `json:"provider,omitempty"`
	// Account is the cloud account, subscription or project of the zone; cost
	// allocation uses it as a fallback.
	Account string `json:"account,omitempty"`
	// Notify names notification targets for the events of the zone's own
	// stack instances (an approval needed); without it, those of the
	// zone's environments are notified.
	Notify []string `json:"notify,omitempty"`
}

// SyncPolicy says whether an environment follows Git by itself.
type SyncPolicy string

// The sync policies.
const (
	// SyncAuto follows the newest valid revision.
	SyncAuto SyncPolicy = "auto"
	// SyncManual runs what releases/<env>.yaml pins.
	SyncManual SyncPolicy = "manual"
)

// Environment is one stage of the promotion line (dev, preprod, prod) or a
// place of its own (sandbox).
type Environment struct {
	// Name of the environment; apps are reached at <app>.<env>.localhost on the local runtime.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,maxLength=63"`
	// Description is free text shown in the portal.
	Description string `json:"description,omitempty"`
	// Zone is the landing zone the environment belongs to.
	Zone string `json:"zone,omitempty"`
	// Runtime is where the environment's apps run.
	Runtime Runtime `json:"runtime" jsonschema:"required"`
	// Sync is auto (follow the newest valid revision) or manual (run what
	// releases/<env>.yaml pins; changed by promotions).
	Sync SyncPolicy `json:"sync" jsonschema:"required,enum=auto,enum=manual"`
	// Prune stops apps removed from Git (default true); when false they show as Orphaned.
	Prune *bool `json:"prune,omitempty"`
	// SelfHeal corrects drift (default true); when false drift is only reported.
	SelfHeal *bool `json:"selfHeal,omitempty"`
	// Promotion holds the gates a release passes to enter this environment.
	Promotion *Promotion `json:"promotion,omitempty"`
	// DeployRoles are the roles allowed to deploy here (default: developer and above
	// outside production zones, approver and admin otherwise).
	DeployRoles []Role `json:"deployRoles,omitempty"`
	// Notify names notification targets for this environment's events.
	Notify []string `json:"notify,omitempty"`
	// Variables are values of the environment that workloads read through
	// a Score resource of type environment (${resources.env.LOG_LEVEL}):
	// plain settings, in Git, never secrets (those go in the apps'
	// secrets.<env>.yaml). socle's own process environment is never read.
	Variables map[string]string `json:"variables,omitempty"`
	// Emergency says who may declare an emergency change here (a promotion,
	// rollback or deploy that passes the soak, the windows and the freezes)
	// and what it still needs. Without it, admins may, with the approvals
	// promotion.approvals asks for.
	Emergency *Emergency `json:"emergency,omitempty"`
	// SecretStores replace the platform's secret stores here, scheme by
	// scheme: prod reads its references from its own Vault.
	SecretStores *SecretStores `json:"secretStores,omitempty"`
}

// Emergency is an environment's rule for emergency changes. An emergency
// change skips what only costs time (the soak, the allowed windows, the
// freezes), never what judges the change: the artifact must run healthy in
// promotion.from, the policies apply, and the approvals below are needed.
// It is recorded as an exception (audit, notification, portal, DORA) for
// review afterwards.
type Emergency struct {
	// Roles that may declare an emergency change here, besides admin (who
	// always may); each must also be allowed to deploy here (deployRoles).
	Roles []Role `json:"roles,omitempty" jsonschema:"enum=developer,enum=approver,enum=admin"`
	// Approvals an emergency change needs, by approvers other than its
	// author (default: promotion.approvals). 0 lets one person restore
	// service at night, and the change is reviewed afterwards.
	Approvals *int `json:"approvals,omitempty" jsonschema:"minimum=0,maximum=10"`
}

// RuntimeType names a runtime type: the value of an environment's
// runtime.type.
type RuntimeType string

// RuntimeLocal is the runtime that needs nothing installed: supervised
// processes on this machine, reached through socle's proxy at
// <app>.<env>.localhost. Package runtime/local implements it; spec names it
// because the platform's own defaults and hosts are about it.
const RuntimeLocal RuntimeType = "local"

// Runtime says where an environment's workloads run: a runtime type, and
// beside it the fields that type defines ({type: kubernetes, context: prod,
// namespace: shop}). spec knows no runtime type: each one registered with
// socle gives the JSON Schema of its fields, decodes them and checks them
// (see LoadWith and Runtimes), and `socle schema platform` shows them.
type Runtime struct {
	// Type is a runtime type socle is built with: local (supervised
	// processes on this machine) or kubernetes (a context and namespace of
	// a cluster); `socle schema platform` lists them with their fields.
	Type RuntimeType `json:"type" jsonschema:"required,minLength=1"`
	// Fields are the block's other fields as written, for its runtime type
	// to decode.
	Fields map[string]any `json:"-"`
	// Config is Fields as the runtime type decoded them (a value of the
	// type's own, e.g. *kubernetes.Config): set by LoadWith when they are
	// valid, nil otherwise and from Load.
	Config any `json:"-"`
}

// UnmarshalJSON reads type and keeps the other fields for the runtime type.
func (r *Runtime) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	t, _ := m["type"].(string) // another type of value is the schema's to report
	delete(m, "type")
	*r = Runtime{Type: RuntimeType(t)}
	if len(m) > 0 {
		r.Fields = m
	}
	return nil
}

// MarshalJSON writes the block as it was read: type and the other fields.
func (r Runtime) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(r.Fields)+1)
	maps.Copy(m, r.Fields)
	m["type"] = r.Type
	return json.Marshal(m)
}

// JSONSchemaExtend opens the block to the fields of the runtime types, which
// the registered types check (the published schema adds them: SchemaWith).
func (Runtime) JSONSchemaExtend(s *jsonschema.Schema) {
	s.AdditionalProperties = jsonschema.TrueSchema
}

// Promotion holds the gates that guard an environment.
type Promotion struct {
	// From is the environment whose release is promoted here.
	From string `json:"from" jsonschema:"required"`
	// Soak is how long the release must have been healthy in From, e.g. 30m, 24h, 2d.
	Soak Duration `json:"soak,omitempty"`
	// Approvals is how many distinct approvers (not the author) must approve.
	Approvals int `json:"approvals,omitempty" jsonschema:"minimum=0,maximum=10"`
	// Windows are the times promotions may happen, e.g. "Tue,Thu 10:00-16:00
	// Europe/Paris"; any one suffices; none means always.
	Windows []Window `json:"windows,omitempty"`
}

// Freeze is a period in which promotions to some environments are blocked.
type Freeze struct {
	// Name of the freeze, shown with the reason.
	Name string `json:"name" jsonschema:"required"`
	// Environments the freeze applies to.
	Environments []string `json:"environments" jsonschema:"required,minItems=1"`
	// Start of the freeze, RFC 3339 (2026-12-18T18:00:00+01:00) or a date (2026-12-18, midnight UTC).
	Start Time `json:"start" jsonschema:"required"`
	// End of the freeze, exclusive, same format as start.
	End Time `json:"end" jsonschema:"required"`
	// Reason is shown to whoever is blocked.
	Reason string `json:"reason" jsonschema:"required,minLength=1"`
}

// NotificationType is the body format of a webhook.
type NotificationType string

// Notification is an outgoing webhook.
type Notification struct {
	// Name of the target, referred to by environments and budgets.
	Name string `json:"name" jsonschema:"required"`
	// Type is webhook (generic JSON), slack or teams.
	Type NotificationType `json:"type" jsonschema:"required,enum=webhook,enum=slack,enum=teams"`
	// URL to POST to. Use urlFromEnv instead to keep a secret URL out of Git.
	URL string `json:"url,omitempty" jsonschema:"format=uri"`
	// URLFromEnv names the environment variable of the socle server holding the URL.
	URLFromEnv string `json:"urlFromEnv,omitempty"`
	// Events filters what is sent (deploy.started, deploy.succeeded, deploy.failed,
	// rollback, approval.needed, promotion.blocked, emergency.change, drift,
	// budget.alert); empty means all.
	Events []string `json:"events,omitempty"`
}

// AppDefaults are the defaults every app inherits.
type AppDefaults struct {
	// Replicas bounds for apps that do not set them (default 1..1).
	Replicas *Replicas `json:"replicas,omitempty"`
	// Rollout strategy for apps that do not set one (default rolling).
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Replicas bounds the number of replicas; the autoscaler moves between them.
type Replicas struct {
	// Min replicas, at least 0.
	Min int `json:"min" jsonschema:"required,minimum=0,maximum=1000"`
	// Max replicas, at least min (default min).
	Max int `json:"max,omitempty" jsonschema:"minimum=0,maximum=1000"`
}

// Strategy names a rollout strategy.
type Strategy string

// The rollout strategies.
const (
	StrategyRolling   Strategy = "rolling"
	StrategyBlueGreen Strategy = "blueGreen"
	StrategyCanary    Strategy = "canary"
)

// Rollout says how a new version replaces the old one.
type Rollout struct {
	// Strategy is rolling, blueGreen or canary.
	Strategy Strategy `json:"strategy" jsonschema:"required,enum=rolling,enum=blueGreen,enum=canary"`
	// MaxSurge is how many replicas above the desired count a rolling update may start (default 1).
	MaxSurge *int `json:"maxSurge,omitempty" jsonschema:"minimum=0"`
	// MaxUnavailable is how many replicas a rolling update may take down at once (default 0).
	MaxUnavailable *int `json:"maxUnavailable,omitempty" jsonschema:"minimum=0"`
	// Steps of a canary: traffic weight and pause.
	Steps []CanaryStep `json:"steps,omitempty"`
	// Analysis thresholds checked during canary pauses; a failure rolls back.
	Analysis *Analysis `json:"analysis,omitempty"`
}

// CanaryStep sends a share of traffic to the new version, then waits.
type CanaryStep struct {
	// Weight is the percentage of requests sent to the new version.
	Weight int `json:"weight" jsonschema:"required,minimum=0,maximum=100"`
	// Pause is how long to hold this weight while the analysis runs.
	Pause Duration `json:"pause,omitempty"`
}

// Analysis holds canary thresholds measured at socle's proxy.
type Analysis struct {
	// MaxErrorRate is the highest share of 5xx answers or failed requests allowed, 0..1.
	MaxErrorRate *float64 `json:"maxErrorRate,omitempty" jsonschema:"minimum=0,maximum=1"`
	// MaxP95 is the highest 95th-percentile latency allowed, e.g. 300ms.
	MaxP95 Duration `json:"maxP95,omitempty"`
	// MinRequests is how many requests a step must see before it can pass.
	MinRequests int `json:"minRequests,omitempty" jsonschema:"minimum=0"`
}

// Costs configures FinOps: where billing exports are dropped and how costs are
// allocated to teams, apps, environments and zones.
type Costs struct {
	// Currency is the reporting currency for budgets (default EUR); costs are never summed across currencies.
	Currency string `json:"currency,omitempty" jsonschema:"pattern=^[A-Z]{3}$"`
	// Drop is a directory watched for billing exports (FOCUS, AWS CUR 2.0,
	// Azure cost details, Google Cloud billing); relative to the data directory.
	Drop string `json:"drop,omitempty"`
	// Tags lists, per dimension, the resource tag keys that carry it, first found wins.
	Tags *TagKeys `json:"tags,omitempty"`
	// Aliases map tag values to socle names per dimension, e.g. environment: {production: prod}.
	Aliases map[string]map[string]string `json:"aliases,omitempty"`
	// Rules are fallbacks for costs whose tags say nothing: the first rule
	// matching a row sets the dimensions it names that are still unknown.
	Rules []AllocationRule `json:"rules,omitempty"`
}

// TagKeys lists tag keys per allocation dimension.
type TagKeys struct {
	Team        []string `json:"team,omitempty"`
	App         []string `json:"app,omitempty"`
	Environment []string `json:"environment,omitempty"`
	Zone        []string `json:"zone,omitempty"`
}

// AllocationRule maps billing rows to owners by account, subscription,
// resource group, project, provider, service or tags.
type AllocationRule struct {
	// Name of the rule, reported with what it allocated.
	Name string `json:"name" jsonschema:"required"`
	// Match conditions, all of which must hold; values are glob patterns (* and ?), case-insensitive.
	Match AllocationMatch `json:"match" jsonschema:"required"`
	// Set is what the rule allocates (a rule has set, split or both).
	Set Allocation `json:"set,omitzero"`
	// Split shares what the rule matches among owners by weight: a shared
	// network or cluster paid for by the teams that use it. Each share sets
	// the dimensions it names that are still unknown after set; each cost
	// of a charge is divided exactly, the shares adding up to it.
	Split []AllocationShare `json:"split,omitempty"`
}

// AllocationShare is one owner's share of the charges a rule splits.
type AllocationShare struct {
	Team        string `json:"team,omitempty"`
	App         string `json:"app,omitempty"`
	Environment string `json:"environment,omitempty"`
	Zone        string `json:"zone,omitempty"`
	// Weight of the share, against the others' (3 and 1, or percentages).
	Weight int `json:"weight" jsonschema:"required,minimum=1"`
}

// AllocationMatch selects billing rows.
type AllocationMatch struct {
	Provider      string            `json:"provider,omitempty"`
	Account       string            `json:"account,omitempty"`
	Subscription  string            `json:"subscription,omitempty"`
	ResourceGroup string            `json:"resourceGroup,omitempty"`
	Project       string            `json:"project,omitempty"`
	Service       string            `json:"service,omitempty"`
	Region        string            `json:"region,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// Allocation names owners.
type Allocation struct {
	Team        string `json:"team,omitempty"`
	App         string `json:"app,omitempty"`
	Environment string `json:"environment,omitempty"`
	Zone        string `json:"zone,omitempty"`
}

// Role is what a member may do.
type Role string

// The roles, from least to most privileged.
const (
	RoleViewer    Role = "viewer"
	RoleDeveloper Role = "developer"
	RoleApprover  Role = "approver"
	RoleAdmin     Role = "admin"
)

// Teams is teams.yaml: who owns what and who may do what.
type Teams struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=Teams"`
	// Teams of the company.
	Teams []Team `json:"teams" jsonschema:"required"`
}

// Team owns apps and has members.
type Team struct {
	// Name of the team, referred to by apps' owner field.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,maxLength=63"`
	// Description is free text shown in the portal.
	Description string `json:"description,omitempty"`
	// Members of the team with their role.
	Members []Member `json:"members,omitempty"`
}

// Member is a user's membership of a team.
type Member struct {
	// User name, as used for login tokens.
	User string `json:"user" jsonschema:"required,pattern=^[a-z0-9][a-z0-9._-]*$"`
	// Email of the user.
	Email string `json:"email,omitempty" jsonschema:"format=email"`
	// Role is viewer, developer, approver or admin.
	Role Role `json:"role" jsonschema:"required,enum=viewer,enum=developer,enum=approver,enum=admin"`
}

// AppConfig is apps/<app>/socle.yaml: what socle adds beside the Score file.
type AppConfig struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=App"`
	// Owner is the team that owns the app.
	Owner string `json:"owner" jsonschema:"required"`
	// Description is free text shown in the portal.
	Description string `json:"description,omitempty"`
	// Build turns the app's source into the artifact that every environment runs.
	Build *Build `json:"build,omitempty"`
	// Rollout strategy; defaults to the platform's.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Replicas bounds; defaults to the platform's.
	Replicas *Replicas `json:"replicas,omitempty"`
	// Environments holds per-environment overrides, keyed by environment name.
	Environments map[string]Override `json:"environments,omitempty"`
	// Secrets names container variables whose values are secret: socle
	// redacts them in every API answer, log line and event. Variables that
	// take a secret output of a resource (${resources.db.password}) are
	// secret without being named here.
	Secrets []string `json:"secrets,omitempty"`
	// Routes are more ways socle's proxy reaches the app, in every
	// environment, besides its own host (<app>.<env>.localhost): other
	// host names, path prefixes, or both. An environment's override
	// replaces them.
	Routes []Route `json:"routes,omitempty"`
}

// Route is a host name and path prefix on which socle's proxy serves one
// of the app's ports. Of the routes of an environment that match a
// request's host, the longest prefix wins; two apps may not claim the same
// host and prefix in an environment.
type Route struct {
	// Host is the host name, lowercase, without port, such as
	// shop.example.com; empty: the app's own host.
	Host string `json:"host,omitempty" jsonschema:"maxLength=253"`
	// Path is the path prefix, such as /api: the path and what is under it,
	// segment by segment (not /apix); / or empty: every path.
	Path string `json:"path,omitempty" jsonschema:"pattern=^/"`
	// Strip removes Path from the request's path before it reaches the app
	// (/api/orders arrives as /orders), which gets X-Forwarded-Prefix.
	Strip bool `json:"strip,omitempty"`
	// Port is the workload's service port served there, by name; empty:
	// its primary port.
	Port string `json:"port,omitempty"`
}

// Build says how to build the app from the platform repository.
type Build struct {
	// Command run with sh -c in the app's directory of a clean export of the
	// repository; it writes its output into $SOCLE_OUT.
	Command string `json:"command" jsonschema:"required,minLength=1"`
	// Dir is the working directory relative to the app's directory (default .).
	Dir string `json:"dir,omitempty"`
	// Image is an external registry repository to push the built image to;
	// empty means socle's own registry.
	Image string `json:"image,omitempty"`
}

// Override changes an app in one environment.
type Override struct {
	// Disabled keeps the app out of this environment.
	Disabled bool `json:"disabled,omitempty"`
	// Replicas bounds in this environment.
	Replicas *Replicas `json:"replicas,omitempty"`
	// Variables set or replace container variables in every container.
	Variables map[string]string `json:"variables,omitempty"`
	// Rollout replaces the rollout strategy in this environment.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Routes replace the app's routes in this environment (hosts differ
	// from one environment to the next); an empty list removes them.
	Routes *[]Route `json:"routes,omitempty"`
}

// Releases is releases/<env>.yaml: what runs in an environment that does not
// sync automatically. Promotions and rollbacks are commits to this file.
type Releases struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=Releases"`
	// Environment this file pins; must match the file name.
	Environment string `json:"environment" jsonschema:"required"`
	// Apps pinned in the environment, keyed by app name.
	Apps map[string]Pin `json:"apps,omitempty"`
}

// Pin is one app's release in an environment.
type Pin struct {
	// Revision is the platform repository commit the release was built from.
	Revision string `json:"revision" jsonschema:"required,pattern=^[0-9a-f]+$,minLength=7,maxLength=40"`
	// Artifact is the image digest (sha256:…) that runs, never rebuilt.
	Artifact string `json:"artifact,omitempty" jsonschema:"pattern=^sha256:[0-9a-f]{64}$"`
	// PromotedBy is who pinned it.
	PromotedBy string `json:"promotedBy,omitempty"`
	// PromotedAt is when.
	PromotedAt *Time `json:"promotedAt,omitempty"`
	// From is the environment it was promoted from.
	From string `json:"from,omitempty"`
	// Rollback marks a pin that restores an earlier release: it passes the
	// soak and approval gates (it is no new change), not windows or freezes.
	Rollback bool `json:"rollback,omitempty"`
	// Emergency marks a pin made as an emergency change by promotedBy: the
	// release it brings passes the soak, the windows and the freezes. Later
	// changes of the unit that keep this pin wait for the gates as usual.
	Emergency *PinEmergency `json:"emergency,omitempty"`
}

// PinEmergency is why a pin was made as an emergency change.
type PinEmergency struct {
	// Reason given by whoever declared the emergency, e.g. an incident number.
	Reason string `json:"reason" jsonschema:"required,minLength=1,maxLength=500"`
}

// Budgets is budgets.yaml: monthly budgets with alert thresholds.
type Budgets struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=Budgets"`
	// Budgets, each scoped to the intersection of the dimensions it names (none: the whole platform).
	Budgets []Budget `json:"budgets" jsonschema:"required"`
}

// Budget is a monthly amount for a scope.
type Budget struct {
	// Name of the budget.
	Name        string `json:"name" jsonschema:"required"`
	Team        string `json:"team,omitempty"`
	App         string `json:"app,omitempty"`
	Environment string `json:"environment,omitempty"`
	Zone        string `json:"zone,omitempty"`
	// Amount per calendar month, in the budget's currency.
	Amount json.Number `json:"amount" jsonschema:"required,type=number,exclusiveMinimum=0"` // decimal text, never a float: see cost.budgetAmount
	// Currency of the amount; costs in other currencies are not counted against it.
	Currency string `json:"currency" jsonschema:"required,pattern=^[A-Z]{3}$"`
	// Thresholds in percent of the amount at which alerts fire (default 80, 100).
	Thresholds []float64 `json:"thresholds,omitempty"`
	// Notify names notification targets.
	Notify []string `json:"notify,omitempty"`
}

// Severity says what a failed policy does.
type Severity string

// Policy severities.
const (
	SeverityDeny Severity = "deny"
	SeverityWarn Severity = "warn"
)

// PolicySet is a policies/*.yaml file.
type PolicySet struct {
	// File is where the set was read from.
	File       string `json:"-"`
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=Policies"`
	// Policies in this file.
	Policies []Policy `json:"policies" jsonschema:"required"`
}

// Policy is a guardrail written as a CEL expression over a planned change.
type Policy struct {
	// Name of the policy, unique across the repository.
	Name string `json:"name" jsonschema:"required,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,maxLength=63"`
	// Description says why the policy exists.
	Description string `json:"description,omitempty"`
	// Severity: deny blocks, warn annotates.
	Severity Severity `json:"severity" jsonschema:"required,enum=deny,enum=warn"`
	// Target is what the policy judges: apps (the default), each planned
	// change of an (app, environment) unit; or stacks, each resource change
	// of a stack instance's plan.
	Target PolicyTarget `json:"target,omitempty" jsonschema:"enum=apps,enum=stacks"`
	// Match restricts the policy to some environments, zones, apps or stacks (empty: all).
	Match PolicyMatch `json:"match,omitempty"`
	// Expression is CEL that is true when the change is allowed.
	Expression string `json:"expression" jsonschema:"required,minLength=1"`
	// Message shown when the expression is false; {{app}}, {{env}} are filled in.
	Message string `json:"message" jsonschema:"required,minLength=1"`
}

// PolicyMatch selects what a policy applies to.
type PolicyMatch struct {
	Environments []string `json:"environments,omitempty"`
	Zones        []string `json:"zones,omitempty"`
	Apps         []string `json:"apps,omitempty"`
	// Stacks restricts a policy whose target is stacks to these stacks.
	Stacks []string `json:"stacks,omitempty"`
}

// PolicyTarget is what a policy judges.
type PolicyTarget string

// The policy targets.
const (
	TargetApps   PolicyTarget = "apps"
	TargetStacks PolicyTarget = "stacks"
)

// Stacks reports whether the policy judges stack resource changes.
func (p *Policy) Stacks() bool { return p.Target == TargetStacks }

// Template is templates/<name>/template.yaml: a golden path that creates a new
// app from the files beside it. Every file under templates/<name>/files/ is
// rendered with Go's text/template over the parameters (and .app, the new
// app's name) into apps/<app>/ at the same relative path.
type Template struct {
	APIVersion string   `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string   `json:"kind" jsonschema:"required,enum=Template"`
	Metadata   Metadata `json:"metadata" jsonschema:"required"`
	// Version of the template (default 1): raise it when a change should
	// reach the apps made from it, which socle template status then lists
	// as behind and socle template upgrade brings up to date.
	Version int `json:"version,omitempty" jsonschema:"minimum=1"`
	// Parameters asked of whoever uses the template, in the order asked:
	// each is a JSON Schema property (type, description, enum, default,
	// pattern) with its name and whether it is required.
	Parameters []Parameter `json:"parameters,omitempty"`
	// Files are the contents of the files under files/, by their path
	// relative to it (read and checked by Load).
	Files map[string]string `json:"-"`
}

// TemplateFilesDir is the directory of a template's files, beside its
// template.yaml.
const TemplateFilesDir = "files"

// TemplateVersion is t's version, 1 when it says none.
func (t *Template) TemplateVersion() int { return max(t.Version, 1) }

// Parameter is one input of a template.
type Parameter struct {
	Name        string `json:"name" jsonschema:"required,pattern=^[a-zA-Z][a-zA-Z0-9_]*$"`
	Description string `json:"description,omitempty"`
	// Type is string, integer or boolean.
	Type     string `json:"type,omitempty" jsonschema:"enum=string,enum=integer,enum=boolean"`
	Required bool   `json:"required,omitempty"`
	Default  any    `json:"default,omitempty"`
	// Pattern a string value must match (RE2).
	Pattern string   `json:"pattern,omitempty"`
	Enum    []string `json:"enum,omitempty"`
	// Source, teams, makes the parameter an owner picker: its allowed
	// values are the teams of whoever uses the template (every team for
	// an admin), and the new app is that team's.
	Source string `json:"source,omitempty" jsonschema:"enum=teams"`
}

// SourceTeams is the Source of an owner-team parameter.
const SourceTeams = "teams"

// AppTemplate is apps/<app>/.template.yaml, which socle new writes: the
// template an app was made from, its version and the parameters given, so
// that socle template upgrade can render the same version again and merge
// the newer one into the app's files.
type AppTemplate struct {
	APIVersion string `json:"apiVersion" jsonschema:"required,enum=socle.dev/v1"`
	Kind       string `json:"kind" jsonschema:"required,enum=AppTemplate"`
	// Template is the template's name, under templates/.
	Template string `json:"template" jsonschema:"required,minLength=1"`
	// Version is the template's version the app's files come from.
	Version int `json:"version" jsonschema:"required,minimum=1"`
	// Revision is the platform repository's commit whose template files
	// rendered them.
	Revision string `json:"revision" jsonschema:"required,minLength=1"`
	// Parameters are the values the template was rendered with.
	Parameters map[string]any `json:"parameters,omitempty"`
}

// AppTemplateFile is the file under apps/<app>/ that records its template.
const AppTemplateFile = ".template.yaml"

// App is one application of the repository: its Score workload and socle's
// configuration beside it.
type App struct {
	// Name is the directory name under apps/.
	Name string `json:"name"`
	// Workload is the Score file, as the Score project's library reads it.
	Workload *types.Workload `json:"workload"`
	// Config is apps/<app>/socle.yaml, with platform defaults applied.
	Config AppConfig `json:"config"`
	// Source is a content hash of every file under apps/<app>/: it changes
	// exactly when the app's definition or source code changes.
	Source string `json:"source"`
	// Template is apps/<app>/.template.yaml: the template that made the
	// app; nil for an app made by hand.
	Template *AppTemplate `json:"template,omitempty"`
}
