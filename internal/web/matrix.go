package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/socle-dev/socle/internal/api"
)

// matrixView is the home page: apps × environments in promotion order.
type matrixView struct {
	Platform api.Platform
	// Envs are the columns: every environment, or those of the zone
	// filtered on.
	Envs []api.Environment
	Rows []matrixRow
	// Filters as set, and the values they can take.
	Team, Zone, Q string
	Teams, Zones  []string
	// Problems counts the cells that are not Synced, by phase (cellPhase:
	// an app held by a failed resource is Failed).
	Problems []phaseCount
	// Stacks are the infrastructure stacks' instances under the same
	// columns (nil: the platform has no stack); StacksError says why they
	// could not be read, the apps being shown all the same.
	Stacks      *stackMatrix
	StacksError string
}

// matrixRow is one app and its cells, one per column.
type matrixRow struct {
	Name, Owner string
	Cells       []cellView
}

// cellView is one cell: the app, and its state in one environment.
type cellView struct {
	App string
	api.AppEnv
}

type phaseCount struct {
	Phase string
	N     int
}

func (p *portal) home(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	plat, err := s.api.Platform(ctx)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	apps, err := s.api.Apps(ctx, nonEmpty(url.Values{"team": {q.Get("team")}, "zone": {q.Get("zone")}}))
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	v := buildMatrix(plat, apps, q.Get("team"), q.Get("zone"), q.Get("q"))
	if l, err := s.api.Stacks(ctx); err != nil {
		v.StacksError = err.Error()
	} else {
		zones := v.Zones
		if v.Zone != "" {
			zones = []string{v.Zone}
		}
		v.Stacks = buildStackMatrix(l, v.Envs, zones)
	}
	p.render(w, r, http.StatusOK, "home", s, "Environments", v)
}

// buildMatrix lines the cells up under the columns in one pass. The API
// gives each app's cells in promotion order; aligning by name keeps the
// matrix right when an app lacks an environment or the zone filter drops
// columns.
func buildMatrix(plat api.Platform, apps []api.App, team, zone, q string) matrixView {
	v := matrixView{Platform: plat, Team: team, Zone: zone, Q: q}
	for _, t := range plat.Teams {
		v.Teams = append(v.Teams, t.Name)
	}
	for _, z := range plat.Zones {
		v.Zones = append(v.Zones, z.Name)
	}
	for _, e := range plat.Environments {
		if zone == "" || e.Zone == zone {
			v.Envs = append(v.Envs, e)
		}
	}
	col := make(map[string]int, len(v.Envs))
	for i, e := range v.Envs {
		col[e.Name] = i
	}
	counts := map[string]int{}
	needle := strings.ToLower(q)
	v.Rows = make([]matrixRow, 0, len(apps))
	for _, a := range apps {
		if team != "" && a.Owner != team {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(a.Name), needle) {
			continue
		}
		row := matrixRow{Name: a.Name, Owner: a.Owner, Cells: make([]cellView, len(v.Envs))}
		for i, e := range v.Envs {
			row.Cells[i] = cellView{App: a.Name, AppEnv: api.AppEnv{Env: e.Name, Phase: "Absent"}}
		}
		for i, c := range a.Envs {
			j, ok := i, i < len(v.Envs) && v.Envs[i].Name == c.Env
			if !ok {
				j, ok = col[c.Env]
			}
			if !ok {
				continue
			}
			row.Cells[j].AppEnv = c
			if ph := cellPhase(c); ph != "Synced" && ph != "Absent" && ph != "" {
				counts[string(ph)]++
			}
		}
		v.Rows = append(v.Rows, row)
	}
	for _, ph := range []string{"Failed", "Degraded", "Blocked", "Building", "Progressing", "Pending", "Orphaned", "Unsupported"} {
		if counts[ph] > 0 {
			v.Problems = append(v.Problems, phaseCount{ph, counts[ph]})
		}
	}
	return v
}
