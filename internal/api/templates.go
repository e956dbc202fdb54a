package api

// TemplateParameter is one parameter of a template, as its template.yaml
// declares it; for an owner picker (source: teams), Enum lists the teams
// the caller may create an app for.
type TemplateParameter struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Type is string, integer or boolean.
	Type     string   `json:"type"`
	Required bool     `json:"required,omitempty"`
	Default  any      `json:"default,omitempty"`
	Pattern  string   `json:"pattern,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	Source   string   `json:"source,omitempty"`
}

// Template is one golden-path template of the platform repository, with
// the apps made from it.
type Template struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Version is the template's current version.
	Version    int                 `json:"version"`
	Parameters []TemplateParameter `json:"parameters"`
	// Schema is the parameters as a JSON Schema object (properties in
	// order, required, enum with the caller's teams for an owner picker),
	// for a form.
	Schema map[string]any `json:"schema"`
	// Files are the paths it renders under apps/<app>/.
	Files []string `json:"files"`
	// Apps are the apps made from it.
	Apps []TemplateApp `json:"apps"`
}

// TemplateApp is an app made from a template.
type TemplateApp struct {
	App   string `json:"app"`
	Owner string `json:"owner,omitempty"`
	// Version is the template version its files come from; Behind is how
	// many versions the template has gone since.
	Version int `json:"version"`
	Behind  int `json:"behind"`
}

// TemplateList is the answer of GET /api/v1/templates.
type TemplateList struct {
	// Revision is the revision in force the templates are read at.
	Revision string     `json:"revision"`
	Items    []Template `json:"items"`
	// Orphans are apps whose template is no longer in the repository.
	Orphans []TemplateApp `json:"orphans,omitempty"`
}

// NewApp is the body of POST /api/v1/apps: an app to create from a
// template.
type NewApp struct {
	App string `json:"app"`
	// Template is the template's name (required: the answer is 400 with
	// details.field "template" without it).
	Template string `json:"template,omitempty"`
	// Parameters are the template's parameters: strings (as --set gives
	// them), numbers or booleans.
	Parameters map[string]any `json:"parameters,omitempty"`
	// DryRun renders, validates and plans, and commits nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// RenderedFile is one file a template writes.
type RenderedFile struct {
	// Path is the file's path in the repository.
	Path    string `json:"path"`
	Content string `json:"content"`
}

// NewAppResult is what a template made, or would make with dryRun: the
// files, the problems of the repository with them (none when it
// validates), the plan of the new app's units with the policies'
// verdicts, and the commit.
type NewAppResult struct {
	App        string         `json:"app"`
	Template   string         `json:"template"`
	Version    int            `json:"version"`
	Parameters map[string]any `json:"parameters"`
	Files      []RenderedFile `json:"files"`
	Problems   Problems       `json:"problems"`
	Changes    []PlanChange   `json:"changes"`
	Decisions  []PlanDecision `json:"decisions"`
	// Denied counts the changes a policy denies.
	Denied int `json:"denied"`
	// Commit is the commit made; absent for a dry run.
	Commit *Commit `json:"commit,omitempty"`
}

// TemplateUpgradeRequest is the body of POST
// /api/v1/apps/{app}/template/upgrade.
type TemplateUpgradeRequest struct {
	// Parameters set or change parameters, such as those a newer version
	// asks for; the others keep their recorded values.
	Parameters map[string]any `json:"parameters,omitempty"`
	// DryRun computes the merge and commits nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// UpgradeFile is one file an upgrade changes.
type UpgradeFile struct {
	// Path is the file's path in the repository.
	Path string `json:"path"`
	// Action is create, update or delete.
	Action string `json:"action" jsonschema:"enum=create,enum=update,enum=delete"`
	// Diff is a unified diff from the app's current file to the merge.
	Diff string `json:"diff"`
	// Conflicts counts the hunks the app and the template both changed,
	// marked in the diff (<<<<<<< app, ||||||| the old version, =======,
	// >>>>>>> the new version).
	Conflicts int `json:"conflicts"`
}

// TemplateUpgrade is a template upgrade of an app: the three-way merge of
// the template's old version, rendered with the app's parameters, into its
// new version, applied to the app's current files.
type TemplateUpgrade struct {
	App      string        `json:"app"`
	Template string        `json:"template"`
	From     int           `json:"from"`
	To       int           `json:"to"`
	Files    []UpgradeFile `json:"files"`
	// Conflicts counts the conflicting hunks: with any, nothing is
	// committed.
	Conflicts int `json:"conflicts"`
	// Commit is the upgrade's commit; absent for a dry run, a conflict or
	// nothing to change.
	Commit *Commit `json:"commit,omitempty"`
}
