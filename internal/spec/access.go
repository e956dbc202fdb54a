package spec

import "slices"

// The rules of who may do what, read from teams.yaml and socle.yaml. They
// are pure functions of the repository so that the API, the CLI's offline
// checks and the tests agree.

// Production reports whether env is a production environment: one that
// ends a promotion line, or that shares its zone with one. Self-service
// stops there.
func (r *Repo) Production(env string) bool {
	e := r.Environment(env)
	if e == nil {
		return false
	}
	ends := func(e *Environment) bool {
		if e.Promotion == nil || e.Promotion.From == "" {
			return false
		}
		return !slices.ContainsFunc(r.Platform.Environments, func(o Environment) bool {
			return o.Promotion != nil && o.Promotion.From == e.Name
		})
	}
	if ends(e) {
		return true
	}
	if e.Zone == "" {
		return false
	}
	for i := range r.Platform.Environments {
		if o := &r.Platform.Environments[i]; o.Zone == e.Zone && ends(o) {
			return true
		}
	}
	return false
}

// DeployRoles returns the roles that may deploy, promote and roll back in
// env: its deployRoles, or by default developer and above outside
// production and approver and admin in production.
func (r *Repo) DeployRoles(env string) []Role {
	if e := r.Environment(env); e != nil && len(e.DeployRoles) > 0 {
		return e.DeployRoles
	}
	if r.Production(env) {
		return []Role{RoleApprover, RoleAdmin}
	}
	return []Role{RoleDeveloper, RoleApprover, RoleAdmin}
}

// RoleIn returns user's role in team, "" if they are not a member.
func (r *Repo) RoleIn(user, team string) Role {
	if t := r.Team(team); t != nil {
		for _, m := range t.Members {
			if m.User == user {
				return m.Role
			}
		}
	}
	return ""
}

// Admin reports whether user is an admin in any team.
func (r *Repo) Admin(user string) bool {
	for _, t := range r.Teams.Teams {
		for _, m := range t.Members {
			if m.User == user && m.Role == RoleAdmin {
				return true
			}
		}
	}
	return false
}

// Member reports whether user belongs to any team.
func (r *Repo) Member(user string) bool {
	for _, t := range r.Teams.Teams {
		for _, m := range t.Members {
			if m.User == user {
				return true
			}
		}
	}
	return false
}

// RoleFor returns the role user acts with on app: admin if they are an
// admin anywhere, else their role in the app's owner team ("" if none).
func (r *Repo) RoleFor(user, app string) Role {
	if r.Admin(user) {
		return RoleAdmin
	}
	a := r.App(app)
	if a == nil {
		return ""
	}
	return r.RoleIn(user, a.Config.Owner)
}

// MayDeploy reports whether user may deploy, promote or roll back app in env.
func (r *Repo) MayDeploy(user, app, env string) bool {
	role := r.RoleFor(user, app)
	return role != "" && slices.Contains(r.DeployRoles(env), role)
}

// MayApprove reports whether user may approve promotions of app: an
// approver of its team, or an admin. (Never their own change: that is
// checked against the change.)
func (r *Repo) MayApprove(user, app string) bool {
	role := r.RoleFor(user, app)
	return role == RoleApprover || role == RoleAdmin
}

// StackApproveRoles returns the roles of s's owner team that may
// approve the plans of s's instance: approver and admin where the instance
// is production-like (any zone, or an environment whose deployRoles leave
// developers out), developer and above elsewhere. An admin of any team
// may approve any plan; without an owner, only admins may.
func (r *Repo) StackApproveRoles(s *Stack, instance string) []Role {
	if s.PerZone() || !slices.Contains(r.DeployRoles(instance), RoleDeveloper) {
		return []Role{RoleApprover, RoleAdmin}
	}
	return []Role{RoleDeveloper, RoleApprover, RoleAdmin}
}

// MayApproveStack reports whether user may approve the plans of s's
// instance (see StackApproveRoles). Never a plan of their own change:
// that is counted against the change.
func (r *Repo) MayApproveStack(user string, s *Stack, instance string) bool {
	if r.Admin(user) {
		return true
	}
	if s.Config.Owner == "" {
		return false
	}
	role := r.RoleIn(user, s.Config.Owner)
	return role != "" && slices.Contains(r.StackApproveRoles(s, instance), role)
}

// MayReadLogs reports whether user may read app's logs: a developer or
// above of its team, or an admin, in every environment.
func (r *Repo) MayReadLogs(user, app string) bool {
	switch r.RoleFor(user, app) {
	case RoleDeveloper, RoleApprover, RoleAdmin:
		return true
	}
	return false
}

// MayDeclareEmergency reports whether user may declare an emergency change
// of app in env: someone who may deploy there, with the role admin or one
// the environment's emergency.roles names.
func (r *Repo) MayDeclareEmergency(user, app, env string) bool {
	e := r.Environment(env)
	if e == nil || !r.MayDeploy(user, app, env) {
		return false
	}
	role := r.RoleFor(user, app)
	return role == RoleAdmin || (e.Emergency != nil && slices.Contains(e.Emergency.Roles, role))
}

// EmergencyApprovals returns how many approvals an emergency change needs
// to enter e: emergency.approvals, by default promotion.approvals.
func (e *Environment) EmergencyApprovals() int {
	if e.Emergency != nil && e.Emergency.Approvals != nil {
		return *e.Emergency.Approvals
	}
	if e.Promotion != nil {
		return e.Promotion.Approvals
	}
	return 0
}
