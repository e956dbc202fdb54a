package server_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/api/apitest"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

var sample = filepath.Join("..", "..", "testdata", "focus", "focus_1.0_sample_1000.csv")

func newCostServer(t *testing.T) *httptest.Server {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	repo := &spec.Repo{Budgets: &spec.Budgets{Budgets: []spec.Budget{{Name: "all", Amount: "10", Currency: "USD"}}}}
	svc := &cost.Service{
		Store: sqlite.NewCostStore(db),
		Repo:  func() *spec.Repo { return repo },
		Now:   func() time.Time { return time.Date(2024, 10, 2, 0, 0, 0, 0, time.UTC) },
	}
	mux := http.NewServeMux()
	api.Mount(mux, server.CostHandlers(svc))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	apitest.Watch(t, srv.URL)
	return srv
}

func upload(t *testing.T, url string, files map[string]string) *http.Response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, path := range files {
		fw, _ := mw.CreateFormFile("file", name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(b)
	}
	mw.Close()
	resp, err := http.Post(url+"/api/v1/costs/imports", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func getJSON(t *testing.T, url string, wantStatus int, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %s %s, want %d", url, resp.Status, b, wantStatus)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

type errorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

func TestCostAPI(t *testing.T) {
	srv := newCostServer(t)
	resp := upload(t, srv.URL, map[string]string{"focus.csv": sample})
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("import: %s %s", resp.Status, b)
	}
	var res cost.ImportResult
	json.NewDecoder(resp.Body).Decode(&res)
	if len(res.Files) != 1 || res.Files[0].Name != "focus.csv" || res.Files[0].Charges != 1000 || len(res.Periods) != 4 {
		t.Errorf("import result %+v", res)
	}

	// the same file again, as a raw body: replaced, not added
	b, _ := os.ReadFile(sample)
	raw, err := http.Post(srv.URL+"/api/v1/costs/imports?name=again.csv", "text/csv", bytes.NewReader(b))
	if err != nil || raw.StatusCode != http.StatusCreated {
		t.Fatalf("raw import: %v %v", raw.Status, err)
	}
	raw.Body.Close()

	var rep cost.Report
	getJSON(t, srv.URL+"/api/v1/costs/report?by=provider&month=2024-09", http.StatusOK, &rep)
	if len(rep.Rows) != 3 || rep.Rows[0].Keys[cost.DimProvider] != "AWS" || len(rep.Totals) != 1 || rep.Totals[0].Currency != "USD" ||
		len(rep.Coverage) == 0 {
		t.Errorf("report %+v", rep)
	}
	var filtered cost.Report
	getJSON(t, srv.URL+"/api/v1/costs/report?by=service&provider=Oracle&from=2024-09-01&to=2024-09-30", http.StatusOK, &filtered)
	if len(filtered.Rows) != 3 || filtered.From.String() != "2024-09-01" || filtered.To.String() != "2024-09-30" {
		t.Errorf("filtered report %+v", filtered)
	}

	var bud cost.BudgetReport
	getJSON(t, srv.URL+"/api/v1/costs/budgets?month=2024-09", http.StatusOK, &bud)
	if len(bud.Budgets) != 1 || bud.Budgets[0].Name != "all" || bud.AsOf.String() != "2024-09-30" {
		t.Errorf("budgets %+v", bud)
	}

	var an cost.AnomalyReport
	getJSON(t, srv.URL+"/api/v1/costs/anomalies?by=service&min_impact=0.01", http.StatusOK, &an)

	var imps []cost.ImportRecord
	getJSON(t, srv.URL+"/api/v1/costs/imports?limit=5", http.StatusOK, &imps)
	if len(imps) != 2 || imps[0].Files[0].Name != "again.csv" {
		t.Errorf("imports %+v", imps)
	}

	ex, err := http.Get(srv.URL + "/api/v1/costs/export?month=2024-09")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(ex.Body).ReadAll()
	ex.Body.Close()
	if err != nil || ex.Header.Get("Content-Type") != "text/csv; charset=utf-8" || len(recs) < 2 || recs[0][0] != "BillingAccountId" {
		t.Errorf("export: %v %s %d records", err, ex.Header.Get("Content-Type"), len(recs))
	}
}

// TestCostAmountsAreExactStrings: amounts are JSON strings of their exact
// decimal (a JSON number loses digits past 2⁵³ in JavaScript, and the
// sample's costs have 11 decimals), equal to the sum of the file's text
// computed apart with math/big.
func TestCostAmountsAreExactStrings(t *testing.T) {
	srv := newCostServer(t)
	if resp := upload(t, srv.URL, map[string]string{"focus.csv": sample}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("import: %s", resp.Status)
	}
	var rep struct {
		Totals []map[string]any `json:"totals"`
	}
	getJSON(t, srv.URL+"/api/v1/costs/report?from=2024-01-01&to=2024-12-31", http.StatusOK, &rep)
	f, err := os.Open(sample)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	want := map[string]*big.Rat{}
	for _, r := range recs[1:] {
		cur := r[col["BillingCurrency"]]
		if want[cur] == nil {
			want[cur] = new(big.Rat)
		}
		v, ok := new(big.Rat).SetString(r[col["BilledCost"]])
		if !ok {
			t.Fatalf("BilledCost %q", r[col["BilledCost"]])
		}
		want[cur].Add(want[cur], v)
	}
	if len(rep.Totals) != len(want) {
		t.Fatalf("totals %v, want currencies %v", rep.Totals, want)
	}
	pattern := regexp.MustCompile(money.Pattern)
	for _, tot := range rep.Totals {
		s, ok := tot["billed"].(string)
		if !ok || !pattern.MatchString(s) {
			t.Fatalf("billed is %T %v, want a decimal string", tot["billed"], tot["billed"])
		}
		got, _ := new(big.Rat).SetString(s)
		if w := want[tot["currency"].(string)]; got.Cmp(w) != 0 {
			t.Errorf("%s billed %s, the file sums to %s", tot["currency"], s, w.FloatString(11))
		}
	}
}

func TestCostAPIErrors(t *testing.T) {
	srv := newCostServer(t)
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("BilledCost,BillingCurrency,ChargePeriodStart\n1,USD,2024-09-01\nx,USD,2024-09-01\n"), 0o644)
	resp := upload(t, srv.URL, map[string]string{"bad.csv": bad})
	var e errorBody
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusUnprocessableEntity || e.Error.Code != "invalid_billing_data" || len(e.Error.Details) != 1 ||
		!strings.Contains(string(e.Error.Details[0]), `"line":3`) {
		t.Errorf("bad rows: %s %+v", resp.Status, e)
	}
	for _, u := range []string{
		"/api/v1/costs/report?month=September",
		"/api/v1/costs/report?by=color",
		"/api/v1/costs/report?flavour=x",
		"/api/v1/costs/report?month=2024-09&from=2024-09-01",
		"/api/v1/costs/budgets?month=2024-13",
		"/api/v1/costs/anomalies?weeks=-1",
		"/api/v1/costs/export?from=2024-09-30&to=2024-09-01",
		"/api/v1/costs/imports?limit=x",
	} {
		var e errorBody
		getJSON(t, srv.URL+u, http.StatusBadRequest, &e)
		if e.Error.Code != "bad_request" || e.Error.Message == "" {
			t.Errorf("%s: %+v", u, e)
		}
	}
	r, _ := http.Post(srv.URL+"/api/v1/costs/imports", "text/csv", strings.NewReader("x"))
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("unnamed raw upload: %s", r.Status)
	}
	r.Body.Close()
}

// TestCostAnswersAreArrays: a report grouped by nothing, or filtered, says
// "by": [] and "coverage": [], as the document declares, never null.
func TestCostAnswersAreArrays(t *testing.T) {
	srv := newCostServer(t)
	if resp := upload(t, srv.URL, map[string]string{"focus.csv": sample}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("import: %s", resp.Status)
	}
	for _, q := range []string{"month=2024-09", "month=2024-09&provider=Oracle"} {
		var raw map[string]json.RawMessage
		getJSON(t, srv.URL+"/api/v1/costs/report?"+q, http.StatusOK, &raw)
		if string(raw["by"]) != "[]" || string(raw["coverage"]) == "null" {
			t.Errorf("report?%s: by %s, coverage %s; want arrays", q, raw["by"], raw["coverage"])
		}
	}
}
