package cost_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/spec"
)

// The columns of Azure cost details exports, the same in the actual and the
// amortized dataset: the Enterprise Agreement's and the Microsoft Customer
// Agreement's (which has no effectivePrice in older downloads).
const (
	eaHeader  = "BillingAccountId,SubscriptionId,Date,MeterCategory,ResourceGroup,Quantity,EffectivePrice,CostInBillingCurrency,BillingCurrency,ChargeType,PricingModel,ReservationName,BenefitName\n"
	mcaHeader = "billingAccountId,subscriptionId,date,meterCategory,resourceGroupName,quantity,costInBillingCurrency,billingCurrency,chargeType,pricingModel,benefitName\n"
)

// TestAzureViewFromRows reads one file of each kind under the name a real
// Cost Management export has: the view comes from its rows, never from the
// name, and a file with rows of both views is refused, the lines named.
func TestAzureViewFromRows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, csv string
		want      cost.View
		err       string
	}{
		{"EA actual: a reservation bought", eaHeader +
			"8611537,sub-1,2024-09-01,Virtual Machines,,1,60,60,EUR,Purchase,Reservation,vm-1y,\n" +
			"8611537,sub-1,2024-09-02,Storage,rg,10,0.02,0.2,EUR,Usage,OnDemand,,\n", cost.ViewActual, ""},
		{"EA actual: usage a reservation covered at no cost", eaHeader +
			"8611537,sub-1,2024-09-02,Virtual Machines,rg,24,0,0,EUR,Usage,Reservation,vm-1y,\n", cost.ViewActual, ""},
		{"EA amortized: usage at the reservation's prorated price", eaHeader +
			"8611537,sub-1,2024-09-02,Virtual Machines,rg,24,0.08,1.92,EUR,Usage,Reservation,vm-1y,\n", cost.ViewAmortized, ""},
		{"EA amortized: unused reservation", eaHeader +
			"8611537,sub-1,2024-09-02,Virtual Machines,,3,0.08,0.24,EUR,UnusedReservation,Reservation,vm-1y,\n", cost.ViewAmortized, ""},
		{"MCA actual: a savings plan bought", mcaHeader +
			"a1b2:c3d4,sub-1,2024-09-01,Savings Plan,,1,100,EUR,Purchase,SavingsPlan,sp-compute\n", cost.ViewActual, ""},
		{"MCA amortized: usage a savings plan covered, priced", mcaHeader +
			"a1b2:c3d4,sub-1,2024-09-02,Virtual Machines,rg,24,2.4,EUR,Usage,SavingsPlan,sp-compute\n", cost.ViewAmortized, ""},
		{"MCA amortized: unused savings plan", mcaHeader +
			"a1b2:c3d4,sub-1,2024-09-02,Savings Plan,,5,0.5,EUR,UnusedSavingsPlan,SavingsPlan,sp-compute\n", cost.ViewAmortized, ""},
		{"no commitment: the same in both views", eaHeader +
			"8611537,sub-1,2024-09-02,Storage,rg,10,0.02,0.2,EUR,Usage,OnDemand,,\n" +
			"8611537,sub-1,2024-09-03,Marketplace,rg,1,5,5,EUR,Purchase,OnDemand,,\n" +
			"8611537,sub-1,2024-09-03,Virtual Machines,rg,0,0,0,EUR,Usage,Reservation,vm-1y,\n", cost.ViewFull, ""},
		{"rows of both views", eaHeader +
			"8611537,sub-1,2024-09-01,Virtual Machines,,1,60,60,EUR,Purchase,Reservation,vm-1y,\n" +
			"8611537,sub-1,2024-09-02,Virtual Machines,,3,0.08,0.24,EUR,UnusedReservation,Reservation,vm-1y,\n", "",
			"part_0_0001.csv: invalid billing data: line 2 is actual cost (the purchase of a reservation), line 3 amortized cost (unused commitment (UnusedReservation))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "part_0_0001.csv")
			if err := os.WriteFile(p, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := cost.ReadBatch(context.Background(), cost.NewAllocator(nil), []cost.File{{Path: p}})
			if tc.err != "" {
				if !errors.Is(err, cost.ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Files[0].View != tc.want || len(b.Periods) != 1 || b.Periods[0].View != tc.want {
				t.Errorf("file view %q, periods %+v; want %q", b.Files[0].View, b.Periods, tc.want)
			}
		})
	}
}

// costColumn sums the cost column of an Azure CSV exactly, with math/big.
func costColumn(t *testing.T, path string) money.Amount {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, h := range recs[0] {
		if h == "CostInBillingCurrency" {
			col = i
		}
	}
	var sum big.Rat
	for _, r := range recs[1:] {
		var v big.Rat
		if _, ok := v.SetString(r[col]); !ok {
			t.Fatalf("cost %q", r[col])
		}
		sum.Add(&sum, &v)
	}
	a, ok := money.FromRat(&sum)
	if !ok || a.Rat().Cmp(&sum) != 0 {
		t.Fatalf("%s: the cost column sums to %s, more digits than an amount keeps", path, sum.FloatString(20))
	}
	return a
}

// TestAzureBothViews imports the actual and the amortized export of one
// month, both named part_0_0001.csv as Cost Management names them: from
// one directory, one after the other in either order, and through the drop
// directory. Every way, billed cost is the actual file's cost alone and
// effective cost the amortized file's alone; neither replaces the other.
func TestAzureBothViews(t *testing.T) {
	t.Parallel()
	actual := filepath.Join("testdata", "azure", "actual", "part_0_0001.csv")
	amortized := filepath.Join("testdata", "azure", "amortized", "part_0_0001.csv")
	wantBilled, wantEffective := costColumn(t, actual), costColumn(t, amortized)
	if wantBilled == wantEffective {
		t.Fatal("the two views must differ for the test to tell them apart")
	}
	t.Run("duckdb", func(t *testing.T) {
		t.Parallel()
		for path, want := range map[string]money.Amount{actual: wantBilled, amortized: wantEffective} {
			abs, _ := filepath.Abs(path)
			rows := duckDB(t, fmt.Sprintf(`SELECT CAST(sum(CAST(CostInBillingCurrency AS DECIMAL(38,15))) AS VARCHAR) AS cost
				FROM read_csv('%s', header=true, all_varchar=true)`, strings.ReplaceAll(abs, "'", "''")))
			if len(rows) != 1 || duckAmount(t, rows[0]["cost"]) != want {
				t.Errorf("DuckDB sums the cost of %s to %v, the Go reference to %v", path, rows, want)
			}
		}
	})
	now := mustTime("2024-10-05T00:00:00Z")
	check := func(t *testing.T, s *cost.Service) {
		t.Helper()
		rep, err := s.Report(context.Background(), cost.ReportRequest{From: day("2024-09-01"), To: day("2024-10-01")})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Totals) != 1 || rep.Totals[0].Billed != wantBilled || rep.Totals[0].Effective != wantEffective {
			t.Errorf("totals %+v, want billed %v (actual alone), effective %v (amortized alone)", rep.Totals, wantBilled, wantEffective)
		}
		var billed money.Amount
		var charges int64
		for _, c := range rep.Coverage {
			if c.Dim == cost.DimTeam {
				billed = billed.Add(c.Billed)
				charges += c.Charges
			}
		}
		if billed != wantBilled || charges != 5 {
			t.Errorf("coverage: %d charges, %v billed; want the actual file's 5 and %v", charges, billed, wantBilled)
		}
	}
	copyTo := func(t *testing.T, dir, name, from string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("one directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		copyTo(t, dir, "part_0_0001.csv", actual)
		copyTo(t, dir, "part_0_0002.csv", amortized)
		s := newService(t, nil, now)
		res, err := s.ImportPath(context.Background(), dir, cost.Replace)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || len(res[0].Periods) != 2 || res[0].Files[0].View != cost.ViewActual || res[0].Files[1].View != cost.ViewAmortized {
			t.Fatalf("one batch of two views: %+v", res)
		}
		check(t, s)
	})
	for _, order := range [][2]string{{actual, amortized}, {amortized, actual}} {
		t.Run("apart, "+filepath.Base(filepath.Dir(order[0]))+" first", func(t *testing.T) {
			t.Parallel()
			s := newService(t, nil, now)
			for _, p := range order {
				res, err := s.Import(context.Background(), []cost.File{{Path: p}}, cost.Replace)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Replaced) != 0 {
					t.Errorf("importing %s replaced %+v", p, res.Replaced)
				}
			}
			check(t, s)
			// the actual export again replaces the actual view only
			res, err := s.Import(context.Background(), []cost.File{{Path: actual}}, cost.Replace)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Replaced) != 1 || res.Replaced[0].View != cost.ViewActual || res.Replaced[0].Charges != 5 {
				t.Errorf("a restated actual export replaced %+v", res.Replaced)
			}
			check(t, s)
		})
	}
	t.Run("drop directory", func(t *testing.T) {
		t.Parallel()
		data := t.TempDir()
		repo := &spec.Repo{Platform: spec.Platform{Costs: &spec.Costs{Drop: "inbox"}}}
		s := newService(t, repo, now)
		w := cost.NewWatcher(s, data)
		// the actual export lands first, the amortized one later, in the
		// same directory under the next part's name
		copyTo(t, filepath.Join(data, "inbox", "2024-09"), "part_0_0001.csv", actual)
		w.Poll(context.Background())
		w.Poll(context.Background()) // quiet for an interval: imported
		copyTo(t, filepath.Join(data, "inbox", "2024-09"), "part_0_0002.csv", amortized)
		w.Poll(context.Background())
		w.Poll(context.Background())
		imps, err := s.Store.Imports(context.Background(), 10)
		if err != nil || len(imps) != 2 {
			t.Fatalf("%d imports, want 2 (%v)", len(imps), err)
		}
		check(t, s)
	})
}

