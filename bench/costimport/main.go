// Command costimport measures socle's cost import and report against the
// goals of the FinOps issue, and beside DuckDB doing the same aggregation:
//
//  1. it generates a FOCUS file of -rows rows (default 500,000) from the
//     FinOps Foundation sample, spreading copies of its rows over the month;
//  2. it imports the file on one core (GOMAXPROCS=1) in a child process of
//     its own, so that the peak memory it reports (VmHWM) is the import's,
//     and prints rows/s for reading and aggregating, and for storing too;
//  3. it runs DuckDB (test/duckdb, from the npm registry) on the same file
//     with one thread, the same daily aggregation, and compares the totals
//     per provider and service;
//  4. it stores a year of daily aggregates for 1,000 apps and times report
//     queries over them.
//
// Run it from the repository root: go run ./bench/costimport
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/socle-dev/socle/bench/internal/peak"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

func main() {
	sample := flag.String("sample", "testdata/focus/focus_1.0_sample_1000.csv", "the FOCUS sample")
	rows := flag.Int("rows", 500000, "rows of the generated file")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed at the end)")
	duck := flag.String("duckdb", "test/duckdb", "directory of the DuckDB reference (npm ci --prefix test/duckdb)")
	apps := flag.Int("apps", 1000, "apps of the report benchmark")
	repo := flag.String("repo", "examples/platform", "platform repository whose costs section allocates the import")
	child := flag.String("child", "", "internal: run one measurement in this process")
	flag.Parse()
	var err error
	switch *child {
	case "import":
		err = childImport(flag.Arg(0), flag.Arg(1), flag.Arg(2))
	case "":
		err = run(*sample, *rows, *dir, *duck, *repo, *apps)
	default:
		err = fmt.Errorf("unknown -child %q", *child)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "costimport:", err)
		os.Exit(1)
	}
}

func run(sample string, rows int, dir, duck, repoDir string, apps int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "costimport")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	file := filepath.Join(dir, "focus.csv")
	start := time.Now()
	size, err := generate(sample, file, rows)
	if err != nil {
		return err
	}
	fmt.Printf("generated %s: %d rows, %.0f MB, in %s\n\n", file, rows, float64(size)/1e6, time.Since(start).Round(time.Millisecond))

	// the import, alone in a process on one core
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-child", "import", file, filepath.Join(dir, "import.db"), repoDir)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	var im importResult
	if err := json.Unmarshal(out, &im); err != nil {
		return fmt.Errorf("import output: %w", err)
	}
	fmt.Println("socle import (GOMAXPROCS=1, allocated by the rules of " + repoDir + ")")
	fmt.Printf("  read + allocate + aggregate: %8.0f rows/s  (%s, %d daily aggregates)   goal ≥ 200,000 rows/s\n",
		float64(rows)/im.Read.Seconds(), im.Read.Round(time.Millisecond), im.Aggregates)
	fmt.Printf("  … and store in SQLite:       %8.0f rows/s  (%s)\n", float64(rows)/(im.Read+im.Store).Seconds(),
		(im.Read + im.Store).Round(time.Millisecond))
	fmt.Printf("  peak memory (VmHWM):         %8.1f MB                                      goal < 150 MB\n\n", float64(im.PeakKB)/1024)

	// DuckDB on the same file
	if err := compareDuckDB(duck, file, im); err != nil {
		fmt.Printf("DuckDB: not run: %v\n\n", err)
	}

	return benchReport(dir, apps)
}

