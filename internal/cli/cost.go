package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socle-dev/socle/internal/clock"
	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/spec"
	"github.com/socle-dev/socle/internal/wiring"
)

// costOpts are the flags every cost command shares.
type costOpts struct {
	g    *globals
	data string // work on this data directory instead of through the server
	repo string // the platform repository of --data mode
}

func newCostCmd(g *globals) *cobra.Command {
	o := &costOpts{g: g}
	cmd := &cobra.Command{
		Use:   "cost",
		Short: "FinOps: import billing exports; costs by team, app, environment; budgets; anomalies",
		Long: `Cost imports cloud billing exports — FOCUS 1.0 to 1.3 (CSV, gzip, Parquet), AWS CUR 2.0,
Azure cost details (EA, MCA, pay-as-you-go; actual or amortized), Google Cloud billing
export (CSV or JSON lines) — allocates every charge to a team, app, environment and zone
with the tags and rules of socle.yaml and what the platform repository says (an app's
owner, an environment's zone), and reports on daily aggregates.

The commands speak to the socle server (--server), or work directly on a data directory
with --data DIR (its database is DIR/socle.db; the platform repository is --repo, by
default DIR/repo if it exists, else the current directory).

Importing a billing period of a source (provider and billing account) again replaces it, and
says what it replaced: a restated month never adds to the old one (import --append adds the
parts of a multi-part export instead). Azure's actual and amortized cost exports are two views
of one period, never added. Exit code 1 for a file with bad rows (nothing of it is imported),
2 for bad flags, 3 for anything else.`,
		// reports also write CSV; the root's PersistentPreRun checks it and
		// resolves the server and token, as for every command
		Annotations: map[string]string{outputsAnnotation: "text,json,csv"},
	}
	cmd.PersistentFlags().StringVar(&o.data, "data", "", "work directly on this data directory instead of through the server")
	cmd.PersistentFlags().StringVar(&o.repo, "repo", "", "the platform repository of --data (default: DIR/repo if it exists, else the current directory)")
	cmd.AddCommand(o.importCmd(), o.reportCmd(), o.budgetsCmd(), o.anomaliesCmd(), o.exportCmd())
	return cmd
}

// noCSV refuses -o csv for commands without a table to write.
func (o *costOpts) noCSV() error {
	if o.g.output == "csv" {
		return withCode(ExitUsage, errors.New("-o csv is for cost report; use text or json"))
	}
	return nil
}

func (o *costOpts) importCmd() *cobra.Command {
	var appendParts bool
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import billing exports: files, or directories whose files are the parts of one export each",
		Long: `Import reads billing exports. The files of one directory are the parts of one export and are
imported together; each file given on its own is a batch of its own.

A batch replaces what was stored for each (source, billing period) it holds, and says what it
replaced: a month restated by the provider never adds to the old one. A part of a multi-part
export imported alone therefore replaces the parts before it: import the parts together, or
add them one by one with --append (a file imported before is then refused, never counted twice).

Azure's actual and amortized cost exports are told apart by their rows (purchases of
reservations and savings plans, covered usage, unused commitment), not their names, and are
kept as two views of one period that are never added: billed cost from the actual export,
effective cost from the amortized one.`,
		Example: `  socle cost import examples/costs/focus-alpenrose-2024-09.csv --data .socle
  socle cost import exports/2024-09/                      # the parts of one export
  socle cost import --append exports/2024-09/part_0_0003.csv`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.noCSV(); err != nil {
				return err
			}
			var batches [][]cost.File
			for _, a := range args {
				bs, err := cost.Batches(a)
				if err != nil {
					return withCode(ExitUsage, err)
				}
				if len(bs) == 0 {
					return withCode(ExitUsage, fmt.Errorf("no billing file (.csv, .csv.gz, .parquet, .jsonl) under %s", a))
				}
				batches = append(batches, bs...)
			}
			mode := cost.Replace
			if appendParts {
				mode = cost.Append
			}
			var results []*cost.ImportResult
			var err error
			if o.data != "" {
				results, err = costDirect(o, cmd, func(ctx context.Context, svc *cost.Service) ([]*cost.ImportResult, error) {
					var out []*cost.ImportResult
					for _, b := range batches {
						res, err := svc.Import(ctx, b, mode)
						if err != nil {
							return out, err
						}
						out = append(out, res)
					}
					return out, nil
				})
			} else {
				for _, b := range batches {
					var res cost.ImportResult
					if err = o.upload(cmd.Context(), b, mode, &res); err != nil {
						break
					}
					results = append(results, &res)
				}
			}
			if o.g.json() {
				if results == nil {
					results = []*cost.ImportResult{}
				}
				if perr := o.g.printJSON(results); perr != nil {
					return perr
				}
			} else {
				for i, r := range results {
					if i > 0 {
						fmt.Fprintln(o.g.stdout)
					}
					r.WriteText(o.g.stdout)
				}
			}
			return costExit(err)
		},
	}
	cmd.Flags().BoolVar(&appendParts, "append", false, "add to what is stored for the periods instead of replacing it: the parts of a multi-part export, one by one")
	return cmd
}

