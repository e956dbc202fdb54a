package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/plan"
	"github.com/socle-dev/socle/internal/provision"
	"github.com/socle-dev/socle/internal/provision/fromstack"
	"github.com/socle-dev/socle/internal/reconcile"
	"github.com/socle-dev/socle/internal/replicas"
	"github.com/socle-dev/socle/internal/resource"
	"github.com/socle-dev/socle/internal/seal"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/stack"
	"github.com/socle-dev/socle/internal/store"
	units "github.com/socle-dev/socle/internal/unit"
	"github.com/socle-dev/socle/internal/wiring"
)

// openResources makes the engine's kind of resource units, where socle
// provisions resources (Config.ProvisionResources): the provisioner
// drivers of the configuration, else the wiring's, and the resources'
// outputs sealed in <data>/resource-outputs.
func (s *Server) openResources() error {
	if !s.cfg.ProvisionResources {
		return nil
	}
	drivers := s.cfg.Provisioners
	if drivers == nil {
		key, err := seal.New(s.secret)
		if err != nil {
			return err
		}
		o := wiring.ProvisionerOptions{Data: s.cfg.Data, Logger: s.log, Seal: key, ProxyAddr: s.ProxyAddr()}
		if s.stacks != nil {
			o.StackOutputs, o.Repo = stack.AppliedOutputs{Dir: s.stacks.Dir, Secret: s.secret}, s.pipeline.Repo
		}
		drivers = wiring.Provisioners(o)
	}
	k, err := resource.New(resource.Config{Dir: filepath.Join(s.cfg.Data, "resource-outputs"), Secret: s.secret, Drivers: drivers,
		Serves: s.readsOutputs, After: s.resourceAfter, OnOutputs: s.outputsKept, Logger: s.log})
	if err != nil {
		return err
	}
	s.resources, s.provisioners = k, drivers
	return nil
}

// resourceAfter makes a stack provisioner's resource wait for the stack
// instance whose outputs it takes, where socle applies stacks: it is
// provisioned once the instance is applied (Synced), and meanwhile its
// status, and its apps', say what the instance waits for. Elsewhere the
// driver fails until the instance is applied (socle stack apply), and is
// asked again after a backoff.
func (s *Server) resourceAfter(repo *spec.Repo, d *resource.Desired) []units.Key {
	if d.Driver != fromstack.Name || s.stacks == nil || !s.cfg.ApplyStacks {
		return nil
	}
	name, inst, err := fromstack.Instance(repo, d.Request)
	if err != nil {
		return nil // the driver says why
	}
	return []units.Key{{Kind: stack.KindID, Name: name, Env: inst}}
}

// stopResources stops the services the provisioner drivers run (the
// environments' PostgreSQL servers), as socle stops the apps that use
// them; the next start starts them again with their data.
func (s *Server) stopResources(ctx context.Context) {
	for name, d := range s.provisioners {
		if st, ok := d.(provision.Stopper); ok {
			if err := st.StopAll(ctx); err != nil {
				s.log.Warn("stopping resources", "driver", name, "err", err)
			}
		}
	}
}

// readsOutputs reports whether env's runtime gives apps the outputs of
// provisioned resources (plan.ReadsOutputs, which socle plan asks too).
func (s *Server) readsOutputs(env string) bool { return plan.ReadsOutputs(s.pipeline.Repo(), env) }

// outputsKept makes the redactor learn the secret outputs of a resource
// just provisioned, before any app reads them.
func (s *Server) outputsKept() {
	s.secretsChanged()
	s.rebuildRedactor()
}

// resourceOutputs is what the replica runtime reads provisioned outputs
// from: nil when socle provisions no resource.
func (s *Server) resourceOutputs() replicas.Resources {
	if s.resources == nil {
		return nil
	}
	return s.resources
}

// resourceHash identifies the outputs of a unit's provisioned resources,
// which the app kind compares: new outputs roll its replicas.
func (s *Server) resourceHash(u *plan.Unit) string {
	if s.resources == nil {
		return ""
	}
	return s.resources.OutputsHash(u)
}

// resourceSecrets are the secret outputs of every resource provisioned
// here.
func (s *Server) resourceSecrets() []string {
	if s.resources == nil {
		return nil
	}
	return s.resources.SecretValues()
}