// generate writes n rows made of the sample's rows: each copy gets its own
// Id and resource, and moves its charge period by whole days within
// September 2024, so that the file has the shape of a month's export.
func generate(sample, out string, n int) (int64, error) {
	in, err := os.Open(sample)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	r := csv.NewReader(in)
	head, err := r.Read()
	if err != nil {
		return 0, err
	}
	recs, err := r.ReadAll()
	if err != nil {
		return 0, err
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	w.Write(head)
	rec := make([]string, len(head))
	for i := range n {
		src := recs[i%len(recs)]
		copy(rec, src)
		k := i / len(recs)
		rec[col["Id"]] = strconv.Itoa(i + 1)
		if id := src[col["ResourceId"]]; id != "" && id != "NULL" {
			rec[col["ResourceId"]] = id + "-" + strconv.Itoa(k%50)
		}
		for _, c := range []string{"ChargePeriodStart", "ChargePeriodEnd"} {
			rec[col[c]] = shiftDay(src[col[c]], k%29)
		}
		w.Write(rec)
	}
	w.Flush()
	if err := errors.Join(w.Error(), bw.Flush(), f.Close()); err != nil {
		return 0, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// shiftDay moves a "2024-09-18 22:00:00" timestamp by days, staying in
// September for September rows.
func shiftDay(ts string, days int) string {
	t, err := time.Parse(time.DateTime, ts)
	if err != nil || t.Month() != time.September {
		return ts
	}
	d := (t.Day()-1+days)%30 + 1
	return time.Date(t.Year(), t.Month(), d, t.Hour(), t.Minute(), t.Second(), 0, time.UTC).Format(time.DateTime)
}

type importResult struct {
	Read, Store time.Duration
	Aggregates  int
	PeakKB      int64
	// Totals per "provider|service|currency": billed, effective, exact
	Totals map[string][2]money.Amount
}

// childImport imports one file into a fresh database, allocated by the
// repository's rules, and prints what it measured as JSON.
func childImport(file, db, repoDir string) error {
	ctx := context.Background()
	repo, problems := spec.Load(os.DirFS(repoDir))
	if problems.Errors() > 0 {
		return fmt.Errorf("%s: %w", repoDir, problems.Err())
	}
	start := time.Now()
	b, err := cost.ReadBatch(ctx, cost.NewAllocator(repo), []cost.File{{Path: file}})
	if err != nil {
		return err
	}
	read := time.Since(start)
	d, err := wiring.OpenDB(ctx, db, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	st := d.Costs
	start = time.Now()
	if _, err := st.ImportBatch(ctx, b, cost.Replace); err != nil {
		return err
	}
	res := importResult{Read: read, Store: time.Since(start), Totals: map[string][2]money.Amount{}}
	for _, p := range b.Periods {
		res.Aggregates += len(p.Rows)
	}
	err = st.Totals(ctx, cost.Query{By: []cost.Dim{cost.DimProvider, cost.DimService}}, func(t cost.Total) error {
		res.Totals[t.Keys[0]+"|"+t.Keys[1]+"|"+t.Currency] = [2]money.Amount{t.Billed, t.Effective}
		return nil
	})
	if err != nil {
		return err
	}
	res.PeakKB = peak.KB()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// compareDuckDB runs the same daily aggregation in DuckDB and compares
// totals per provider and service: DuckDB's DECIMAL sums, written as text,
// must equal socle's exactly.
func compareDuckDB(dir, file string, im importResult) error {
	script := filepath.Join(dir, "query.mjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		return fmt.Errorf("DuckDB is not installed: npm ci --prefix %s", dir)
	}
	abs, _ := filepath.Abs(file)
	src := fmt.Sprintf(`read_csv(%s, header=true, nullstr=['NULL',''], all_varchar=true)`, sqlString(abs))
	daily := `SELECT CAST(CAST(ChargePeriodStart AS TIMESTAMP) AS DATE) AS day, ProviderName, SubAccountId, ServiceName,
		RegionId, ChargeCategory, BillingCurrency,
		sum(CAST(BilledCost AS DECIMAL(38,15))) AS billed, sum(CAST(EffectiveCost AS DECIMAL(38,15))) AS effective,
		sum(CAST(ListCost AS DECIMAL(38,15))) AS list
		FROM ` + src + ` GROUP BY ALL`
	q := `WITH daily AS (` + daily + `) SELECT ProviderName AS provider, ServiceName AS service, BillingCurrency AS currency,
		CAST(sum(billed) AS VARCHAR) AS billed, CAST(sum(effective) AS VARCHAR) AS effective, count(*) AS aggregates
		FROM daily GROUP BY ALL`
	cmd := exec.Command("node", script, q)
	cmd.Env = append(os.Environ(), "DUCKDB_THREADS=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("%w: %s", err, stderr.String())
	}
	var rows []struct {
		Provider, Service, Currency string
		Billed, Effective           money.Amount
		Aggregates                  json.Number
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return err
	}
	ms := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "duckdb_ms="))
	qms, _ := strconv.ParseFloat(ms, 64)
	fmt.Println("DuckDB 1 thread, same file, same daily aggregation (exact DECIMAL sums)")
	fmt.Printf("  query: %s (%s with node's start)\n", (time.Duration(qms * float64(time.Millisecond))).Round(time.Millisecond), wall.Round(time.Millisecond))
	var maxDiff money.Amount
	for _, r := range rows {
		got, ok := im.Totals[r.Provider+"|"+r.Service+"|"+r.Currency]
		if !ok {
			return fmt.Errorf("socle has no total for %s / %s", r.Provider, r.Service)
		}
		for _, d := range []money.Amount{got[0].Sub(r.Billed).Abs(), got[1].Sub(r.Effective).Abs()} {
			if d.Cmp(maxDiff) > 0 {
				maxDiff = d
			}
		}
	}
	if len(rows) != len(im.Totals) {
		return fmt.Errorf("DuckDB has %d provider/service totals, socle %d", len(rows), len(im.Totals))
	}
	fmt.Printf("  per provider and service (%d groups): largest difference from socle %s (0 required: both are exact)\n\n", len(rows), maxDiff)
	if !maxDiff.IsZero() {
		return fmt.Errorf("totals differ by %s", maxDiff)
	}
	return nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// benchReport stores a year of daily aggregates for n apps (each in three
// environments, owned by one of n/10 teams) and times report queries.
func benchReport(dir string, n int) error {
	ctx := context.Background()
	d, err := wiring.OpenDB(ctx, filepath.Join(dir, "report.db"), nil)
	if err != nil {
		return err
	}
	defer d.Close()
	st := d.Costs
	envs := []string{"dev", "preprod", "prod"}
	services := []string{"Amazon Elastic Compute Cloud", "Amazon Simple Storage Service", "Amazon Relational Database Service"}
	first := cost.MonthOf(2024, time.January)
	quarter := money.MustParse("0.25")
	total := 0
	start := time.Now()
	for m := first; m < first+12; m++ {
		p := cost.Period{Source: "AWS:123456789012", Month: m}
		for day := m.First(); day < m.End(); day++ {
			for a := range n {
				for e, env := range envs {
					v := money.FromUnits(int64((a*7 + e*3 + int(day)) % 100)).Add(quarter)
					eff, _ := v.MulRat(big.NewRat(9, 10))
					list, _ := v.MulRat(big.NewRat(6, 5))
					p.Rows = append(p.Rows, cost.Row{
						Key: cost.Key{Day: day, Provider: "AWS", Account: fmt.Sprintf("acct-%d", e), Service: services[a%3],
							Region: "eu-west-1", Category: "Usage", Currency: "EUR", Team: fmt.Sprintf("team-%03d", a%(n/10+1)),
							App: fmt.Sprintf("app-%04d", a), Env: env, Zone: "apps"},
						Amounts: cost.Amounts{Billed: v, Effective: eff, List: list},
					})
				}
			}
		}
		total += len(p.Rows)
		if _, err := st.ImportBatch(ctx, &cost.Batch{Periods: []cost.Period{p}}, cost.Replace); err != nil {
			return err
		}
	}
	fmt.Printf("report queries over a year of daily aggregates: %d apps × 3 environments × 366 days = %d rows (stored in %s)\n",
		n, total, time.Since(start).Round(time.Millisecond))
	svc := &cost.Service{Store: st}
	sept := cost.MonthOf(2024, time.September)
	for _, c := range []struct {
		name string
		req  cost.ReportRequest
	}{
		{"--by team,env --month 2024-09", cost.ReportRequest{By: []cost.Dim{cost.DimTeam, cost.DimEnv}, From: sept.First(), To: sept.End()}},
		{"--by app --month 2024-09", cost.ReportRequest{By: []cost.Dim{cost.DimApp}, From: sept.First(), To: sept.End()}},
		{"--by day,team --month 2024-09 (daily chart)", cost.ReportRequest{By: []cost.Dim{cost.DimDay, cost.DimTeam}, From: sept.First(), To: sept.End()}},
		{"--by app --from 2024-01-01 --to 2024-12-31", cost.ReportRequest{By: []cost.Dim{cost.DimApp}, From: first.First(), To: (first + 12).First()}},
		{"--by team --from 2024-01-01 --to 2024-12-31", cost.ReportRequest{By: []cost.Dim{cost.DimTeam}, From: first.First(), To: (first + 12).First()}},
		{"--by month,team (the year)", cost.ReportRequest{By: []cost.Dim{cost.DimMonth, cost.DimTeam}, From: first.First(), To: (first + 12).First()}},
	} {
		var times []time.Duration
		var groups int
		for range 5 {
			start := time.Now()
			rep, err := svc.Report(ctx, c.req)
			if err != nil {
				return err
			}
			times = append(times, time.Since(start))
			groups = len(rep.Rows)
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		fmt.Printf("  %-45s median %7s  (%d groups)   goal < 200ms\n", c.name, times[len(times)/2].Round(100*time.Microsecond), groups)
	}
	return nil
}
