package server

import (
	"path/filepath"

	"github.com/socle-dev/socle/internal/stack"
)

// openStacks makes the runner of the platform's infrastructure stacks,
// in <data>/stacks, with terraform (or tofu) from PATH. Without either,
// s.stacks stays nil: stacks are reported, never run.
func (s *Server) openStacks() {
	bin, err := stack.Binary()
	if err != nil || bin == "" {
		if err != nil {
			s.log.Warn("stacks are not run: terraform cannot be found", "err", err)
		}
		return
	}
	s.stacks = &stack.Runner{Dir: filepath.Join(s.cfg.Data, "stacks"), Terraform: bin, Secret: s.secret,
		Clock: s.clock, Log: s.log}
}
