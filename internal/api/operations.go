package api

import (
	"net/http"
	"time"
)

// Access says who may call an operation. The server enforces it; the
// OpenAPI document states it (x-socle-access) so that people and the RBAC
// test read the same rule.
type Access string

// The access levels, from open to closed.
const (
	// AccessPublic: no token (only /healthz and the portal's login page).
	AccessPublic Access = "public"
	// AccessAuthenticated: any valid token, even of a user no team lists.
	AccessAuthenticated Access = "authenticated"
	// AccessMember: a member of any team in teams.yaml (viewer and above).
	AccessMember Access = "member"
	// AccessTeam: a developer or above of the app's owner team, or an admin.
	AccessTeam Access = "team"
	// AccessDeploy: a role of the caller in the app's team (admin: any) that
	// the environment's deployRoles list.
	AccessDeploy Access = "deploy"
	// AccessApprove: an approver of the app's team or an admin, never the author.
	AccessApprove Access = "approve"
	// AccessSelf: the caller's own tokens; an admin's: everyone's.
	AccessSelf Access = "self"
	// AccessAdmin: an admin of any team.
	AccessAdmin Access = "admin"
)

// Param is a query parameter.
type Param struct {
	Name        string
	Description string
	Type        string // string (default), integer, boolean
}

// Operation is one route of the API.
type Operation struct {
	ID          string
	Method      string
	Path        string // a net/http pattern path: /api/v1/apps/{app}
	Summary     string
	Description string
	Tag         string
	Access      Access
	Query       []Param
	// Body is the request body's type (nil: none), JSON.
	Body any
	// Upload, for a body that is not JSON, are its content types: the
	// parts of multipart/form-data are "file" parts.
	Upload []string
	// Response is the success body's type; Status its code (default 200).
	Response any
	Status   int
	// Stream, when set, is the content type of a streamed answer
	// (text/event-stream): the API's time limit does not apply.
	Stream string
	// Raw, when set, is the content type of a non-JSON answer.
	Raw string
	// MaxBody and Timeout bound the request (0: 1 MB and 30 s); a Stream
	// has neither.
	MaxBody int64
	Timeout time.Duration
	// Errors are the error statuses it answers beyond those every
	// operation of its kind does (401, 403, 429, 400 with parameters or a
	// body, 404 with a path parameter, 409 for an action on an app).
	Errors []int
	// Signed says a git host may call it without a token, signing the body
	// with the webhook secret instead.
	Signed bool
}

var (
	pageParams  = []Param{{"limit", "items per page (default 100, at most 1000)", "integer"}, {"cursor", "the next field of the previous page", "string"}}
	eventParams = []Param{{"after", "only events with a larger ID", "integer"}, {"kind", "only events of this kind", "string"},
		{"app", "only events of this app", "string"}, {"env", "only events of this environment", "string"},
		{"limit", "at most this many (default 100, at most 1000)", "integer"}}
)