func (o *costOpts) reportCmd() *cobra.Command {
	var by, month, from, to string
	var filters []string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Costs grouped by dimensions over a month or a range of days",
		Long: `Report sums billed, effective (amortized) and list cost, grouped by the dimensions of --by
(day, month, provider, account, service, region, category, team, app, env, zone, source,
period) and always by currency: costs in different currencies are never added. Without
--month or --from/--to, the month of the last day with data.`,
		Example: `  socle cost report --by team,env --month 2024-09
  socle cost report --by app --filter team=bookings --from 2024-09-01 --to 2024-09-15 -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"by": {by}}
			costSetRange(q, month, from, to)
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return withCode(ExitUsage, fmt.Errorf("--filter %q is not DIMENSION=VALUE[,VALUE]", f))
				}
				q.Add(k, v)
			}
			rep, err := costRun(o, cmd, "/api/v1/costs/report", q, func(ctx context.Context, svc *cost.Service) (*cost.Report, error) {
				req, err := cost.ReportRequestOf(q)
				if err != nil {
					return nil, withCode(ExitUsage, err)
				}
				return svc.Report(ctx, req)
			})
			if err != nil {
				return err
			}
			switch o.g.output {
			case "json":
				return o.g.printJSON(rep)
			case "csv":
				return rep.WriteCSV(o.g.raw) // data for programs, exact
			}
			return rep.WriteText(o.g.stdout)
		},
	}
	cmd.Flags().StringVar(&by, "by", "team", "dimensions to group by, comma-separated")
	costRangeFlags(cmd, &month, &from, &to)
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "only costs whose DIMENSION is one of the VALUES: team=a,b (repeatable)")
	return cmd
}

func (o *costOpts) budgetsCmd() *cobra.Command {
	var month string
	cmd := &cobra.Command{
		Use:   "budgets",
		Short: "The budgets of budgets.yaml: spend so far, month-end forecast, alerts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.noCSV(); err != nil {
				return err
			}
			q := url.Values{}
			if month != "" {
				q.Set("month", month)
			}
			rep, err := costRun(o, cmd, "/api/v1/costs/budgets", q, func(ctx context.Context, svc *cost.Service) (*cost.BudgetReport, error) {
				m, err := cost.MonthOfQuery(q)
				if err != nil {
					return nil, withCode(ExitUsage, err)
				}
				return svc.Budgets(ctx, m)
			})
			if err != nil {
				return err
			}
			if o.g.json() {
				return o.g.printJSON(rep)
			}
			return rep.WriteText(o.g.stdout)
		},
	}
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (default: the last month with data)")
	return cmd
}

func (o *costOpts) anomaliesCmd() *cobra.Command {
	var by, month, from, to, weeks, k, minImpact, minRelative string
	cmd := &cobra.Command{
		Use:   "anomalies",
		Short: "Days whose cost left its weekly baseline, per team, app, environment, service, account",
		Long: `Anomalies compares each day's effective cost of every team, app, environment, service and
account (or the dimensions of --by) with the same weekday of the previous weeks: the
median, plus or minus k scaled median absolute deviations. A day outside that band is an
anomaly when it also differs by at least --min-impact (in its currency) and --min-relative
of the baseline. Without a range, the last 14 days with data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.noCSV(); err != nil {
				return err
			}
			q := url.Values{}
			costSetRange(q, month, from, to)
			for name, v := range map[string]string{"by": by, "weeks": weeks, "k": k, "min_impact": minImpact, "min_relative": minRelative} {
				if v != "" {
					q.Set(name, v)
				}
			}
			rep, err := costRun(o, cmd, "/api/v1/costs/anomalies", q, func(ctx context.Context, svc *cost.Service) (*cost.AnomalyReport, error) {
				req, err := cost.AnomalyRequestOf(q)
				if err != nil {
					return nil, withCode(ExitUsage, err)
				}
				return svc.Anomalies(ctx, req)
			})
			if err != nil {
				return err
			}
			if o.g.json() {
				return o.g.printJSON(rep)
			}
			return rep.WriteText(o.g.stdout)
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "dimensions, comma-separated (default team,app,env,service,account)")
	costRangeFlags(cmd, &month, &from, &to)
	cmd.Flags().StringVar(&weeks, "weeks", "", "weeks of history in the baseline (default 8)")
	cmd.Flags().StringVar(&k, "k", "", "band width in scaled MADs (default 3)")
	cmd.Flags().StringVar(&minImpact, "min-impact", "", "absolute floor, in the cost's currency (default 10)")
	cmd.Flags().StringVar(&minRelative, "min-relative", "", "relative floor, a fraction of the baseline (default 0.2)")
	return cmd
}