// notProvisioned says why GET /api/v1/resources lists nothing.
const notProvisioned = "socle provisions no resource: it runs with --provision-resources=false, and apps read made-up outputs"

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) {
	out := api.ResourceList{Items: []api.Resource{}}
	if s.resources == nil {
		out.NotProvisioned = notProvisioned
		s.reply(w, r, out)
		return
	}
	env, app := r.URL.Query().Get("env"), r.URL.Query().Get("app")
	items, ok := s.resourceViews(w, func(x *resource.Resource) bool {
		return (env == "" || x.Key.Env == env) && (app == "" || slices.Contains(x.Spec.Apps, app))
	})
	if !ok {
		return
	}
	out.Items = append(out.Items, items...)
	s.reply(w, r, out)
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) {
	env, name := r.PathValue("env"), r.PathValue("name")
	if s.resources == nil {
		writeError(w, http.StatusNotFound, "not_found", notProvisioned)
		return
	}
	items, ok := s.resourceViews(w, func(x *resource.Resource) bool { return x.Key.Env == env && x.Key.Name == name })
	if !ok {
		return
	}
	if len(items) == 1 {
		s.reply(w, r, items[0])
		return
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no resource %s in %s", name, env))
}

// deleteResource deletes a resource removed from Git that socle keeps (a
// data-bearing one retained in production): the kind's unit pass
// deprovisions it; the audit trail says who deleted which.
func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) {
	env, name := r.PathValue("env"), r.PathValue("name")
	if s.resources == nil {
		writeError(w, http.StatusNotFound, "not_found", notProvisioned)
		return
	}
	key := resource.Key(name, env)
	// A unit the engine does not prune (its environment keeps what was
	// removed from Git, or apps that used it remain) is not deleted
	// either: say so rather than wait for a pass that never prunes.
	for _, st := range s.engine.Status() {
		if st.Key() == key && (st.Reason == reconcile.ReasonRemovedFromGit || st.Reason == reconcile.ReasonDependentsRemain) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("resource %s in %s is not deleted: %s", name, env, st.Message))
			return
		}
	}
	x, err := s.resources.Delete(r.Context(), key)
	switch {
	case errors.Is(err, resource.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no resource %s in %s", name, env))
		return
	case errors.Is(err, resource.ErrDeclared):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("resource %s in %s is still declared in Git: only a resource removed from every workload is deleted (remove it from the workloads that use it first)", name, env))
		return
	case errors.Is(err, resource.ErrDeleting):
		writeError(w, http.StatusConflict, "conflict", err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "deprovision", err.Error()+"; its record and outputs are kept: try again")
		return
	}
	user := callerOf(r).User
	d := &x.Spec
	detail, err := json.Marshal(struct {
		Resource    string   `json:"resource"`
		Env         string   `json:"env"`
		Type        string   `json:"type"`
		Provisioner string   `json:"provisioner"`
		Driver      string   `json:"driver"`
		FormerApps  []string `json:"formerApps"`
	}{name, env, d.Type, d.Provisioner, d.Driver, d.Apps})
	if err == nil {
		// The deletion is done, whether the caller still waits or not.
		_, err = s.store.AppendAudit(context.WithoutCancel(r.Context()), store.AuditRecord{Actor: user, Action: "resource.deleted", Env: env, Detail: detail})
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", fmt.Sprintf("resource %s in %s was deleted, but recording it in the audit trail failed: %v", name, env, err))
		return
	}
	s.log.Warn("a resource was deleted", "resource", name, "env", env, "type", d.Type, "user", user)
	writeJSON(w, http.StatusOK, resourceView(x, nil))
}

// resourceViews are the resources keep selects as the API shows them:
// secret outputs replaced, whatever the redactor knows.
func (s *Server) resourceViews(w http.ResponseWriter, keep func(*resource.Resource) bool) ([]api.Resource, bool) {
	rs, err := s.resources.Resources()
	if err != nil && len(rs) == 0 {
		writeError(w, http.StatusInternalServerError, "resources", err.Error())
		return nil, false
	}
	rs = slices.DeleteFunc(rs, func(x resource.Resource) bool { return !keep(&x) })
	if len(rs) == 0 {
		return nil, true
	}
	status := map[units.Key]reconcile.UnitStatus{}
	for _, st := range s.engine.Status() {
		if st.Kind == resource.KindID {
			status[st.Key()] = st
		}
	}
	out := make([]api.Resource, 0, len(rs))
	for _, x := range rs {
		var st *reconcile.UnitStatus
		if u, ok := status[x.Key]; ok {
			st = &u
		}
		out = append(out, resourceView(x, st))
	}
	return out, true
}

// resourceView is resource x as the API shows it, with the engine's
// status st (nil before the engine reports one): its secret outputs
// replaced; once removed from Git, no app uses it, and the apps that
// did are its former ones.
func resourceView(x resource.Resource, st *reconcile.UnitStatus) api.Resource {
	d := &x.Spec
	v := api.Resource{Name: x.Key.Name, Env: x.Key.Env, Type: d.Type, Class: d.Class, Provisioner: d.Provisioner, Driver: d.Driver,
		Apps: []string{}, Data: d.Data, Production: d.Production, ProvisionedAt: x.ProvisionedAt.UTC()}
	if x.Desired {
		v.Apps = append(v.Apps, d.Apps...)
	} else {
		v.FormerApps = slices.Clone(d.Apps)
	}
	for _, name := range slices.Sorted(maps.Keys(x.Outputs)) {
		o := api.ResourceOutput{Name: name, Value: x.Outputs[name], Secret: d.Secret(name)}
		if o.Secret {
			o.Value = api.SecretOutput
		}
		v.Outputs = append(v.Outputs, o)
	}
	if st != nil {
		v.Unit = &api.StackUnit{Phase: string(st.Phase), Reason: string(st.Reason), Message: st.Message, Since: st.Since.UTC(), UpdatedAt: st.UpdatedAt.UTC()}
	}
	return v
}
