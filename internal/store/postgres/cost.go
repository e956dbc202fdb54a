package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

var _ cost.Store = (*CostStore)(nil)

// CostStore keeps package cost's daily aggregates, imports, coverage and
// budget alerts in the tables of migration 0010, in the DB's database.
// Amounts are numeric, exact, and summed by PostgreSQL's sum() without
// bound; a sum that money.Amount cannot hold fails the query.
type CostStore struct {
	pool *pgxpool.Pool
}

// NewCostStore returns the cost store of db.
func NewCostStore(db *DB) *CostStore { return &CostStore{pool: db.pool} }

// costLock serialises imports ("soclCOST"): an import reads the views
// stored for its periods and writes according to what it found.
const costLock = 0x736f636c434f5354

// ImportBatch implements cost.Store.
func (s *CostStore) ImportBatch(ctx context.Context, b *cost.Batch, mode cost.Mode) ([]cost.Prior, error) {
	var charges int64
	periods := make([]string, len(b.Periods))
	for i, p := range b.Periods {
		charges += p.Charges
		periods[i] = p.Source + " " + p.Month.String()
		if p.View != cost.ViewFull {
			periods[i] += " " + string(p.View)
		}
	}
	files, err := json.Marshal(b.Files)
	if err != nil {
		return nil, err
	}
	pj, err := json.Marshal(periods)
	if err != nil {
		return nil, err
	}
	var priors []cost.Prior
	err = write(ctx, s.pool, func(tx pgx.Tx) error {
		priors = nil
		if err := lock(ctx, tx, costLock); err != nil {
			return err
		}
		if mode == cost.Append {
			// appending a file whose charges are counted would count
			// them twice
			for _, f := range b.Files {
				var source, period, view string
				var at time.Time
				err := tx.QueryRow(ctx, `SELECT p.source, p.period, p.view, i.at FROM cost_period_files f
					JOIN cost_periods p ON p.id = f.period_id JOIN cost_imports i ON i.id = p.import_id
					WHERE f.sha256 = $1 LIMIT 1`, f.SHA256).Scan(&source, &period, &view, &at)
				if err == nil {
					what := source + " " + period
					if view != "" {
						what += " (" + view + " cost)"
					}
					return fmt.Errorf("%s: %w: its charges are counted in %s, last written %s; appending it would count them twice",
						f.Name, cost.ErrAlreadyImported, what, at.UTC().Format(time.RFC3339))
				}
				if !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
		}
		var importID int64
		if err := tx.QueryRow(ctx, `INSERT INTO cost_imports (at, charges, files, periods) VALUES ($1, $2, $3, $4) RETURNING id`,
			ts(time.Now()), charges, string(files), string(pj)).Scan(&importID); err != nil {
			return err
		}
		for _, f := range b.Files {
			if _, err := tx.Exec(ctx, `INSERT INTO cost_import_files (import_id, sha256) VALUES ($1, $2)`, importID, f.SHA256); err != nil {
				return err
			}
		}
		for _, p := range b.Periods {
			pid, prs, err := s.storePeriod(ctx, tx, p, mode, importID)
			if err != nil {
				return err
			}
			priors = append(priors, prs...)
			if err := s.storeRows(ctx, tx, p, pid, b.Files); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, cost.ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("importing costs: %w", err)
	}
	return priors, nil
}

// storePeriod makes room for p as mode says, and returns the ID of the
// period its rows go to, with what was stored before.
func (s *CostStore) storePeriod(ctx context.Context, tx pgx.Tx, p cost.Period, mode cost.Mode, importID int64) (int64, []cost.Prior, error) {
	stored, err := storedViews(ctx, tx, p.Source, p.Month)
	if err != nil {
		return 0, nil, err
	}
	var priors []cost.Prior
	if mode == cost.Append {
		target, err := contract.AppendTarget(p, stored)
		if err != nil {
			return 0, nil, err
		}
		if target != nil {
			prior, err := priorOf(ctx, tx, p, target)
			if err != nil {
				return 0, nil, err
			}
			// a full view that a part of an Azure view joins becomes
			// that view
			if prior.View == cost.ViewFull {
				prior.View = p.View
			}
			if _, err := tx.Exec(ctx, `UPDATE cost_periods SET view = $1, charges = charges + $2, import_id = $3 WHERE id = $4`,
				string(prior.View), p.Charges, importID, target.ID); err != nil {
				return 0, nil, err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM cost_monthly WHERE period_id = $1`, target.ID); err != nil {
				return 0, nil, err
			}
			return target.ID, []cost.Prior{prior}, nil
		}
	} else {
		for _, st := range stored {
			if !contract.Replaced(p, st) {
				continue // the other Azure view stays
			}
			prior, err := priorOf(ctx, tx, p, &st)
			if err != nil {
				return 0, nil, err
			}
			priors = append(priors, prior)
			// its rows and coverage go with it (ON DELETE CASCADE)
			if _, err := tx.Exec(ctx, `DELETE FROM cost_periods WHERE id = $1`, st.ID); err != nil {
				return 0, nil, err
			}
		}
	}
	var pid int64
	err = tx.QueryRow(ctx, `INSERT INTO cost_periods (source, period, view, charges, import_id) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		p.Source, p.Month.String(), string(p.View), p.Charges, importID).Scan(&pid)
	return pid, priors, err
}

// storeRows writes the rows, monthly sums, files and coverage of p into
// period pid, then which view supplies which cost.
func (s *CostStore) storeRows(ctx context.Context, tx pgx.Tx, p cost.Period, pid int64, files []cost.FileInfo) error {
	rows := make([][]any, len(p.Rows))
	for i, r := range p.Rows {
		rows[i] = append([]any{pid, r.Day.String(), r.Provider, r.Account, r.Service, r.Region,
			r.Category, r.Currency, r.Team, r.App, r.Env, r.Zone}, amountsArgs(r.Amounts)...)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cost_daily"}, []string{"period_id", "day", "provider", "account", "service", "region",
		"category", "currency", "team", "app", "env", "zone", "billed", "effective", "list"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO cost_monthly (period_id, month, provider, account, service, region,
			category, currency, team, app, env, zone, billed, effective, list)
		SELECT $1, substr(day, 1, 7), provider, account, service, region, category, currency, team, app, env, zone,
			sum(billed), sum(effective), sum(list)
		FROM cost_daily WHERE period_id = $1
		GROUP BY substr(day, 1, 7), provider, account, service, region, category, currency, team, app, env, zone`, pid); err != nil {
		return err
	}
	for _, f := range files {
		if _, err := tx.Exec(ctx, `INSERT INTO cost_period_files (period_id, sha256, name) VALUES ($1, $2, $3)`,
			pid, f.SHA256, f.Name); err != nil {
			return err
		}
	}
	for _, c := range p.Coverage {
		if _, err := tx.Exec(ctx, `INSERT INTO cost_coverage (period_id, day, dim, method, currency, charges, billed, effective, list)
			VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8::text::numeric, $9::text::numeric)`,
			append([]any{pid, c.Day.String(), string(c.Dim), string(c.Method), c.Currency, c.Charges}, amountsArgs(c.Amounts)...)...); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `UPDATE cost_periods SET
		billed_w = CASE WHEN view = 'amortized' AND EXISTS (SELECT 1 FROM cost_periods o
			WHERE o.source = cost_periods.source AND o.period = cost_periods.period AND o.view = 'actual') THEN 0 ELSE 1 END,
		effective_w = CASE WHEN view = 'actual' AND EXISTS (SELECT 1 FROM cost_periods o
			WHERE o.source = cost_periods.source AND o.period = cost_periods.period AND o.view = 'amortized') THEN 0 ELSE 1 END
		WHERE source = $1 AND period = $2`, p.Source, p.Month.String())
	return err
}

func storedViews(ctx context.Context, tx pgx.Tx, source string, m cost.Month) ([]contract.StoredView, error) {
	return queryAll(ctx, tx, func(sc scanner) (p contract.StoredView, err error) {
		return p, sc.Scan(&p.ID, &p.View, &p.Charges, &p.ImportID)
	}, `SELECT id, view, charges, import_id FROM cost_periods WHERE source = $1 AND period = $2 ORDER BY view`, source, m.String())
}

// priorOf describes a stored view before p changes it.
func priorOf(ctx context.Context, tx pgx.Tx, p cost.Period, st *contract.StoredView) (cost.Prior, error) {
	pr := cost.Prior{Source: p.Source, Period: p.Month, View: st.View, Charges: st.Charges, Totals: []cost.Total{}}
	totals, err := queryAll(ctx, tx, func(sc scanner) (t cost.Total, err error) {
		var sums [3]string
		if err := sc.Scan(&t.Currency, &sums[0], &sums[1], &sums[2]); err != nil {
			return t, err
		}
		return t, parseAmounts(&t.Amounts, sums)
	}, `SELECT currency, sum(billed)::text, sum(effective)::text, sum(list)::text
		FROM cost_daily WHERE period_id = $1 GROUP BY currency ORDER BY currency`, st.ID)
	if err != nil {
		return pr, err
	}
	for _, t := range totals {
		t.Keys = []string{}
		pr.Totals = append(pr.Totals, t)
	}
	if err := tx.QueryRow(ctx, `SELECT at FROM cost_imports WHERE id = $1`, st.ImportID).Scan(&pr.ImportedAt); err != nil {
		return pr, err
	}
	pr.ImportedAt = pr.ImportedAt.UTC()
	pr.Files, err = queryAll(ctx, tx, func(sc scanner) (name string, err error) { return name, sc.Scan(&name) },
		`SELECT name FROM cost_period_files WHERE period_id = $1 ORDER BY id`, st.ID)
	if err != nil {
		return pr, err
	}
	if pr.Files == nil {
		pr.Files = []string{}
	}
	return pr, nil
}

// weightedSums is the exact sums of the three costs of table t, as text,
// each column multiplied by its period's weight (0 or 1): billed and list
// by billed_w, effective by effective_w.
func weightedSums(t string) string {
	var cols []string
	for _, c := range [][2]string{{"billed", "billed_w"}, {"effective", "effective_w"}, {"list", "billed_w"}} {
		cols = append(cols, "sum("+t+"."+c[0]+" * p."+c[1]+")::text")
	}
	return strings.Join(cols, ", ")
}

// parseAmounts reads the three sums of weightedSums into a.
func parseAmounts(a *cost.Amounts, sums [3]string) error {
	for i, dst := range []*money.Amount{&a.Billed, &a.Effective, &a.List} {
		if err := dst.UnmarshalText([]byte(sums[i])); err != nil {
			return fmt.Errorf("a sum of costs: %w", err)
		}
	}
	return nil
}

// amountsArgs returns the three amounts of a as decimal text, which
// PostgreSQL reads into numeric exactly.
func amountsArgs(a cost.Amounts) []any { return amountArgs(a.Billed, a.Effective, a.List) }

func amountArgs(as ...money.Amount) []any {
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// Totals implements cost.Store. A query over whole months that does not
// look at days reads cost_monthly. Amounts are multiplied by their
// period's weights, so that the two Azure views of a period each supply
// their own costs.
func (s *CostStore) Totals(ctx context.Context, q cost.Query, fn func(cost.Total) error) error {
	monthly := (q.From == 0 || q.From == q.From.Month().First()) && (q.To == 0 || q.To == q.To.Month().First()) &&
		!slices.Contains(q.By, cost.DimDay) && !slices.ContainsFunc(q.Where, func(c cost.Cond) bool { return c.Dim == cost.DimDay })
	table, columns := "cost_daily", contract.CostColumns[monthly]
	if monthly {
		table = "cost_monthly"
	}
	var sel, group, where []string
	var args []any
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	col := func(d cost.Dim) (string, error) {
		c, ok := columns[d]
		if !ok {
			return "", fmt.Errorf("unknown cost dimension %q", d)
		}
		return c, nil
	}
	for _, d := range q.By {
		c, err := col(d)
		if err != nil {
			return err
		}
		sel = append(sel, c)
		group = append(group, c)
	}
	group = append(group, "d.currency")
	switch {
	case monthly && q.From != 0:
		where = append(where, "d.month >= "+param(q.From.Month().String()))
	case q.From != 0:
		where = append(where, "d.day >= "+param(q.From.String()))
	}
	switch {
	case monthly && q.To != 0:
		where = append(where, "d.month < "+param(q.To.Month().String()))
	case q.To != 0:
		where = append(where, "d.day < "+param(q.To.String()))
	}
	for _, c := range q.Where {
		expr, err := col(c.Dim)
		if err != nil {
			return err
		}
		where = append(where, expr+" = ANY ("+param(append([]string{}, c.Values...))+"::text[])")
	}
	query := "SELECT " + strings.Join(append(sel, "d.currency", weightedSums("d")), ", ") + " FROM " + table + " d JOIN cost_periods p ON p.id = d.period_id"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " GROUP BY " + strings.Join(group, ", ") + " ORDER BY " + strings.Join(group, ", ")
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("querying costs: %w", err)
	}
	defer rows.Close()
	n := len(q.By)
	keys := make([]string, n)
	var sums [3]string
	dest := make([]any, 0, n+4)
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	var t cost.Total
	dest = append(dest, &t.Currency, &sums[0], &sums[1], &sums[2])
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("querying costs: %w", err)
		}
		if err := parseAmounts(&t.Amounts, sums); err != nil {
			return fmt.Errorf("querying costs: %w", err)
		}
		t.Keys = append([]string(nil), keys...)
		if err := fn(t); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("querying costs: %w", err)
	}
	return nil
}

// Span implements cost.Store.
func (s *CostStore) Span(ctx context.Context) (first, last cost.Day, ok bool, err error) {
	var lo, hi *string
	if err := s.pool.QueryRow(ctx, `SELECT min(day), max(day) FROM cost_daily`).Scan(&lo, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("reading the cost span: %w", err)
	}
	if lo == nil {
		return 0, 0, false, nil
	}
	if first, err = cost.ParseDay(*lo); err == nil {
		last, err = cost.ParseDay(*hi)
	}
	return first, last, err == nil, err
}

// Coverage implements cost.Store.
func (s *CostStore) Coverage(ctx context.Context, from, to cost.Day) ([]cost.Coverage, error) {
	var where []string
	var args []any
	if from != 0 {
		args = append(args, from.String())
		where = append(where, "c.day >= $"+strconv.Itoa(len(args)))
	}
	if to != 0 {
		args = append(args, to.String())
		where = append(where, "c.day < $"+strconv.Itoa(len(args)))
	}
	q := `SELECT c.dim, c.method, c.currency, sum(c.charges * p.billed_w), ` + weightedSums("c") + `
		FROM cost_coverage c JOIN cost_periods p ON p.id = c.period_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	out, err := queryAll(ctx, s.pool, func(sc scanner) (cost.Coverage, error) {
		var c cost.Coverage
		var sums [3]string
		if err := sc.Scan(&c.Dim, &c.Method, &c.Currency, &c.Charges, &sums[0], &sums[1], &sums[2]); err != nil {
			return c, err
		}
		return c, parseAmounts(&c.Amounts, sums)
	}, q+" GROUP BY c.dim, c.method, c.currency", args...)
	if err != nil {
		return nil, fmt.Errorf("reading cost coverage: %w", err)
	}
	if out == nil {
		out = []cost.Coverage{}
	}
	cost.SortCoverage(out)
	return out, nil
}

// Imports implements cost.Store.
func (s *CostStore) Imports(ctx context.Context, limit int) ([]cost.ImportRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := queryAll(ctx, s.pool, func(sc scanner) (cost.ImportRecord, error) {
		var r cost.ImportRecord
		var files, periods []byte
		if err := sc.Scan(&r.ID, &r.Time, &r.Charges, &files, &periods); err != nil {
			return r, err
		}
		r.Time = r.Time.UTC()
		return r, errors.Join(json.Unmarshal(files, &r.Files), json.Unmarshal(periods, &r.Periods))
	}, `SELECT id, at, charges, files, periods FROM cost_imports ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing cost imports: %w", err)
	}
	if out == nil {
		out = []cost.ImportRecord{}
	}
	return out, nil
}

// Imported implements cost.Store.
func (s *CostStore) Imported(ctx context.Context, sha256 string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cost_import_files WHERE sha256 = $1)`, sha256).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("looking up a cost import: %w", err)
	}
	return ok, nil
}

// PutAlert implements cost.Store.
func (s *CostStore) PutAlert(ctx context.Context, a cost.Alert) (bool, error) {
	notify, err := json.Marshal(append([]string{}, a.Notify...))
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO cost_alerts (budget, month, threshold, kind, currency, amount, actual, forecast, notify, created_at)
		VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7::text::numeric, $8::text::numeric, $9, $10)
		ON CONFLICT (budget, month, threshold, kind) DO NOTHING`,
		append(append([]any{a.Budget, a.Month.String(), a.Threshold, string(a.Kind), a.Currency}, amountArgs(a.Amount, a.Actual, a.Forecast)...),
			string(notify), ts(a.CreatedAt))...)
	if err != nil {
		return false, fmt.Errorf("recording budget alert %s: %w", a.Budget, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Alerts implements cost.Store.
func (s *CostStore) Alerts(ctx context.Context, month cost.Month, pending bool) ([]cost.Alert, error) {
	q := `SELECT id, budget, month, threshold, kind, currency, amount::text, actual::text, forecast::text,
			notify, created_at, notified_at
		FROM cost_alerts WHERE true`
	var args []any
	if month != 0 {
		q += ` AND month = $1`
		args = append(args, month.String())
	}
	if pending {
		q += ` AND notified_at IS NULL`
	}
	out, err := queryAll(ctx, s.pool, func(sc scanner) (cost.Alert, error) {
		var a cost.Alert
		var month string
		var amounts [3]string
		var notify []byte
		var notified *time.Time
		if err := sc.Scan(&a.ID, &a.Budget, &month, &a.Threshold, &a.Kind, &a.Currency, &amounts[0], &amounts[1], &amounts[2],
			&notify, &a.CreatedAt, &notified); err != nil {
			return a, err
		}
		a.CreatedAt = a.CreatedAt.UTC()
		if notified != nil {
			t := notified.UTC()
			a.NotifiedAt = &t
		}
		return a, errors.Join(a.Month.UnmarshalText([]byte(month)), json.Unmarshal(notify, &a.Notify),
			a.Amount.UnmarshalText([]byte(amounts[0])), a.Actual.UnmarshalText([]byte(amounts[1])), a.Forecast.UnmarshalText([]byte(amounts[2])))
	}, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing budget alerts: %w", err)
	}
	return out, nil
}

// MarkNotified implements cost.Store.
func (s *CostStore) MarkNotified(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE cost_alerts SET notified_at = $1 WHERE id = $2`, ts(at), id); err != nil {
		return fmt.Errorf("marking budget alert %d notified: %w", id, err)
	}
	return nil
}
