package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/server"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

var focusSample = filepath.Join("..", "..", "testdata", "focus", "focus_1.0_sample_1000.csv")

// runCost runs `socle cost ARGS` against server (or --data in ARGS), with
// the root's persistent flags.
func runCost(t *testing.T, server string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	g := newGlobals(&o, &e)
	defer g.flush()
	root := &cobra.Command{Use: "socle", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "")
	root.PersistentFlags().StringVar(&g.server, "server", server, "")
	root.PersistentPreRunE = g.preRun
	root.AddCommand(newCostCmd(g))
	root.SetArgs(append([]string{"cost"}, args...))
	root.SetOut(&o)
	root.SetErr(&e)
	err := root.ExecuteContext(context.Background())
	var ee *exitError
	switch {
	case err == nil:
		code = ExitOK
	case errors.As(err, &ee):
		code = ee.code
	case isUsage(err):
		code = ExitUsage
	default:
		code = ExitError
	}
	if err != nil && err.Error() != "" {
		e.WriteString("socle: " + err.Error() + "\n")
	}
	return o.String(), e.String(), code
}

func TestCostOnDataDirectory(t *testing.T) {
	data := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		golden string
	}{
		{"import", []string{"import", focusSample}, ExitOK, "import.txt"},
		{"report", []string{"report", "--by", "provider,team", "--month", "2024-09"}, ExitOK, "report.txt"},
		{"report-csv", []string{"report", "--by", "provider,service", "--filter", "provider=Oracle", "-o", "csv"}, ExitOK, "report.csv"},
		{"budgets", []string{"budgets", "--month", "2024-09"}, ExitOK, "budgets.txt"},
		{"anomalies", []string{"anomalies"}, ExitOK, "anomalies.txt"},
		{"budgets-csv", []string{"budgets", "-o", "csv"}, ExitUsage, ""},
		{"bad-filter", []string{"report", "--filter", "nope"}, ExitUsage, ""},
		{"bad-dim", []string{"report", "--by", "color"}, ExitUsage, ""},
		{"bad-month", []string{"report", "--month", "Sept"}, ExitUsage, ""},
		{"missing-file", []string{"import", "nope.csv"}, ExitUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--data", data, "--repo", example)
			out, errOut, code := runCost(t, "http://127.0.0.1:1", args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if tc.golden != "" {
				golden.Check(t, filepath.Join("testdata", "cost", tc.golden), []byte(out))
			}
		})
	}

	out, _, code := runCost(t, "", "export", "--month", "2024-09", "--data", data, "--repo", example)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != ExitOK || err != nil || len(recs) < 100 || recs[0][0] != "BillingAccountId" {
		t.Errorf("export: code %d, %v, %d records", code, err, len(recs))
	}
	out, _, _ = runCost(t, "", "report", "--by", "provider", "-o", "json", "--data", data, "--repo", example)
	var rep cost.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Rows) != 3 {
		t.Errorf("report -o json: %v, %+v", err, rep)
	}
	// the export's amounts are exact decimals, no exponent, and add up to
	// the report's total to the pico-unit
	col := slices.Index(recs[0], "BilledCost")
	var sum money.Amount
	for _, r := range recs[1:] {
		a, err := money.Parse(r[col])
		if err != nil || strings.ContainsAny(r[col], "eE") {
			t.Fatalf("export: BilledCost %q: %v", r[col], err)
		}
		sum = sum.Add(a)
	}
	if len(rep.Totals) != 1 || sum != rep.Totals[0].Billed {
		t.Errorf("export: BilledCost adds up to %s, the report's total is %+v", sum, rep.Totals)
	}
}

func TestCostImportBadRows(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("BilledCost,BillingCurrency,ChargePeriodStart\n1,USD,2024-09-01\nx,USD,2024-09-01\n"), 0o644)
	_, errOut, code := runCost(t, "", "import", bad, "--data", t.TempDir())
	if code != ExitProblems || !strings.Contains(errOut, "bad.csv:3: cost \"x\" is not a number") ||
		!strings.Contains(errOut, "nothing imported") || !strings.Contains(errOut, "default tag keys") {
		t.Errorf("code %d, stderr:\n%s", code, errOut)
	}
}

