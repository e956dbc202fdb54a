package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"

	"github.com/socle-dev/socle/internal/safefile"
)

// stateVersion is the format of the state file; a file of another version is
// refused rather than misread.
const stateVersion = 1

// state is the content of the state file.
type state struct {
	Version int     `json:"version"`
	Routes  []Route `json:"routes"`
	// Pauses are the routes in maintenance mode (see [Pause]).
	Pauses []Pause `json:"pauses,omitempty"`
}

// saveLocked writes the route table to the state file, atomically: a
// temporary file in the same directory, synced, then renamed over the old
// one, so that a crash leaves the old table or the new, never half of one.
func (p *Proxy) saveLocked() error {
	if p.stateFile == "" {
		return nil
	}
	t := p.table.Load()
	st := state{Version: stateVersion, Routes: []Route{}}
	for _, name := range slices.Sorted(maps.Keys(t.routes)) {
		st.Routes = append(st.Routes, t.routes[name].config)
	}
	for _, name := range slices.Sorted(maps.Keys(t.pauses)) {
		st.Pauses = append(st.Pauses, t.pauses[name].Pause)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("saving route table: %w", err)
	}
	if err := safefile.Write(p.stateFile, append(data, '\n')); err != nil {
		return fmt.Errorf("saving route table: %w", err)
	}
	return nil
}

// restore loads the state file, if there is one, into the empty table.
func (p *Proxy) restore() error {
	if p.stateFile == "" {
		return nil
	}
	data, err := os.ReadFile(p.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restoring route table: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("restoring route table from %s: %w", p.stateFile, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("restoring route table from %s: format version %d, want %d", p.stateFile, st.Version, stateVersion)
	}
	routes := map[string]*routeEntry{}
	for _, r := range st.Routes {
		if err := r.validate(); err != nil {
			return fmt.Errorf("restoring route table from %s: %w", p.stateFile, err)
		}
		r.Health = r.Health.withDefaults()
		backends := make([]*backend, len(r.Backends))
		for i, be := range r.Backends {
			backends[i] = p.newBackend(r.Name, be, true)
			p.startChecks(backends[i], r.Health)
		}
		routes[r.Name] = newRouteEntry(r, backends)
	}
	pauses := map[string]*pausePage{}
	for _, pa := range st.Pauses {
		if err := pa.Validate(); err != nil {
			return fmt.Errorf("restoring route table from %s: %w", p.stateFile, err)
		}
		pauses[pa.Scope] = newPausePage(pa)
	}
	p.table.Store(p.newTable(routes, pauses))
	p.log.Info("route table restored", "file", p.stateFile, "routes", len(routes), "pauses", len(pauses))
	return nil
}
