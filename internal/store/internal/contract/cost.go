package contract

import (
	"fmt"

	"github.com/socle-dev/socle/internal/cost"
)

// A StoredView is a view of a (source, billing period) as a cost store
// keeps it.
type StoredView struct {
	ID       int64
	View     cost.View
	Charges  int64
	ImportID int64
}

// AppendTarget returns the stored view that a period appended joins, nil
// for a new view, or an error wrapping cost.ErrAmbiguousView when a part
// with no view of its own meets both Azure views.
func AppendTarget(p cost.Period, stored []StoredView) (*StoredView, error) {
	if p.View == cost.ViewFull {
		switch len(stored) {
		case 0:
			return nil, nil
		case 1:
			return &stored[0], nil
		}
		return nil, fmt.Errorf("%w: %s %s has both Azure views stored, and the part appended has no row of a reservation or savings plan to tell which it belongs to: import the whole export of that view again",
			cost.ErrAmbiguousView, p.Source, p.Month)
	}
	for i, st := range stored {
		if st.View == p.View || st.View == cost.ViewFull {
			return &stored[i], nil
		}
	}
	return nil, nil
}

// Replaced reports whether importing p in Replace mode replaces the stored
// view st: the same view, or either of them the full one (the other Azure
// view stays).
func Replaced(p cost.Period, st StoredView) bool {
	return st.View == p.View || p.View == cost.ViewFull || st.View == cost.ViewFull
}

// CostColumns maps the dimensions of a cost query to the SQL of the cost
// tables, the same in SQLite and PostgreSQL: of cost_daily (false) or
// cost_monthly (true) as d, joined with cost_periods as p. Dimensions that
// cost_monthly lacks (the day) are absent from its map.
var CostColumns = map[bool]map[cost.Dim]string{
	false: {
		cost.DimDay:   "d.day",
		cost.DimMonth: "substr(d.day, 1, 7)",
	},
	true: {
		cost.DimMonth: "d.month",
	},
}

func init() {
	for _, m := range CostColumns {
		m[cost.DimSource] = "p.source"
		m[cost.DimPeriod] = "p.period"
		for _, d := range []cost.Dim{cost.DimProvider, cost.DimAccount, cost.DimService, cost.DimRegion, cost.DimCategory,
			cost.DimCurrency, cost.DimTeam, cost.DimApp, cost.DimEnv, cost.DimZone} {
			m[d] = "d." + string(d)
		}
	}
}
