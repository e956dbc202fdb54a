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
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/api"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/golden"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/store/sqlite"
)

var focusSample = filepath.Join("..", "..", "..", "shared", "testdata", "focus", "focus_1.0_sample_1000.csv")

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
	api.Mount(mux, api.CostHandlers(&cost.Service{Store: sqlite.NewCostStore(db), Repo: func() *spec.Repo { return repo }}))
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