// Operations are every route of /api/v1, plus /healthz and /metrics.
var Operations = []Operation{
	{ID: "health", Method: "GET", Path: "/healthz", Summary: "Liveness", Tag: "system", Access: AccessPublic, Raw: "text/plain"},
	{ID: "ready", Method: "GET", Path: "/readyz", Summary: "Readiness: 503 with code store_gone when the SQLite file was removed or replaced under socle (every write is then refused), store_unreachable when the PostgreSQL server does not answer, schema_behind when its database lacks a migration this socle needs",
		Tag: "system", Access: AccessPublic, Raw: "text/plain", Errors: []int{http.StatusServiceUnavailable}},
	{ID: "metrics", Method: "GET", Path: "/metrics", Summary: "Prometheus metrics", Tag: "system", Access: AccessMember, Raw: "text/plain"},
	{ID: "openapi", Method: "GET", Path: "/api/v1/openapi.json", Summary: "This document", Tag: "system", Access: AccessAuthenticated, Raw: "application/json"},
	{ID: "me", Method: "GET", Path: "/api/v1/me", Summary: "The caller, their teams and roles", Tag: "platform", Access: AccessAuthenticated, Response: Me{}},
	{ID: "status", Method: "GET", Path: "/api/v1/status", Summary: "The revision in force, the last plan and every unit", Tag: "platform", Access: AccessMember, Response: Status{}},
	{ID: "platform", Method: "GET", Path: "/api/v1/platform", Summary: "Environments in promotion order, zones and teams", Tag: "platform", Access: AccessMember, Response: Platform{}},
	{ID: "gitHook", Method: "POST", Path: "/api/v1/hooks/git", Summary: "Fetch the platform repository now (git webhook)",
		Description: "A git host that cannot send a bearer token authenticates with the webhook secret socle was started with (--webhook-secret): GitHub's and Gitea's X-Hub-Signature-256 (HMAC-SHA256 of the body), or GitLab's X-Gitlab-Token.",
		Tag:         "platform", Access: AccessMember, Signed: true, Status: 202, Response: map[string]string{}},

	{ID: "listApps", Method: "GET", Path: "/api/v1/apps", Summary: "The environment matrix: every app in every environment",
		Description: "Each app has one cell per environment, in promotion order, with what the caller may do there.",
		Tag:         "apps", Access: AccessMember, Query: append([]Param{{"team", "only apps of this team", "string"}, {"zone", "only environments of this zone", "string"}}, pageParams...), Response: Page[App]{}},
	{ID: "createApp", Method: "POST", Path: "/api/v1/apps", Summary: "Create an app from a golden-path template, as a commit by the caller (audited)",
		Description: "The template's files are rendered with the parameters into apps/<app>/, with apps/<app>/.template.yaml recording the template, its version and the parameters; the repository with them is validated and the new app's units planned and judged by the policies. With dryRun that is the answer; otherwise it is committed, and socle builds the app and deploys it to the environments that follow Git. The owner parameter (source: teams) must be a team the caller is a developer or above of (an admin: any team): 403 otherwise. 400 naming the parameter when one is missing or invalid; 404 when there is no such template; 409 when the app exists; 422 with code invalid, the problems as details, when the result does not validate, and with code denied when a policy denies a change.",
		Tag:         "templates", Access: AccessMember, Body: NewApp{}, Response: NewAppResult{}, Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}},
	{ID: "listTemplates", Method: "GET", Path: "/api/v1/templates", Summary: "The golden-path templates, their parameters (an owner picker lists the caller's teams) and the apps made from each, with how far behind they are",
		Description: "Read at the revision in force; 409 before the first valid revision.",
		Tag:         "templates", Access: AccessMember, Response: TemplateList{}, Errors: []int{http.StatusConflict}},
	{ID: "upgradeApp", Method: "POST", Path: "/api/v1/apps/{app}/template/upgrade", Summary: "Bring an app up to its template's current version by a three-way merge, as a commit by the caller (audited)",
		Description: "The template's version the app was made from is rendered with its recorded parameters (from the revision recorded), then the current version; the changes between the two are merged into the app's current files with git merge-file, so that the app's own edits stay. The answer shows the diff of each file. With conflicts (the app and the template changed the same lines) nothing is committed and the conflicts are shown, marked, with code conflict and status 409; with dryRun nothing is committed. The repository with the upgraded app must validate (422 with code invalid otherwise). 404 when the app was not made from a template; 400 naming a parameter the new version needs.",
		Tag:         "templates", Access: AccessTeam, Body: TemplateUpgradeRequest{}, Response: TemplateUpgrade{}, Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity}},
	{ID: "getApp", Method: "GET", Path: "/api/v1/apps/{app}", Summary: "An app: its cells and its effective configuration per environment, secrets redacted", Tag: "apps", Access: AccessMember, Response: AppDetail{}},
	{ID: "listReleases", Method: "GET", Path: "/api/v1/apps/{app}/envs/{env}/releases", Summary: "Releases of an app in an environment, newest first, with release notes", Tag: "releases", Access: AccessMember, Query: pageParams, Response: Page[Release]{}},
	{ID: "getRelease", Method: "GET", Path: "/api/v1/releases/{id}", Summary: "One release", Tag: "releases", Access: AccessMember, Response: Release{}},
	{ID: "logs", Method: "GET", Path: "/api/v1/apps/{app}/envs/{env}/logs", Summary: "The output of an app's replicas, secrets redacted",
		Description: "Server-sent events (Accept: text/event-stream): one data line per log line, prefixed with the replica; otherwise plain text, a line per line. With follow=true it goes on until the client leaves.",
		Tag:         "apps", Access: AccessTeam, Query: []Param{{"follow", "keep streaming", "boolean"}}, Stream: "text/event-stream", Raw: "text/plain"},
	{ID: "preview", Method: "GET", Path: "/api/v1/apps/{app}/envs/{env}/preview", Summary: "What deploy, promote or rollback would do here, and whether gates and policies allow it",
		Tag: "actions", Access: AccessMember, Query: []Param{{"action", "deploy, promote or rollback", "string"}, {"revision", "deploy: the revision (default: newest)", "string"}, {"release", "rollback: the release", "integer"}}, Response: Preview{},
		Errors: []int{http.StatusConflict}}, // refused: no valid revision yet
	{ID: "deploy", Method: "POST", Path: "/api/v1/apps/{app}/envs/{env}/deploy", Summary: "Deploy a revision",
		Description: "In an environment that follows Git it syncs the newest revision now; elsewhere it pins the revision (built once) in releases/<env>.yaml. Environments with promotion gates take releases by promotion only.",
		Tag:         "actions", Access: AccessDeploy, Body: ActionRequest{}, Status: 201, Response: ActionResult{}},
	{ID: "promote", Method: "POST", Path: "/api/v1/apps/{app}/promote", Summary: "Promote what runs in the previous environment to the one named by to",
		Description: "409 with code blocked and the gates and verdicts as details when a gate or a policy stops it.",
		Tag:         "actions", Access: AccessDeploy, Body: ActionRequest{}, Status: 201, Response: ActionResult{}},
	{ID: "listApprovals", Method: "GET", Path: "/api/v1/apps/{app}/envs/{env}/approvals", Summary: "Approvals of the artifact a promotion here would bring", Tag: "actions", Access: AccessMember,
		Query: []Param{{"artifact", "the artifact (default: what runs in the environment promoted from)", "string"}}, Response: ApprovalList{}},
	{ID: "approve", Method: "POST", Path: "/api/v1/apps/{app}/envs/{env}/approvals", Summary: "Approve the artifact a promotion here would bring", Tag: "actions", Access: AccessApprove, Body: ActionRequest{}, Status: 201, Response: Approval{}},
	{ID: "rollback", Method: "POST", Path: "/api/v1/apps/{app}/envs/{env}/rollback", Summary: "Restore an earlier release", Tag: "actions", Access: AccessDeploy, Body: ActionRequest{}, Status: 201, Response: ActionResult{}},
	{ID: "listPauses", Method: "GET", Path: "/api/v1/pauses", Summary: "The apps and environments in maintenance mode", Tag: "actions", Access: AccessMember, Response: PauseList{}},
	{ID: "pauseApp", Method: "PUT", Path: "/api/v1/apps/{app}/envs/{env}/pause", Summary: "Put an app in maintenance mode in an environment",
		Description: "socle's proxy answers the app's routes (every port) with 503 Service Unavailable, an HTML page with the message and Retry-After, at once and without restarting a replica; the replicas stay routed and health-checked. Pausing again replaces the message. The pause is kept in the store and audited (app.paused), and outlives a restart of socle or of its proxy process. Who may deploy the app in the environment may pause it.",
		Tag:         "actions", Access: AccessDeploy, Body: PauseRequest{}, Response: Pause{}},
	{ID: "resumeApp", Method: "DELETE", Path: "/api/v1/apps/{app}/envs/{env}/pause", Summary: "Take an app out of maintenance mode in an environment",
		Description: "Answers the pause as it was; 404 when the app is not paused there (audited as app.resumed).",
		Tag:         "actions", Access: AccessDeploy, Response: Pause{}},
	{ID: "pauseEnv", Method: "PUT", Path: "/api/v1/envs/{env}/pause", Summary: "Put every app of an environment in maintenance mode",
		Description: "As pauseApp, for every route of the environment, apps deployed later included; an app's own pause wins over its environment's for the page's message. Admins only (audited as env.paused).",
		Tag:         "actions", Access: AccessAdmin, Body: PauseRequest{}, Response: Pause{}},
	{ID: "resumeEnv", Method: "DELETE", Path: "/api/v1/envs/{env}/pause", Summary: "Take an environment out of maintenance mode",
		Description: "Apps paused on their own stay paused. Admins only (audited as env.resumed); 404 when the environment is not paused.",
		Tag:         "actions", Access: AccessAdmin, Response: Pause{}},
	{ID: "registerArtifact", Method: "POST", Path: "/api/v1/apps/{app}/artifacts", Summary: "Register an image a CI pipeline pushed for a revision, or have socle build the revision",
		Description: "Without digest socle builds the revision; 422 with code build_failed when the build fails.",
		Tag:         "actions", Access: AccessTeam, Body: ArtifactRequest{}, Status: 201, Response: Artifact{}, Timeout: 30 * time.Minute,
		Errors: []int{http.StatusUnprocessableEntity}}, // a build takes what it takes

	{ID: "listSecrets", Method: "GET", Path: "/api/v1/secrets", Summary: "The secret files of the platform repository: the names in each, its recipients and its last change, never a value",
		Description: "Names are not secret (socle.yaml lists them in clear): every member may list them. Files are read at the head of the repository's branch. 409 before the first valid revision.",
		Tag:         "secrets", Access: AccessMember, Errors: []int{http.StatusConflict}, Query: []Param{{"app", "only this app's files", "string"}, {"env", "only the files that give values in this environment (its own and its zone's)", "string"}}, Response: SecretList{}},
	{ID: "setSecret", Method: "PUT", Path: "/api/v1/apps/{app}/secrets/{name}", Summary: "Set a secret's value in an environment, as a commit of its SOPS file (audited, never shown)",
		Description: "The value is written to the file it comes from in env now (the environment's, then its zone's, as socle reads them), else to the environment's file (the zone's when only that exists); scope=env writes the environment's own file. A new file is encrypted for the recipients of the first .sops.yaml creation rule that matches its path, which needs no identity; an existing one is decrypted to keep its other values (socle must hold an identity of it), then encrypted for the rule's recipients with a new data key. The caller must be allowed to deploy the app in every environment the file gives values in (the environments' deployRoles), and production needs an approver or an admin. name must be listed under secrets in the app's socle.yaml. 422 with code secret_file when the file cannot be written: no creation rule, or no identity of an existing file; 409 when the repository moved during the change, or before its first valid revision.",
		Tag:         "secrets", Access: AccessDeploy, Query: []Param{{"env", "the environment (required)", "string"}, {"scope", "env: the environment's own file, even when the value comes from its zone's", "string"}},
		Body: SecretValue{}, Status: 201, Response: SecretChange{}, MaxBody: 64 << 10, Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity}},
	{ID: "rotateSecrets", Method: "POST", Path: "/api/v1/secrets/rotate", Summary: "Re-encrypt secret files for their current .sops.yaml recipients with a new data key, as one commit (audited)",
		Description: "After it the old data key decrypts the files no more; the values stay. A file no creation rule matches keeps its recipients. The caller must be allowed to set the secrets of each file (see setSecret). 404 when no file is in scope; 422 with code secret_file when socle holds no identity of one of them (nothing is rotated); 409 when the repository moved during the change, or before its first valid revision.",
		Tag:         "secrets", Access: AccessMember, Body: SecretRotateRequest{}, Status: 201, Response: SecretChange{}, Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity}},

	{ID: "listRevisions", Method: "GET", Path: "/api/v1/revisions", Summary: "Revisions of the platform repository, newest first, with their verdicts", Tag: "revisions", Access: AccessMember, Query: pageParams, Response: Page[Revision]{}},
	{ID: "getRevision", Method: "GET", Path: "/api/v1/revisions/{sha}", Summary: "A revision and the plans recorded for it", Tag: "revisions", Access: AccessMember, Response: RevisionDetail{}},
	{ID: "getPlan", Method: "GET", Path: "/api/v1/plans/{id}", Summary: "A plan: the changes per environment with gate and policy verdicts, secrets redacted", Tag: "revisions", Access: AccessMember, Response: PlanBody{}},
	{ID: "listEvents", Method: "GET", Path: "/api/v1/events", Summary: "The event log", Tag: "events", Access: AccessMember, Query: eventParams, Response: Page[Event]{}},
	{ID: "streamEvents", Method: "GET", Path: "/api/v1/events/stream", Summary: "The event log, live",
		Description: "Server-sent events: each event as `id: <id>`, `event: <kind>`, `data: <Event>`, `event: cell` with `{app, cell}` whenever a matrix cell changes, and `event: stack` with `{stack}` (a StackInstance, as GET /api/v1/stacks lists it) whenever the engine's status of a stack instance changes. Honours Last-Event-ID.",
		Tag:         "events", Access: AccessMember, Query: eventParams[:4], Stream: "text/event-stream"},
	{ID: "listAudit", Method: "GET", Path: "/api/v1/audit", Summary: "The audit trail, oldest first",
		Tag: "audit", Access: AccessMember, Query: []Param{{"after", "only records with a larger seq", "integer"}, {"limit", "at most this many", "integer"},
			{"actor", "only records by this actor", "string"}, {"action", "only records of this action", "string"}, {"app", "only records of this app", "string"}, {"env", "only records of this environment", "string"}}, Response: Page[AuditRecord]{}},
	{ID: "verifyAudit", Method: "GET", Path: "/api/v1/audit/verify", Summary: "Verify the audit chain", Tag: "audit", Access: AccessMember, Response: AuditVerifyResult{}},
	{ID: "dora", Method: "GET", Path: "/api/v1/dora", Summary: "DORA figures", Tag: "audit", Access: AccessMember,
		Query: []Param{{"app", "", "string"}, {"team", "", "string"}, {"env", "", "string"}, {"period", "a duration such as 720h", "string"}}, Response: DORAFigures{}},
	{ID: "doraSeries", Method: "GET", Path: "/api/v1/dora/series", Summary: "DORA figures per week or day, for charts", Tag: "audit", Access: AccessMember,
		Query: []Param{{"app", "", "string"}, {"team", "", "string"}, {"env", "", "string"}, {"period", "a duration such as 2160h (default 12 weeks)", "string"}, {"bucket", "week (default) or day", "string"}}, Response: DORASeries{}},
	{ID: "appSignals", Method: "GET", Path: "/api/v1/apps/{app}/signals", Summary: "An app's golden signals per environment (rate, errors, p50/p95/p99 latency over time) with deploy, promotion and rollback markers",
		Description: "From what the proxy counted of the app's requests, sampled every 10 s and kept in memory for 6 hours (a restarted socle starts again). 60 points over the period.",
		Tag:         "audit", Access: AccessMember, Query: []Param{{"env", "only this environment", "string"}, {"period", "a duration such as 1h (default), at most 6h", "string"}}, Response: AppSignals{}},
	{ID: "listSignals", Method: "GET", Path: "/api/v1/signals", Summary: "The last minute's golden signals of every app and environment the proxy serves (socle top)",
		Tag: "audit", Access: AccessMember, Query: []Param{{"env", "only this environment", "string"}}, Response: SignalList{}},

	{ID: "listResources", Method: "GET", Path: "/api/v1/resources", Summary: "Every resource socle provisions for workloads: its provisioner, driver, the apps that use it, its outputs (secret ones redacted) and the engine's status",
		Description: "Resources are listed by environment then name; those retained after their removal from Git are listed with no apps. notProvisioned says why the list is empty when socle provisions no resource.",
		Tag:         "resources", Access: AccessMember, Query: []Param{{"env", "only the resources of this environment", "string"}, {"app", "only the resources this app uses, or used before their removal from Git", "string"}}, Response: ResourceList{}},
	{ID: "getResource", Method: "GET", Path: "/api/v1/resources/{env}/{name}", Summary: "A provisioned resource: its provisioner, driver, apps, outputs (secret ones redacted) and status",
		Tag: "resources", Access: AccessMember, Response: Resource{}},
	{ID: "deleteResource", Method: "DELETE", Path: "/api/v1/resources/{env}/{name}", Summary: "Delete a resource removed from Git that socle keeps, with its data (audited)",
		Description: "Only a resource no workload in Git declares any more: a data-bearing one retained in production, or one whose deprovisioning failed. Its driver deprovisions it (the process driver drops its database and role, or stops and removes its redis server), then its record and sealed outputs are removed, and the audit trail records resource.deleted with who and which. 409 with code conflict while Git declares it, while its environment keeps what was removed from Git (prune: false) or apps that used it remain, or while another deletion of it runs. 500 with code deprovision when the driver fails: the record and outputs are kept, and the deletion can be retried. Answers the resource as it was.",
		Tag:         "resources", Access: AccessAdmin, Response: Resource{}, Errors: []int{http.StatusConflict}, Timeout: 2 * time.Minute},
	{ID: "listStacks", Method: "GET", Path: "/api/v1/stacks", Summary: "Every instance of every infrastructure stack: the engine's status, the last plan, the last apply and who runs it now",
		Description: "Upstream stacks first. When socle has neither terraform nor tofu on its PATH, notRun says so and the instances carry no plan. 409 with code refused before the first valid revision.",
		Tag:         "stacks", Access: AccessMember, Response: StackList{}, Errors: []int{http.StatusConflict}},
	{ID: "getStack", Method: "GET", Path: "/api/v1/stacks/{stack}/{instance}", Summary: "A stack instance: its last plan resource by resource, its inputs, the outputs of its last apply, its last drift check and the applies kept, secrets redacted",
		Description: "The instance is the zone or the environment the stack is in. 409 with code refused before the first valid revision.",
		Tag:         "stacks", Access: AccessMember, Response: StackDetail{}, Errors: []int{http.StatusConflict}},
	{ID: "listStackApprovals", Method: "GET", Path: "/api/v1/stacks/{stack}/{instance}/approvals", Summary: "Approvals of a stack instance's plan",
		Description: "409 with code refused before the first valid revision.",
		Tag:         "stacks", Access: AccessMember, Query: []Param{{"plan", "the plan (default: the instance's current plan)", "string"}}, Response: StackApprovalList{}, Errors: []int{http.StatusConflict}},
	{ID: "approveStack", Method: "POST", Path: "/api/v1/stacks/{stack}/{instance}/approvals", Summary: "Approve a gated stack instance's current plan (audited)",
		Description: "An approval is of one plan: a plan made again (the state or the inputs changed) needs approvals of its own. Production-like instances (any zone, or an environment whose deployRoles leave developers out) are approved by approvers of the stack's owner team, others by its developers and above; admins approve any; a stack without an owner, only admins. The author of the revision the plan came from may approve, but it does not count. 409 with code conflict when plan is not the instance's current plan (the message names the current one), or when no plan waits.",
		Tag:         "stacks", Access: AccessMember, Body: StackApprovalRequest{}, Status: 201, Response: StackApproval{}, Errors: []int{http.StatusConflict}},
	{ID: "listStackLogs", Method: "GET", Path: "/api/v1/stacks/{stack}/{instance}/logs", Summary: "The run logs kept of a stack instance, newest first",
		Description: "One per plan, apply and drift check that ran terraform, the last 20 of each kind; running marks the one that goes on. 409 with code refused before the first valid revision.",
		Tag:         "stacks", Access: AccessMember, Response: StackLogList{}, Errors: []int{http.StatusConflict}},
	{ID: "getStackLog", Method: "GET", Path: "/api/v1/stacks/{stack}/{instance}/logs/{log}", Summary: "What terraform printed during one run of a stack instance, secrets redacted",
		Description: "log is a name from the list, or latest. Server-sent events (Accept: text/event-stream): one data line per log line, then an event end when the run has ended; otherwise plain text, a line per line. With follow=true a running log is streamed until its run ends or the client leaves.",
		Tag:         "stacks", Access: AccessMember, Query: []Param{{"follow", "stream a running log until its run ends", "boolean"}}, Stream: "text/event-stream", Raw: "text/plain", Errors: []int{http.StatusConflict}},
	{ID: "unlockStack", Method: "POST", Path: "/api/v1/stacks/{stack}/{instance}/unlock", Summary: "Remove the run lock of a stack instance (audited)",
		Description: "A lock a live socle holds is refused with 409 (code conflict, the holder as details) unless force is true: then its holder loses the lock and stops its terraform within a second, while terraform's own state lock keeps a second apply off the state until it has. A lock held by a socle that died is gone already: the kernel dropped it.",
		Tag:         "stacks", Access: AccessAdmin, Body: StackUnlockRequest{}, Response: StackUnlock{}, Errors: []int{http.StatusConflict}},

	{ID: "listTokens", Method: "GET", Path: "/api/v1/tokens", Summary: "API tokens: the caller's, or everyone's for an admin", Tag: "tokens", Access: AccessSelf,
		Query: []Param{{"user", "an admin's: only this user's tokens", "string"}}, Response: Page[Token]{}},
	{ID: "createToken", Method: "POST", Path: "/api/v1/tokens", Summary: "Create a token for a user (shown once)", Tag: "tokens", Access: AccessAdmin, Body: NewToken{}, Status: 201, Response: CreatedToken{}},
	{ID: "revokeToken", Method: "DELETE", Path: "/api/v1/tokens/{id}", Summary: "Revoke a token", Tag: "tokens", Access: AccessSelf, Response: Token{}},

	{ID: "importCosts", Method: "POST", Path: "/api/v1/costs/imports", Summary: "Import one batch of billing data (multipart parts of one export, or a raw body named by ?name=)",
		Description: "The body is either multipart/form-data whose \"file\" parts are the files of one export, or one file as it is, named by ?name= (a CSV, Parquet or JSON Lines export, gzipped or not). 422 with code invalid_billing_data, and the rows at fault as details, when the data does not read.",
		Tag:         "costs", Access: AccessAdmin,
		Query: []Param{{"name", "the file's name, for a body that is one file", "string"},
			{"append", "true: add the batch to the stored periods (the parts of a multi-part export) instead of replacing them", "boolean"}},
		Upload: []string{"multipart/form-data", "application/octet-stream", "text/csv"}, Errors: []int{http.StatusUnprocessableEntity},
		Status: 201, Response: CostImportResult{}, MaxBody: 512 << 20}, // billing exports are large
	{ID: "listCostImports", Method: "GET", Path: "/api/v1/costs/imports", Summary: "The latest imports", Tag: "costs", Access: AccessMember, Query: []Param{{"limit", "", "integer"}}, Response: []CostImportRecord{}},
	{ID: "costReport", Method: "GET", Path: "/api/v1/costs/report", Summary: "Costs grouped by dimensions over a month or days", Tag: "costs", Access: AccessMember,
		Query: []Param{{"month", "2024-09", "string"}, {"from", "first day", "string"}, {"to", "last day", "string"}, {"by", "team,env,app,zone,…", "string"}}, Response: CostReport{}},
	{ID: "costBudgets", Method: "GET", Path: "/api/v1/costs/budgets", Summary: "Budgets of a month", Tag: "costs", Access: AccessMember, Query: []Param{{"month", "", "string"}}, Response: CostBudgetReport{}},
	{ID: "costAnomalies", Method: "GET", Path: "/api/v1/costs/anomalies", Summary: "Cost anomalies", Tag: "costs", Access: AccessMember,
		Query: []Param{{"from", "", "string"}, {"to", "", "string"}, {"by", "", "string"}, {"weeks", "", "integer"}, {"k", "", "string"}, {"min_impact", "", "string"}, {"min_relative", "", "string"}}, Response: CostAnomalyReport{}},
	{ID: "costExport", Method: "GET", Path: "/api/v1/costs/export", Summary: "Allocated costs as FOCUS CSV", Tag: "costs", Access: AccessMember,
		Query: []Param{{"month", "", "string"}, {"from", "", "string"}, {"to", "", "string"}}, Raw: "text/csv"},
}

