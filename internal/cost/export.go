package cost

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// exportColumns are the FOCUS columns the export fills, then socle's own
// (x_ is FOCUS's prefix for custom columns). A FOCUS reader such as a
// PowerBI or Kibana dashboard reads them; Tags carries the allocation too,
// under the default tag keys, so that the export imports again unchanged.
var exportColumns = []string{
	"BillingAccountId", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
	"ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ProviderName", "SubAccountId",
	"ServiceName", "RegionId", "BilledCost", "EffectiveCost", "ListCost", "Tags",
	"x_Team", "x_Application", "x_Environment", "x_Zone", "x_Source",
}

// Export writes the allocated daily aggregates of [from, to) as FOCUS CSV,
// streaming from the store; without a range, those of the month of the last
// day with data.
func (s *Service) Export(ctx context.Context, w io.Writer, from, to Day) error {
	from, to, err := s.orLastMonth(ctx, from, to)
	if err != nil {
		return err
	}
	if to <= from {
		return fmt.Errorf("an export needs a range of days, from before to")
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(exportColumns); err != nil {
		return err
	}
	by := []Dim{DimSource, DimPeriod, DimDay, DimCategory, DimProvider, DimAccount, DimService, DimRegion,
		DimTeam, DimApp, DimEnv, DimZone}
	rec := make([]string, len(exportColumns))
	err = s.Store.Totals(ctx, Query{From: from, To: to, By: by}, func(t Total) error {
		k := t.Keys
		source, period, day := k[0], k[1], k[2]
		m, err := ParseMonth(period)
		if err != nil {
			return err
		}
		d, err := ParseDay(day)
		if err != nil {
			return err
		}
		_, account, _ := strings.Cut(source, ":")
		owners := map[string]string{}
		for i, key := range []string{"team", "app", "env", "zone"} {
			if v := k[8+i]; v != Unallocated {
				owners[key] = v
			}
		}
		tags, _ := json.Marshal(owners)
		copy(rec, []string{
			account, t.Currency, stampOf(m.First()), stampOf(m.End()),
			stampOf(d), stampOf(d + 1), k[3], k[4], k[5],
			k[6], k[7], t.Billed.String(), t.Effective.String(), t.List.String(), string(tags),
			k[8], k[9], k[10], k[11], source,
		})
		return cw.Write(rec)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

func stampOf(d Day) string { return d.Time().Format(time.RFC3339) }
