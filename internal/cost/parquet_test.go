package cost_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/socle-dev/socle/internal/cost"
)

// focusParquet is how a FOCUS Parquet export types its columns: costs as
// doubles or decimals, timestamps, nullable strings, Tags as a map.
type focusParquet struct {
	BilledCost         float64           `parquet:"BilledCost"`
	EffectiveCost      int64             `parquet:"EffectiveCost,decimal(11:18)"`
	ListCost           *float64          `parquet:"ListCost,optional"`
	BillingCurrency    string            `parquet:"BillingCurrency"`
	BillingAccountId   string            `parquet:"BillingAccountId"`
	BillingPeriodStart time.Time         `parquet:"BillingPeriodStart,timestamp(microsecond)"`
	ChargePeriodStart  time.Time         `parquet:"ChargePeriodStart,timestamp(millisecond)"`
	ChargeCategory     string            `parquet:"ChargeCategory"`
	ProviderName       string            `parquet:"ProviderName"`
	ServiceName        string            `parquet:"ServiceName"`
	RegionId           *string           `parquet:"RegionId,optional"`
	SubAccountId       *string           `parquet:"SubAccountId,optional"`
	SubAccountName     *string           `parquet:"SubAccountName,optional"`
	Tags               map[string]string `parquet:"Tags"`
}

// TestParquetMatchesCSV writes the sample as Parquet, its billed and list
// costs as doubles and its effective cost as a decimal, and imports both:
// every daily aggregate is the same, exactly.
func TestParquetMatchesCSV(t *testing.T) {
	t.Parallel()
	path := sample(t)
	f, _ := os.Open(path)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	opt := func(r []string, c string) *string {
		if v := r[col[c]]; v != "" && v != "NULL" {
			return &v
		}
		return nil
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q", s)
		}
		return v
	}
	ts := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var rows []focusParquet
	for _, r := range recs[1:] {
		// the decimal column: the sample's costs have 11 decimals
		whole, frac, _ := strings.Cut(r[col["EffectiveCost"]], ".")
		frac = (frac + "00000000000")[:11]
		unscaled, err := strconv.ParseInt(whole+frac, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		p := focusParquet{
			BilledCost: num(r[col["BilledCost"]]), EffectiveCost: unscaled, BillingCurrency: r[col["BillingCurrency"]],
			BillingAccountId: r[col["BillingAccountId"]], BillingPeriodStart: ts(r[col["BillingPeriodStart"]]),
			ChargePeriodStart: ts(r[col["ChargePeriodStart"]]), ChargeCategory: r[col["ChargeCategory"]],
			ProviderName: r[col["ProviderName"]], ServiceName: r[col["ServiceName"]], RegionId: opt(r, "RegionId"),
			SubAccountId: opt(r, "SubAccountId"), SubAccountName: opt(r, "SubAccountName"),
		}
		if l := opt(r, "ListCost"); l != nil {
			v := num(*l)
			p.ListCost = &v
		}
		if tags := opt(r, "Tags"); tags != nil {
			ts, err := parseJSONObject(*tags)
			if err != nil {
				t.Fatal(err)
			}
			p.Tags = ts
		}
		rows = append(rows, p)
	}
	pq := filepath.Join(t.TempDir(), "focus.parquet")
	out, _ := os.Create(pq)
	w := parquet.NewGenericWriter[focusParquet](out, parquet.MaxRowsPerRowGroup(300))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()

	a := cost.NewAllocator(nil)
	fromCSV, err := cost.ReadBatch(context.Background(), a, []cost.File{{Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	fromPQ, err := cost.ReadBatch(context.Background(), a, []cost.File{{Path: pq}})
	if err != nil {
		t.Fatal(err)
	}
	if fromPQ.Files[0].Format != cost.FormatFOCUS || fromPQ.Files[0].Charges != 1000 {
		t.Errorf("Parquet file: %+v", fromPQ.Files[0])
	}
	if len(fromPQ.Periods) != len(fromCSV.Periods) {
		t.Fatalf("%d periods from Parquet, %d from CSV", len(fromPQ.Periods), len(fromCSV.Periods))
	}
	for i := range fromCSV.Periods {
		c, p := fromCSV.Periods[i], fromPQ.Periods[i]
		if c.Source != p.Source || c.Month != p.Month || len(c.Rows) != len(p.Rows) {
			t.Fatalf("period %d: CSV %s %s %d rows, Parquet %s %s %d rows", i, c.Source, c.Month, len(c.Rows), p.Source, p.Month, len(p.Rows))
		}
		for j := range c.Rows {
			cr, pr := c.Rows[j], p.Rows[j]
			// the same to the pico-unit: a double is read as the shortest
			// decimal that reads back as it, which is the CSV's text
			if cr != pr {
				t.Errorf("row %d of %s: CSV %+v, Parquet %+v", j, c.Source, cr, pr)
			}
		}
	}
}