// ApprovalList is the answer of GET …/approvals.
type ApprovalList struct {
	Artifact string     `json:"artifact"`
	Items    []Approval `json:"items"`
}

// DORASeries is DORA figures per bucket of time, oldest first.
type DORASeries struct {
	Bucket string        `json:"bucket"`
	Points []DORAPoint   `json:"points"`
	Total  DORAFigureSet `json:"total"`
}

// DORAPoint is one bucket of a DORASeries.
type DORAPoint struct {
	Start time.Time `json:"start"`
	DORAFigureSet
}

// DORAFigureSet is the four keys over one stretch of time.
type DORAFigureSet struct {
	Deployments int `json:"deployments"`
	// LeadTimeP50 is the median time from commit to running, in seconds.
	LeadTimeP50       float64 `json:"leadTimeP50"`
	Changes           int     `json:"changes"`
	Failures          int     `json:"failures"`
	ChangeFailureRate float64 `json:"changeFailureRate"`
	// TimeToRestoreP50 is the median time to restore, in seconds.
	TimeToRestoreP50 float64 `json:"timeToRestoreP50"`
	// Emergencies are the releases made as emergency changes (counted in
	// the figures above as any release), for review.
	Emergencies int `json:"emergencies"`
}

// Mount registers on mux, without any access check, the operations that
// handlers (by operation ID) serve: for tests of handlers alone.
func Mount(mux *http.ServeMux, handlers map[string]http.HandlerFunc) {
	for _, op := range Operations {
		if h, ok := handlers[op.ID]; ok {
			mux.HandleFunc(op.Method+" "+op.Path, h)
		}
	}
}