// TestCostThroughServer runs the same commands against a real HTTP server:
// the output matches the data-directory mode's.
func TestCostThroughServer(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	repo, problems := spec.Load(os.DirFS(example))
	if problems.Errors() > 0 {
		t.Fatal(problems)
	}
	mux := http.NewServeMux()
	api.Mount(mux, server.CostHandlers(&cost.Service{Store: sqlite.NewCostStore(db), Repo: func() *spec.Repo { return repo }}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := t.TempDir() // a directory is uploaded as one batch
	b, _ := os.ReadFile(focusSample)
	os.WriteFile(filepath.Join(dir, "focus_1.0_sample_1000.csv"), b, 0o644)
	out, errOut, code := runCost(t, srv.URL, "import", dir)
	if code != ExitOK {
		t.Fatalf("import: %d %s", code, errOut)
	}
	golden.Check(t, filepath.Join("testdata", "cost", "import.txt"), []byte(out))
	out, _, code = runCost(t, srv.URL, "report", "--by", "provider,team", "--month", "2024-09")
	if code != ExitOK {
		t.Fatalf("report: %d", code)
	}
	golden.Check(t, filepath.Join("testdata", "cost", "report.txt"), []byte(out))
	out, _, code = runCost(t, srv.URL, "export")
	if code != ExitOK || !strings.HasPrefix(out, "BillingAccountId,") {
		t.Errorf("export: %d %.100s", code, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("BilledCost,BillingCurrency,ChargePeriodStart\nx,USD,2024-09-01\n"), 0o644)
	if _, errOut, code := runCost(t, srv.URL, "import", bad); code != ExitProblems || !strings.Contains(errOut, "bad.csv:2") {
		t.Errorf("bad rows through the server: %d %s", code, errOut)
	}
	if _, _, code := runCost(t, srv.URL, "report", "--month", "13"); code != ExitUsage {
		t.Errorf("a bad month through the server: %d", code)
	}
	if _, errOut, code := runCost(t, "http://127.0.0.1:1", "budgets"); code != ExitError || !strings.Contains(errOut, "--data") {
		t.Errorf("no server: %d %s", code, errOut)
	}
}

// TestCostImportParts imports an export in two parts, on a data directory
// and through the server: the second part alone says what it replaced;
// with --append it adds to the first; appending it twice is refused.
func TestCostImportParts(t *testing.T) {
	data, _ := os.ReadFile(focusSample)
	lines := strings.SplitAfter(string(data), "\n")
	dir := t.TempDir()
	part1, part2 := filepath.Join(dir, "part-1.csv"), filepath.Join(dir, "part-2.csv")
	half := len(lines) / 2
	os.WriteFile(part1, []byte(strings.Join(lines[:half], "")), 0o644)
	os.WriteFile(part2, []byte(lines[0]+strings.Join(lines[half:], "")), 0o644)

	// fresh returns the flags of a new, empty data directory or server
	fresh := map[string]func(t *testing.T) []string{
		"data directory": func(t *testing.T) []string { return []string{"--data", t.TempDir()} },
		"server": func(t *testing.T) []string {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			mux := http.NewServeMux()
			api.Mount(mux, server.CostHandlers(&cost.Service{Store: sqlite.NewCostStore(db)}))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			return []string{"--server", srv.URL}
		},
	}
	for name, open := range fresh {
		t.Run(name, func(t *testing.T) {
			var where []string
			run := func(args ...string) (string, string, int) {
				t.Helper()
				out, errOut, code := runCost(t, "", append(args, where...)...)
				if code != ExitOK && args[0] == "import" && !slices.Contains(args, "--append") {
					t.Fatalf("%v: %d %s", args, code, errOut)
				}
				return out, errOut, code
			}
			billed := func() string {
				t.Helper()
				out, _, code := run("report", "--by", "provider", "--month", "2024-09", "-o", "csv")
				if code != ExitOK {
					t.Fatalf("report: %d", code)
				}
				return out
			}
			where = open(t)
			run("import", focusSample)
			whole := billed()

			where = open(t)
			run("import", part1)
			out, _, _ := run("import", part2)
			if !strings.Contains(out, "Replaced what was stored for AWS:1234567890123 2024-09: ") ||
				!strings.Contains(out, " from part-1.csv.") || !strings.Contains(out, "add it with --append") {
				t.Errorf("part 2 alone:\n%s", out)
			}
			if alone := billed(); alone == whole {
				t.Errorf("part 2 alone has the costs of the whole export:\n%s", alone)
			}

			where = open(t)
			run("import", part1)
			out, errOut, code := run("import", "--append", part2)
			if code != ExitOK || !strings.Contains(out, "Added to what was stored for AWS:1234567890123 2024-09: ") || strings.Contains(out, "Replaced") {
				t.Errorf("part 2 appended: %d\n%s%s", code, out, errOut)
			}
			both := billed()
			if both != whole {
				t.Errorf("both parts:\n%s\nthe whole export:\n%s", both, whole)
			}
			_, errOut, code = run("import", "--append", part2)
			if code != ExitProblems || !strings.Contains(errOut, "part-2.csv: invalid billing data: already imported: its charges are counted in ") {
				t.Errorf("part 2 appended twice: %d %s", code, errOut)
			}
			if billed() != both {
				t.Error("a refused append changed the costs")
			}
		})
	}
}

// TestCostExampleSample imports the README's sample export with the demo
// platform: it is allocated to the demo's teams, apps and environments,
// and its budgets show their states in their own currency.
func TestCostExampleSample(t *testing.T) {
	const path = "examples/costs/focus-alpenrose-2024-09.csv"
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil || !strings.Contains(string(readme), "cost import "+path+" --data .socle") {
		t.Errorf("the README's cost tour does not import %s (%v)", path, err)
	}
	sample := filepath.Join("..", "..", path)
	if st, err := os.Stat(sample); err != nil || st.Size() > 1<<20 {
		t.Fatalf("the sample: %v, %d bytes", err, st.Size())
	}
	data := t.TempDir()
	if _, errOut, code := runCost(t, "", "import", sample, "--data", data, "--repo", example); code != ExitOK {
		t.Fatalf("import: %d %s", code, errOut)
	}
	out, _, _ := runCost(t, "", "report", "--by", "team,app,env", "-o", "json", "--data", data, "--repo", example)
	var rep cost.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var total, unallocated money.Amount
	for _, r := range rep.Rows {
		for _, d := range []cost.Dim{cost.DimTeam, cost.DimApp, cost.DimEnv} {
			seen[string(d)+"="+r.Keys[d]] = true
		}
		total = total.Add(r.Billed)
		if r.Keys[cost.DimTeam] == cost.Unallocated {
			unallocated = unallocated.Add(r.Billed)
		}
	}
	for _, want := range []string{"team=bookings", "team=guest-experience", "team=platform", "app=api", "app=web", "app=worker",
		"env=dev", "env=preprod", "env=prod", "env=sandbox"} {
		if !seen[want] {
			t.Errorf("nothing allocated to %s", want)
		}
	}
	if cost.Percent(unallocated, total) > 10 {
		t.Errorf("%.2f of %.2f EUR allocated to no team", unallocated, total)
	}
	out, _, _ = runCost(t, "", "budgets", "-o", "json", "--data", data, "--repo", example)
	var bud cost.BudgetReport
	if err := json.Unmarshal([]byte(out), &bud); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, b := range bud.Budgets {
		status[b.Name] = b.Status
		if b.Actual.IsZero() || b.Currency != "EUR" || len(b.OtherCurrencies) > 0 {
			t.Errorf("budget %s: %+v", b.Name, b)
		}
	}
	if status["bookings-monthly"] != "warning" || status["sandbox-cap"] != "over" || status["prod-monthly"] != "ok" {
		t.Errorf("budget states %v", status)
	}
}

// TestCostResolvesServerAndToken: the cost commands find the server and
// the token where every command does (SOCLE_SERVER and SOCLE_TOKEN, then
// the file socle login writes), and --output is still checked. The cost
// command once had a PersistentPreRun of its own, which cobra runs instead
// of the root's: it spoke to the default server without a token.
func TestCostResolvesServerAndToken(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "socle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mux := http.NewServeMux()
	api.Mount(mux, server.CostHandlers(&cost.Service{Store: sqlite.NewCostStore(db)}))
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error":{"code":"unauthorized","message":"no or a bad token"}}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()

	check := func(how string) {
		t.Helper()
		seen = nil
		out, errOut, code := run(t, "cost", "report", "--month", "2024-09", "-o", "json")
		if code != ExitOK || len(seen) != 1 || !strings.Contains(out, `"from": "2024-09-01"`) {
			t.Errorf("%s: exit %d, the server saw %q\nstdout:\n%s\nstderr:\n%s", how, code, seen, out, errOut)
		}
	}
	t.Setenv("SOCLE_SERVER", srv.URL)
	t.Setenv("SOCLE_TOKEN", "s3cret")
	check("SOCLE_SERVER and SOCLE_TOKEN")

	t.Setenv("SOCLE_SERVER", "")
	t.Setenv("SOCLE_TOKEN", "")
	cfg := filepath.Join(t.TempDir(), "config.json")
	t.Setenv("SOCLE_CONFIG", cfg)
	if err := os.WriteFile(cfg, []byte(`{"server": "`+srv.URL+`", "token": "s3cret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	check("the login file")

	if _, errOut, code := run(t, "cost", "report", "-o", "xml"); code != ExitUsage || !strings.Contains(errOut, "--output must be text, json or csv") {
		t.Errorf("-o xml: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run(t, "status", "-o", "csv"); code != ExitUsage || !strings.Contains(errOut, "--output must be text or json") {
		t.Errorf("status -o csv: exit %d, %s", code, errOut)
	}
}
