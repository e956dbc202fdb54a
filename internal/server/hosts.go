package server

import (
	"fmt"

	"github.com/socle-dev/socle/internal/spec"
)

// FirstHosts returns the host names on which socle's proxy serves apps of
// the repository's head as soon as they are built, for `socle up` to name:
// see servedHosts. It loads the head once; it is not the revision in force,
// which Run decides.
func (s *Server) FirstHosts() ([]string, error) {
	rev, err := s.repo.Head()
	if err != nil {
		return nil, err
	}
	files, err := s.repo.Files(rev.SHA)
	if err != nil {
		return nil, err
	}
	r, problems := s.load(files)
	if err := problems.Err(); err != nil {
		return nil, fmt.Errorf("revision %s does not validate: %w", rev.Short(), err)
	}
	return servedHosts(r), nil
}

// servedHosts returns <app>.<env>.localhost for every app that serves HTTP
// (has a service port) in the first environment, in promotion order, that
// runs on the local runtime and follows the repository on its own: where a
// newcomer's apps appear without a promotion. Nil when there is none.
func servedHosts(r *spec.Repo) []string {
	for _, e := range r.Platform.Environments {
		if e.Runtime.Type != spec.RuntimeLocal || e.Sync != spec.SyncAuto {
			continue
		}
		var hosts []string
		for _, a := range r.Apps {
			if a.Config.Environments[e.Name].Disabled || a.Workload == nil || a.Workload.Service == nil || len(a.Workload.Service.Ports) == 0 {
				continue
			}
			hosts = append(hosts, a.Name+"."+e.Name+".localhost")
		}
		return hosts
	}
	return nil
}
