package cost_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socle-dev/socle/internal/cost"
)

// batchView is what the golden files hold of a batch.
type batchView struct {
	Format  cost.Format  `json:"format"`
	View    cost.View    `json:"view,omitempty"`
	Periods []periodView `json:"periods"`
}

type periodView struct {
	cost.Period
	Rows     []cost.Row     `json:"rows"`
	Coverage []coverageView `json:"coverage"`
}

// coverageView shows the day that Coverage keeps out of its JSON.
type coverageView struct {
	Day cost.Day `json:"day"`
	cost.Coverage
}

func view(b *cost.Batch) batchView {
	v := batchView{Format: b.Files[0].Format, View: b.Files[0].View}
	for _, p := range b.Periods {
		pv := periodView{Period: p, Rows: p.Rows}
		for _, c := range p.Coverage {
			pv.Coverage = append(pv.Coverage, coverageView{c.Day, c})
		}
		v.Periods = append(v.Periods, pv)
	}
	return v
}

// TestFormats reads one small export of every format and dialect and
// compares the allocated daily aggregates with golden files. Each file
// carries the quirks of its kind: a BOM, US, ISO and German dates, decimal
// commas, semicolons, tags without braces, labels and credits as JSON,
// amortized commitments, legacy CUR tag columns.
func TestFormats(t *testing.T) {
	t.Parallel()
	a := cost.NewAllocator(testRepo())
	for _, tc := range []struct {
		file   string
		format cost.Format
	}{
		{"focus_1.3.csv", cost.FormatFOCUS},
		{"cur2.csv", cost.FormatCUR},
		{"cur_legacy.csv", cost.FormatCUR},
		{"azure_ea.csv", cost.FormatAzure},
		{"azure_mca_amortized.csv", cost.FormatAzure},
		{"azure_payg.csv", cost.FormatAzure},
		{"azure_de.csv", cost.FormatAzure},
		{"gcp.csv", cost.FormatGCP},
		{"gcp.jsonl", cost.FormatGCP},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "formats", tc.file)
			b, err := cost.ReadBatch(context.Background(), a, []cost.File{{Path: path}})
			if err != nil {
				t.Fatal(err)
			}
			if b.Files[0].Format != tc.format {
				t.Errorf("format %s, want %s", b.Files[0].Format, tc.format)
			}
			checkGolden(t, tc.file+".json", view(b))

			// the same file gzipped reads the same
			gz := gzipCopy(t, path)
			bz, err := cost.ReadBatch(context.Background(), a, []cost.File{{Path: gz, Name: tc.file}})
			if err != nil {
				t.Fatalf("gzipped: %v", err)
			}
			if got, want := jsonString(t, view(bz)), jsonString(t, view(b)); got != want {
				t.Errorf("gzipped copy reads differently:\n%s", got)
			}
		})
	}
}

// TestGoogleCloudEncodingsAgree checks that the encodings of the same
// export give the same aggregates: CSV as BigQuery writes it, JSON lines,
// and CSV saved with pandas, whose credits and labels are Python lists.
func TestGoogleCloudEncodingsAgree(t *testing.T) {
	t.Parallel()
	a := cost.NewAllocator(testRepo())
	read := func(name string) string {
		b, err := cost.ReadBatch(context.Background(), a, []cost.File{{Path: filepath.Join("testdata", "formats", name)}})
		if err != nil {
			t.Fatal(err)
		}
		return jsonString(t, view(b).Periods)
	}
	c := read("gcp.csv")
	for _, other := range []string{"gcp.jsonl", "gcp_pandas.csv"} {
		if o := read(other); o != c {
			t.Errorf("gcp.csv and %s differ:\n%s\n%s", other, c, o)
		}
	}
}

func gzipCopy(t *testing.T, path string) string {
	t.Helper()
	in, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path)+".gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(in)
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnknownFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"people.csv":  "name,age\nada,36\n",
		"empty.csv":   "",
		"notjson.csv": "{not json\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		_, err := cost.ReadBatch(context.Background(), cost.NewAllocator(nil), []cost.File{{Path: p}})
		if !errors.Is(err, cost.ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want ErrInvalid naming the file", name, err)
		}
	}
}

