package cost

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/socle-dev/socle/internal/money"
)

// The API's query parameters and the CLI's flags name requests the same
// way; these functions read them, so that both mean the same.

// RangeOf reads month=2006-01, or from= and to= (inclusive days).
func RangeOf(q url.Values) (from, to Day, err error) {
	return ParseRange(q.Get("month"), q.Get("from"), q.Get("to"))
}

// reportParams are the parameters of a report that are not filters.
var reportParams = map[string]bool{"by": true, "month": true, "from": true, "to": true}

// ReportRequestOf reads by=team,env, a range (see RangeOf) and filters:
// any other parameter names a dimension and its values (team=a,b).
func ReportRequestOf(q url.Values) (ReportRequest, error) {
	var r ReportRequest
	var err error
	if r.From, r.To, err = RangeOf(q); err != nil {
		return r, err
	}
	if r.By, err = ParseDims(q.Get("by")); err != nil {
		return r, err
	}
	for k, vs := range q {
		if reportParams[k] {
			continue
		}
		d, err := ParseDim(k)
		if err != nil {
			return r, fmt.Errorf("unknown filter %q: %w", k, err)
		}
		var values []string
		for _, v := range vs {
			values = append(values, strings.Split(v, ",")...)
		}
		r.Where = append(r.Where, Cond{Dim: d, Values: values})
	}
	return r, nil
}

// AnomalyRequestOf reads a range, by, weeks, k, min_impact and min_relative.
func AnomalyRequestOf(q url.Values) (AnomalyRequest, error) {
	var r AnomalyRequest
	var err error
	if r.From, r.To, err = RangeOf(q); err != nil {
		return r, err
	}
	if r.Dims, err = ParseDims(q.Get("by")); err != nil {
		return r, err
	}
	// k and min_relative are factors; min_impact is an amount, read exactly
	for _, p := range []struct {
		name string
		into *float64
	}{{"k", &r.K}, {"min_relative", &r.MinRelative}} {
		if v := q.Get(p.name); v != "" {
			if *p.into, err = strconv.ParseFloat(v, 64); err != nil || *p.into < 0 || math.IsInf(*p.into, 0) || math.IsNaN(*p.into) {
				return r, fmt.Errorf("%s %q is not a positive number", p.name, v)
			}
		}
	}
	if v := q.Get("min_impact"); v != "" {
		if r.MinImpact, err = money.Parse(v); err != nil || r.MinImpact.Sign() < 0 {
			return r, fmt.Errorf("min_impact %q is not a positive amount", v)
		}
	}
	if v := q.Get("weeks"); v != "" {
		if r.Weeks, err = strconv.Atoi(v); err != nil || r.Weeks < 1 {
			return r, fmt.Errorf("weeks %q is not a positive number", v)
		}
	}
	return r, nil
}

// MonthOfQuery reads month=2006-01; zero when absent.
func MonthOfQuery(q url.Values) (Month, error) {
	if v := q.Get("month"); v != "" {
		return ParseMonth(v)
	}
	return 0, nil
}
