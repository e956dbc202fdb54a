package api

import "time"

// The wire types of provisioned resources: what workloads ask for under
// `resources:` (a database, a redis) and socle provisions, with the
// engine's status of each. Secret outputs never reach them in clear.

// ResourceList is the answer of GET /api/v1/resources.
type ResourceList struct {
	// NotProvisioned, when set, says why socle provisions no resource
	// (socle up --provision-resources=false): the list is empty.
	NotProvisioned string `json:"notProvisioned,omitempty"`
	// Items are the resources, by environment then name.
	Items []Resource `json:"items"`
}

// Resource is one provisioned resource in one environment.
type Resource struct {
	// Name is the resource's: its Score id when workloads share it, else
	// <app>-<resource>.
	Name  string `json:"name"`
	Env   string `json:"env"`
	Type  string `json:"type"`
	Class string `json:"class,omitempty"`
	// Provisioner serves it, with Driver.
	Provisioner string `json:"provisioner"`
	Driver      string `json:"driver"`
	// Apps use it; none once it is removed from Git (a data-bearing
	// resource retained in production).
	Apps []string `json:"apps"`
	// FormerApps, for a resource removed from Git, are the apps that used
	// it when it was last there: whose data a retained one holds.
	FormerApps []string `json:"formerApps,omitempty"`
	// Data: it holds data. Production: its environment is production.
	Data       bool `json:"data,omitempty"`
	Production bool `json:"production,omitempty"`
	// Outputs are what it provides, in name order, absent before it was
	// provisioned.
	Outputs []ResourceOutput `json:"outputs,omitempty"`
	// ProvisionedAt is when it was last provisioned.
	ProvisionedAt time.Time `json:"provisionedAt,omitzero"`
	// Unit is the engine's status of it, absent until the engine reports
	// one.
	Unit *StackUnit `json:"unit,omitempty"`
}

// ResourceOutput is one output of a resource.
type ResourceOutput struct {
	Name string `json:"name"`
	// Value is the output's, or "(secret)" for a secret one.
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// SecretOutput stands for the value of a secret output.
const SecretOutput = "(secret)"
