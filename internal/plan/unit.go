package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	"github.com/score-spec/score-go/types"

	"github.com/socle-dev/socle/internal/spec"
)

// Unit is the desired state of one app in one environment, resolved from
// the Score workload, the app's socle.yaml, its overrides for the environment
// and the platform's defaults.
type Unit struct {
	App  string `json:"app"`
	Env  string `json:"env"`
	Team string `json:"team,omitempty"`
	Zone string `json:"zone,omitempty"`
	// Revision is the platform revision the unit comes from. It is recorded,
	// not compared: a commit that does not touch an app changes nothing.
	Revision string `json:"revision,omitempty"`
	// Source is the content hash of the app's files: a new version exactly
	// when they change.
	Source string `json:"source"`
	// Artifact is the image digest pinned by a release (manual environments).
	Artifact string `json:"artifact,omitempty"`
	// Rollback is set when the pin restores an earlier release.
	Rollback bool `json:"rollback,omitempty"`
	// Emergency is the reason of the emergency change that pinned the
	// release, "" for none. Like Revision it is recorded, not compared: it
	// says how the pin came, not what runs (see EmergencyAfter).
	Emergency string           `json:"emergency,omitempty"`
	Runtime   spec.RuntimeType `json:"runtime"`
	// Metadata is the Score workload's metadata, for ${metadata.…} placeholders.
	Metadata types.WorkloadMetadata `json:"metadata,omitempty"`
	Replicas spec.Replicas          `json:"replicas"`
	Rollout  spec.Rollout           `json:"rollout"`
	// Containers with the environment's variable overrides applied.
	Containers map[string]types.Container `json:"containers"`
	Service    *types.WorkloadService     `json:"service,omitempty"`
	Resources  types.WorkloadResources    `json:"resources,omitempty"`
	// Secrets names the variables socle.yaml marks secret.
	Secrets []string `json:"secrets,omitempty"`
	// Routes are the hosts and path prefixes socle's proxy serves the app
	// on in the environment, besides its own host.
	Routes []spec.Route `json:"routes,omitempty"`
}

// Key names the unit.
func (u *Unit) Key() Key { return Key{App: u.App, Env: u.Env} }

// Hash is a content hash of the unit, to compare stored states cheaply.
func (u *Unit) Hash() string {
	c := *u
	c.Revision, c.Emergency = "", ""
	b, _ := json.Marshal(c)
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// EmergencyAfter returns the reason of the emergency change that u is when
// it follows a unit (or release) that ran artifact at revision, or "". An
// emergency covers the release its pin brings: once that runs (or is the
// desired state), a later change of the unit that keeps the pin, such as a
// platform default edited during a freeze, waits for the gates like any
// other change. Both the gates of a plan and the record of a release ask
// this, so that they agree on which change was the emergency.
func (u *Unit) EmergencyAfter(artifact, revision string) string {
	if u.Emergency == "" || (u.Artifact == artifact && u.Revision == revision) {
		return ""
	}
	return u.Emergency
}

// Key identifies a unit.
type Key struct{ App, Env string }

// AppAt returns an app as it was at a revision; manual environments run the
// app's definition from the revision their release pins, not from the head.
// It returns nil when the revision cannot be read, and the head's definition
// is used instead (the plan says so).
type AppAt func(app, revision string) *spec.App

// Desired resolves every unit of a repository at a revision, in environment
// order then app order. Environments that sync automatically run every
// enabled app at the head; the others run what releases/<env>.yaml pins.
//
// Units share the maps and pointers of the workloads they come from (and a
// unit without variable overrides its Containers map too): they are read,
// never written. With 10,000 apps a copy of every Containers map was half of
// the plan's memory.
func Desired(r *spec.Repo, revision string, at AppAt) []Unit {
	n := 0
	for _, env := range r.Platform.Environments {
		switch env.Sync {
		case spec.SyncAuto:
			n += len(r.Apps)
		case spec.SyncManual:
			if rel := r.Releases[env.Name]; rel != nil {
				n += len(rel.Apps)
			}
		}
	}
	units := make([]Unit, 0, n)
	for _, env := range r.Platform.Environments {
		switch env.Sync {
		case spec.SyncAuto:
			for _, a := range r.Apps {
				if a.Workload != nil && a.EnabledIn(env.Name) {
					units = append(units, resolve(r, &env, a, revision, ""))
				}
			}
		case spec.SyncManual:
			rel := r.Releases[env.Name]
			if rel == nil {
				continue
			}
			for _, name := range slices.Sorted(maps.Keys(rel.Apps)) {
				pin := rel.Apps[name]
				a := r.App(name)
				if at != nil {
					if old := at(name, pin.Revision); old != nil {
						a = old
					}
				}
				if a == nil || a.Workload == nil {
					continue
				}
				u := resolve(r, &env, a, pin.Revision, pin.Artifact)
				u.Rollback = pin.Rollback
				if pin.Emergency != nil {
					u.Emergency = pin.Emergency.Reason
				}
				units = append(units, u)
			}
		}
	}
	return units
}

func resolve(r *spec.Repo, env *spec.Environment, a *spec.App, revision, artifact string) Unit {
	u := Unit{
		App:       a.Name,
		Env:       env.Name,
		Team:      a.Config.Owner,
		Zone:      env.Zone,
		Revision:  revision,
		Source:    a.Source,
		Artifact:  artifact,
		Runtime:   env.Runtime.Type,
		Metadata:  a.Workload.Metadata,
		Replicas:  a.ReplicasIn(env.Name),
		Rollout:   a.RolloutIn(env.Name),
		Service:   a.Workload.Service,
		Resources: a.Workload.Resources,
		Secrets:   a.Config.Secrets,
		Routes:    a.RoutesIn(env.Name),
	}
	over := a.Config.Environments[env.Name].Variables
	if len(over) == 0 && a.Workload.Containers != nil {
		u.Containers = a.Workload.Containers
		return u
	}
	u.Containers = make(map[string]types.Container, len(a.Workload.Containers))
	for name, c := range a.Workload.Containers {
		if len(over) > 0 {
			vars := make(types.ContainerVariables, len(c.Variables)+len(over))
			maps.Copy(vars, c.Variables)
			maps.Copy(vars, over)
			c.Variables = vars
		}
		u.Containers[name] = c
	}
	return u
}