// TestBadRows checks that a file with bad rows is refused whole, each bad
// row named by the line it starts on, a multi-line field counted.
func TestBadRows(t *testing.T) {
	t.Parallel()
	s := newService(t, nil, mustTime("2024-09-20T00:00:00Z"))
	_, err := s.Import(context.Background(), []cost.File{{Path: filepath.Join("testdata", "bad", "focus_bad.csv")}}, cost.Replace)
	var ie *cost.ImportError
	if !errors.As(err, &ie) || !errors.Is(err, cost.ErrInvalid) {
		t.Fatalf("error %v, want an *ImportError", err)
	}
	want := []cost.RowError{
		{File: "focus_bad.csv", Line: 3, Reason: `cost "abc" is not a number`},
		{File: "focus_bad.csv", Line: 5, Reason: `charge start "2024-13-40 00:00:00" is not a valid date`},
		{File: "focus_bad.csv", Line: 8, Reason: "has 6 fields, the header has 7"},
		{File: "focus_bad.csv", Line: 9, Reason: "currency is empty"},
	}
	if ie.Total != len(want) || len(ie.Rows) != len(want) {
		t.Fatalf("bad rows %+v, want %+v", ie.Rows, want)
	}
	for i := range want {
		if ie.Rows[i] != want[i] {
			t.Errorf("bad row %d: %+v, want %+v", i, ie.Rows[i], want[i])
		}
	}
	if !strings.Contains(err.Error(), "focus_bad.csv:3: cost \"abc\" is not a number") {
		t.Errorf("message: %v", err)
	}
	// nothing was stored
	if _, _, ok, _ := s.Store.Span(context.Background()); ok {
		t.Error("a file with bad rows was partly imported")
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAzureLocalizedHeaders reads the same charges downloaded from the
// Azure portal in English, German, French and Japanese, whose headers are
// written "Localized name (EnglishName)", with their own dates, decimals
// and separators: all read the same as the English file.
func TestAzureLocalizedHeaders(t *testing.T) {
	t.Parallel()
	a := cost.NewAllocator(testRepo())
	read := func(name string) string {
		t.Helper()
		b, err := cost.ReadBatch(context.Background(), a, []cost.File{{Path: filepath.Join("testdata", "formats", name)}})
		if err != nil {
			t.Fatal(err)
		}
		if b.Files[0].Format != cost.FormatAzure || b.Files[0].Charges != 2 {
			t.Errorf("%s: %+v", name, b.Files[0])
		}
		return jsonString(t, view(b).Periods)
	}
	en := read("azure_localized_en.csv")
	if !strings.Contains(en, `"billed":"1234.5"`) || !strings.Contains(en, `"day":"2024-09-30"`) {
		t.Fatalf("the English file: %s", en)
	}
	for _, name := range []string{"azure_localized_de.csv", "azure_localized_fr.csv", "azure_localized_ja.csv"} {
		if got := read(name); got != en {
			t.Errorf("%s reads differently from English:\n%s\n%s", name, got, en)
		}
	}
}

// TestFOCUSBefore1_0 refuses the FOCUS versions before 1.0, naming the
// version, rather than reading them with their effective cost and charge
// categories missing; 1.0 and later read.
func TestFOCUSBefore1_0(t *testing.T) {
	t.Parallel()
	const row = "2024-09-01T00:00:00Z,2024-09-02T00:00:00Z,2024-09-01T00:00:00Z,2024-10-01T00:00:00Z,1.5,1.2,USD,123,AWS,Usage\n"
	for _, tc := range []struct {
		name, header, want string
	}{
		{"0.5", "ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,BillingPeriodEnd,BilledCost,AmortizedCost,BillingCurrency,BillingAccountId,Provider,ChargeType",
			"a FOCUS 0.5 export (it has AmortizedCost, no EffectiveCost): socle reads FOCUS 1.0 to 1.3"},
		{"0.5 without its amortized cost", "ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,BillingPeriodEnd,BilledCost,InvoiceIssuer,BillingCurrency,BillingAccountId,Publisher,ChargeType",
			"a FOCUS 0.5 export (it has ChargeType, no ChargeCategory)"},
		{"1.0-preview", "ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,BillingPeriodEnd,BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ProviderName,ChargeSubcategory",
			"a FOCUS 1.0-preview export (it has ChargeSubcategory, no ChargeClass)"},
		{"1.0-preview without subcategories", "ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,BillingPeriodEnd,BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ProviderName,UsageQuantity",
			"a FOCUS 1.0-preview export (it has UsageQuantity, no ConsumedQuantity)"},
		{"1.0", "ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,BillingPeriodEnd,BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ProviderName,ChargeClass", ""},
		{"1.0 with consumed quantity", "ChargePeriodStart,ChargePeriodEnd,BillingPeriodStart,BillingPeriodEnd,BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ProviderName,ConsumedQuantity", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "focus.csv")
			os.WriteFile(p, []byte(tc.header+"\n"+row), 0o644)
			_, err := cost.ReadBatch(context.Background(), cost.NewAllocator(nil), []cost.File{{Path: p}})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (!errors.Is(err, cost.ErrInvalid) || !strings.Contains(err.Error(), "focus.csv: ") || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCurrencyCodes refuses rows whose currency is not an ISO 4217 code,
// naming their lines; a code in lower case is read in capitals.
func TestCurrencyCodes(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "focus.csv")
	os.WriteFile(p, []byte("ChargePeriodStart,BilledCost,BillingCurrency\n"+
		"2024-09-01,1,usd\n2024-09-01,1,EURO\n2024-09-01,1,€\n2024-09-01,1,VES\n2024-09-01,1,ABC\n"), 0o644)
	_, err := cost.ReadBatch(context.Background(), cost.NewAllocator(nil), []cost.File{{Path: p}})
	var ie *cost.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want bad rows", err)
	}
	want := []cost.RowError{
		{File: "focus.csv", Line: 3, Reason: `currency "EURO" is not an ISO 4217 currency code`},
		{File: "focus.csv", Line: 4, Reason: `currency "€" is not an ISO 4217 currency code`},
		{File: "focus.csv", Line: 6, Reason: `currency "ABC" is not an ISO 4217 currency code`},
	}
	if ie.Total != len(want) || !slices.Equal(ie.Rows, want) {
		t.Errorf("bad rows %+v, want %+v", ie.Rows, want)
	}
}