func (o *costOpts) exportCmd() *cobra.Command {
	var month, from, to, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Allocated daily costs as FOCUS CSV, for an existing PowerBI or Kibana",
		Long: `Export writes the allocated daily aggregates as FOCUS CSV: the FOCUS columns socle keeps,
Tags with the allocation, and x_Team, x_Application, x_Environment, x_Zone, x_Source.
Without a range, the month of the last day with data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			costSetRange(q, month, from, to)
			w := o.g.raw // FOCUS CSV, for programs: exact
			if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return withCode(ExitError, err)
				}
				defer f.Close()
				w = f
			}
			if o.data != "" {
				_, err := costDirect(o, cmd, func(ctx context.Context, svc *cost.Service) (struct{}, error) {
					from, to, err := cost.RangeOf(q)
					if err != nil {
						return struct{}{}, withCode(ExitUsage, err)
					}
					return struct{}{}, svc.Export(ctx, w, from, to)
				})
				return err
			}
			return o.call(cmd.Context(), http.MethodGet, "/api/v1/costs/export?"+q.Encode(), nil, "", w)
		},
	}
	costRangeFlags(cmd, &month, &from, &to)
	cmd.Flags().StringVarP(&out, "file", "f", "", "write to this file instead of standard output")
	return cmd
}

func costRangeFlags(cmd *cobra.Command, month, from, to *string) {
	cmd.Flags().StringVar(month, "month", "", "a month, YYYY-MM")
	cmd.Flags().StringVar(from, "from", "", "first day, YYYY-MM-DD")
	cmd.Flags().StringVar(to, "to", "", "last day, YYYY-MM-DD, included")
}

func costSetRange(q url.Values, month, from, to string) {
	for k, v := range map[string]string{"month": month, "from": from, "to": to} {
		if v != "" {
			q.Set(k, v)
		}
	}
}

// costRun answers a command from the data directory with local, or from the
// server's path with the same query: both give the same wire type.
func costRun[T any](o *costOpts, cmd *cobra.Command, path string, q url.Values, local func(context.Context, *cost.Service) (*T, error)) (*T, error) {
	if o.data != "" {
		return costDirect(o, cmd, local)
	}
	var buf bytes.Buffer
	if err := o.call(cmd.Context(), http.MethodGet, path+"?"+q.Encode(), nil, "", &buf); err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return nil, withCode(ExitError, fmt.Errorf("the server's answer: %w", err))
	}
	return v, nil
}

// costDirect runs fn on a service over the data directory.
func costDirect[T any](o *costOpts, cmd *cobra.Command, fn func(context.Context, *cost.Service) (T, error)) (T, error) {
	var zero T
	svc, closeDB, err := o.service(cmd)
	if err != nil {
		return zero, err
	}
	defer closeDB()
	v, err := fn(cmd.Context(), svc)
	return v, costExit(err)
}

// service opens the data directory's database and the platform repository.
func (o *costOpts) service(cmd *cobra.Command) (*cost.Service, func(), error) {
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return nil, nil, withCode(ExitError, err)
	}
	repo, err := o.loadRepo()
	if err != nil {
		return nil, nil, err
	}
	db, err := wiring.OpenDB(cmd.Context(), filepath.Join(o.data, wiring.DBFile), clock.System)
	if err != nil {
		return nil, nil, withCode(ExitError, err)
	}
	svc := &cost.Service{
		Store: db.Costs,
		Repo:  func() *spec.Repo { return repo },
	}
	return svc, func() { db.Close() }, nil
}

// loadRepo loads --repo, or DIR/repo, or the current directory; without a
// socle.yaml there (and no --repo), costs are allocated by tags alone.
func (o *costOpts) loadRepo() (*spec.Repo, error) {
	dir, explicit := o.repo, o.repo != ""
	if !explicit {
		dir = "."
		if st, err := os.Stat(filepath.Join(o.data, "repo")); err == nil && st.IsDir() {
			dir = filepath.Join(o.data, "repo")
		}
		if _, err := os.Stat(filepath.Join(dir, spec.PlatformFile)); err != nil {
			fmt.Fprintf(o.g.stderr, "no platform repository (no %s in %s): costs are allocated by the default tag keys, and there are no budgets\n",
				spec.PlatformFile, dir)
			return nil, nil
		}
	}
	repo, problems, err := loadDir(dir)
	if err != nil {
		return nil, err
	}
	if problems.Errors() > 0 {
		for _, p := range problems {
			fmt.Fprintln(o.g.stderr, p)
		}
		return nil, withCode(ExitProblems, fmt.Errorf("%s does not validate (%d problems)", dir, problems.Errors()))
	}
	return repo, nil
}

// costExit gives an error the exit code its kind calls for.
func costExit(err error) error {
	var ee *exitError
	switch {
	case err == nil, errors.As(err, &ee):
		return err
	case errors.Is(err, cost.ErrInvalid):
		return withCode(ExitProblems, err)
	}
	return withCode(ExitError, err)
}

// upload sends one batch to the server as a multipart body, streamed.
func (o *costOpts) upload(ctx context.Context, files []cost.File, mode cost.Mode, into *cost.ImportResult) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for _, f := range files {
				part, err := mw.CreateFormFile("file", f.Name)
				if err != nil {
					return err
				}
				in, err := os.Open(f.Path)
				if err != nil {
					return err
				}
				_, err = io.Copy(part, in)
				in.Close()
				if err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	var buf bytes.Buffer
	path := "/api/v1/costs/imports"
	if mode == cost.Append {
		path += "?append=true"
	}
	if err := o.call(ctx, http.MethodPost, path, pr, mw.FormDataContentType(), &buf); err != nil {
		pr.CloseWithError(err)
		return err
	}
	return json.Unmarshal(buf.Bytes(), into)
}

// call sends a request to the server and copies a successful answer to out;
// an error answer becomes an error with the exit code its status calls for.
func (o *costOpts) call(ctx context.Context, method, path string, body io.Reader, contentType string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.g.server, "/")+path, body)
	if err != nil {
		return withCode(ExitUsage, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if o.g.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.g.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return withCode(ExitError, fmt.Errorf("socle server at %s: %w (is `socle up` running? set --server, or use --data DIR)", o.g.server, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		_, err := io.Copy(out, resp.Body)
		return err
	}
	var e struct {
		Error struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	msg := e.Error.Message
	if msg == "" {
		msg = resp.Status
	}
	code := ExitError
	switch resp.StatusCode {
	case http.StatusBadRequest:
		code = ExitUsage
	case http.StatusUnprocessableEntity, http.StatusForbidden:
		code = ExitProblems
	}
	return withCode(code, errors.New(msg))
}