// TestAzurePartWithoutCommitments reads a part of an export that has no
// row of a reservation or savings plan: beside parts of one view it joins
// that view; beside both views nobody can tell, and the batch is refused.
func TestAzurePartWithoutCommitments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "part_0_0003.csv")
	os.WriteFile(plain, []byte(eaHeader+"8611537,sub-1,2024-09-20,Storage,rg,10,0.02,0.2,EUR,Usage,OnDemand,,\n"), 0o644)
	actual := cost.File{Path: filepath.Join("testdata", "azure", "actual", "part_0_0001.csv"), Name: "actual/part_0_0001.csv"}
	amortized := cost.File{Path: filepath.Join("testdata", "azure", "amortized", "part_0_0001.csv"), Name: "amortized/part_0_0001.csv"}
	a := cost.NewAllocator(nil)

	b, err := cost.ReadBatch(context.Background(), a, []cost.File{actual, {Path: plain}})
	if err != nil {
		t.Fatal(err)
	}
	// sub-1's billing account is the same as the actual export's
	if b.Files[1].View != cost.ViewActual || len(b.Periods) != 1 || b.Periods[0].View != cost.ViewActual || b.Periods[0].Charges != 6 {
		t.Errorf("the part joined %q: %+v", b.Files[1].View, b.Periods)
	}

	_, err = cost.ReadBatch(context.Background(), a, []cost.File{actual, amortized, {Path: plain}})
	if !errors.Is(err, cost.ErrAmbiguousView) || !strings.Contains(err.Error(), "part_0_0003.csv has no row of a reservation or savings plan") {
		t.Errorf("a part of no view beside both: %v", err)
	}

	// the actual and amortized exports of a month without commitments
	// hold the same charges: one of them is refused, not added
	same := filepath.Join(dir, "part_0_0004.csv")
	os.WriteFile(same, []byte(eaHeader+"8611537,sub-1,2024-09-20,Storage,rg,10,0.02,0.2,EUR,Usage,OnDemand,,\n\n"), 0o644)
	_, err = cost.ReadBatch(context.Background(), a, []cost.File{{Path: plain}, {Path: same}})
	if !errors.Is(err, cost.ErrInvalid) || !strings.Contains(err.Error(), "part_0_0004.csv: invalid billing data: the same 1 charges as part_0_0003.csv") {
		t.Errorf("the same charges twice: %v", err)
	}
}
