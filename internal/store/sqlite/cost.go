package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
	"github.com/socle-dev/socle/internal/store/internal/contract"
)

var _ cost.Store = (*CostStore)(nil)

// CostStore keeps package cost's daily aggregates, imports, coverage and
// budget alerts in the tables of migration 0010, in the same file as the DB.
// Amounts are exact: two integer columns each, summed by money_sum (see
// money.go).
type CostStore struct {
	db    *sql.DB
	check func() error // the DB's CheckFile
	// mu serializes this store's writers in the process, so that they queue
	// here rather than on SQLite's busy handler.
	mu sync.Mutex
}

// NewCostStore returns the cost store of db.
func NewCostStore(db *DB) *CostStore { return &CostStore{db: db.SQL(), check: db.CheckFile} }

func (s *CostStore) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return checkedWrite(ctx, s.db, s.check, fn)
}

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
	err = s.write(ctx, func(tx *sql.Tx) error {
		priors = nil
		if mode == cost.Append {
			// appending a file whose charges are counted would count
			// them twice
			for _, f := range b.Files {
				var source, period, view string
				var at int64
				err := tx.QueryRowContext(ctx, `SELECT p.source, p.period, p.view, i.at FROM cost_period_files f
					JOIN cost_periods p ON p.id = f.period_id JOIN cost_imports i ON i.id = p.import_id
					WHERE f.sha256 = ? LIMIT 1`, f.SHA256).Scan(&source, &period, &view, &at)
				if err == nil {
					what := source + " " + period
					if view != "" {
						what += " (" + view + " cost)"
					}
					return fmt.Errorf("%s: %w: its charges are counted in %s, last written %s; appending it would count them twice",
						f.Name, cost.ErrAlreadyImported, what, time.UnixMicro(at).UTC().Format(time.RFC3339))
				}
				if !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO cost_imports (at, charges, files, periods) VALUES (?, ?, ?, ?)`,
			time.Now().UnixMicro(), charges, string(files), string(pj))
		if err != nil {
			return err
		}
		importID, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for _, f := range b.Files {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cost_import_files (import_id, sha256) VALUES (?, ?)`, importID, f.SHA256); err != nil {
				return err
			}
		}
		insRow, err := tx.PrepareContext(ctx, `INSERT INTO cost_daily (period_id, day, provider, account, service, region,
			category, currency, team, app, env, zone, billed_units, billed_pico, effective_units, effective_pico, list_units, list_pico)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insRow.Close()
		insCov, err := tx.PrepareContext(ctx, `INSERT INTO cost_coverage (period_id, day, dim, method, currency, charges,
			billed_units, billed_pico, effective_units, effective_pico, list_units, list_pico) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insCov.Close()
		for _, p := range b.Periods {
			stored, err := storedViews(ctx, tx, p.Source, p.Month)
			if err != nil {
				return err
			}
			var pid int64
			if mode == cost.Append {
				target, err := contract.AppendTarget(p, stored)
				if err != nil {
					return err
				}
				if target != nil {
					prior, err := priorOf(ctx, tx, p, target)
					if err != nil {
						return err
					}
					// a full view that a part of an Azure view joins
					// becomes that view
					if prior.View == cost.ViewFull {
						prior.View = p.View
					}
					priors = append(priors, prior)
					pid = target.ID
					if _, err := tx.ExecContext(ctx, `UPDATE cost_periods SET view = ?, charges = charges + ?, import_id = ? WHERE id = ?`,
						string(prior.View), p.Charges, importID, pid); err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, `DELETE FROM cost_monthly WHERE period_id = ?`, pid); err != nil {
						return err
					}
				}
			} else {
				for _, st := range stored {
					if !contract.Replaced(p, st) {
						continue // the other Azure view stays
					}
					prior, err := priorOf(ctx, tx, p, &st)
					if err != nil {
						return err
					}
					priors = append(priors, prior)
					// its rows and coverage go with it (ON DELETE CASCADE)
					if _, err := tx.ExecContext(ctx, `DELETE FROM cost_periods WHERE id = ?`, st.ID); err != nil {
						return err
					}
				}
			}
			if pid == 0 {
				res, err := tx.ExecContext(ctx, `INSERT INTO cost_periods (source, period, view, charges, import_id) VALUES (?, ?, ?, ?, ?)`,
					p.Source, p.Month.String(), string(p.View), p.Charges, importID)
				if err != nil {
					return err
				}
				if pid, err = res.LastInsertId(); err != nil {
					return err
				}
			}
			for _, r := range p.Rows {
				amounts, err := amountsArgs(r.Amounts)
				if err != nil {
					return err
				}
				if _, err := insRow.ExecContext(ctx, append([]any{pid, r.Day.String(), r.Provider, r.Account, r.Service, r.Region,
					r.Category, r.Currency, r.Team, r.App, r.Env, r.Zone}, amounts...)...); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO cost_monthly (period_id, month, provider, account, service, region,
				category, currency, team, app, env, zone, billed_units, billed_pico, effective_units, effective_pico, list_units, list_pico)
				SELECT period_id, month, provider, account, service, region, category, currency, team, app, env, zone,
					money_units(billed), money_pico(billed), money_units(effective), money_pico(effective), money_units(list), money_pico(list)
				FROM (SELECT period_id, substr(day, 1, 7) AS month, provider, account, service, region, category, currency, team, app, env, zone,
						money_sum(billed_units, billed_pico) AS billed, money_sum(effective_units, effective_pico) AS effective,
						money_sum(list_units, list_pico) AS list
					FROM cost_daily WHERE period_id = ?
					GROUP BY substr(day, 1, 7), provider, account, service, region, category, currency, team, app, env, zone)`, pid); err != nil {
				return err
			}
			for _, f := range b.Files {
				if _, err := tx.ExecContext(ctx, `INSERT INTO cost_period_files (period_id, sha256, name) VALUES (?, ?, ?)`,
					pid, f.SHA256, f.Name); err != nil {
					return err
				}
			}
			for _, c := range p.Coverage {
				amounts, err := amountsArgs(c.Amounts)
				if err != nil {
					return err
				}
				if _, err := insCov.ExecContext(ctx, append([]any{pid, c.Day.String(), string(c.Dim), string(c.Method), c.Currency, c.Charges},
					amounts...)...); err != nil {
					return err
				}
			}
			// which view supplies which cost, now that the period's views
			// may have changed
			if _, err := tx.ExecContext(ctx, `UPDATE cost_periods SET
				billed_w = CASE WHEN view = 'amortized' AND EXISTS (SELECT 1 FROM cost_periods o
					WHERE o.source = cost_periods.source AND o.period = cost_periods.period AND o.view = 'actual') THEN 0 ELSE 1 END,
				effective_w = CASE WHEN view = 'actual' AND EXISTS (SELECT 1 FROM cost_periods o
					WHERE o.source = cost_periods.source AND o.period = cost_periods.period AND o.view = 'amortized') THEN 0 ELSE 1 END
				WHERE source = ? AND period = ?`, p.Source, p.Month.String()); err != nil {
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

func storedViews(ctx context.Context, tx *sql.Tx, source string, m cost.Month) ([]contract.StoredView, error) {
	return queryAll(ctx, tx, func(sc scanner) (p contract.StoredView, err error) {
		return p, sc.Scan(&p.ID, &p.View, &p.Charges, &p.ImportID)
	}, `SELECT id, view, charges, import_id FROM cost_periods WHERE source = ? AND period = ? ORDER BY view`, source, m.String())
}

// priorOf describes a stored view before p changes it.
func priorOf(ctx context.Context, tx *sql.Tx, p cost.Period, st *contract.StoredView) (cost.Prior, error) {
	pr := cost.Prior{Source: p.Source, Period: p.Month, View: st.View, Charges: st.Charges, Totals: []cost.Total{}}
	totals, err := queryAll(ctx, tx, func(sc scanner) (t cost.Total, err error) {
		return t, sc.Scan(&t.Currency, amountsOf{&t.Amounts})
	}, `SELECT currency, money_sum(billed_units, billed_pico, effective_units, effective_pico, list_units, list_pico)
		FROM cost_daily WHERE period_id = ? GROUP BY currency ORDER BY currency`, st.ID)
	if err != nil {
		return pr, err
	}
	for _, t := range totals {
		t.Keys = []string{}
		pr.Totals = append(pr.Totals, t)
	}
	var at int64
	if err := tx.QueryRowContext(ctx, `SELECT at FROM cost_imports WHERE id = ?`, st.ImportID).Scan(&at); err != nil {
		return pr, err
	}
	pr.ImportedAt = time.UnixMicro(at).UTC()
	pr.Files, err = queryAll(ctx, tx, func(sc scanner) (name string, err error) { return name, sc.Scan(&name) },
		`SELECT name FROM cost_period_files WHERE period_id = ? ORDER BY rowid`, st.ID)
	if err != nil {
		return pr, err
	}
	if pr.Files == nil {
		pr.Files = []string{}
	}
	return pr, nil
}

// weightedSums is the exact sum of the three costs of table t, in one
// money_sum, each column multiplied by its period's weight (0 or 1, so
// never out of range): billed and list by billed_w, effective by
// effective_w.
func weightedSums(t string) string {
	var args []string
	for _, c := range [][2]string{{"billed", "billed_w"}, {"effective", "effective_w"}, {"list", "billed_w"}} {
		args = append(args, t+"."+c[0]+"_units * p."+c[1], t+"."+c[0]+"_pico * p."+c[1])
	}
	return "money_sum(" + strings.Join(args, ", ") + ")"
}

// amountsArgs returns the six column values of a, for an INSERT.
func amountsArgs(a cost.Amounts) ([]any, error) { return amountArgsOf(a.Billed, a.Effective, a.List) }

// amountArgsOf returns the two column values of each amount, in order.
func amountArgsOf(as ...money.Amount) ([]any, error) {
	out := make([]any, 0, 2*len(as))
	for _, a := range as {
		units, pico, err := amountArgs(a)
		if err != nil {
			return nil, err
		}
		out = append(out, units, pico)
	}
	return out, nil
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
		where = append(where, "d.month >= ?")
		args = append(args, q.From.Month().String())
	case q.From != 0:
		where = append(where, "d.day >= ?")
		args = append(args, q.From.String())
	}
	switch {
	case monthly && q.To != 0:
		where = append(where, "d.month < ?")
		args = append(args, q.To.Month().String())
	case q.To != 0:
		where = append(where, "d.day < ?")
		args = append(args, q.To.String())
	}
	for _, c := range q.Where {
		expr, err := col(c.Dim)
		if err != nil {
			return err
		}
		if len(c.Values) == 0 {
			where = append(where, "0")
			continue
		}
		where = append(where, expr+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(c.Values)), ", ")+")")
		for _, v := range c.Values {
			args = append(args, v)
		}
	}
	query := "SELECT " + strings.Join(append(sel, "d.currency", weightedSums("d")), ", ") + " FROM " + table + " d JOIN cost_periods p ON p.id = d.period_id"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " GROUP BY " + strings.Join(group, ", ") + " ORDER BY " + strings.Join(group, ", ")
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("querying costs: %w", err)
	}
	defer rows.Close()
	n := len(q.By)
	keys := make([]string, n)
	dest := make([]any, n+2)
	for i := range keys {
		dest[i] = &keys[i]
	}
	var t cost.Total
	dest[n], dest[n+1] = &t.Currency, amountsOf{&t.Amounts}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
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
	var lo, hi sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT min(day), max(day) FROM cost_daily`).Scan(&lo, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("reading the cost span: %w", err)
	}
	if !lo.Valid {
		return 0, 0, false, nil
	}
	if first, err = cost.ParseDay(lo.String); err == nil {
		last, err = cost.ParseDay(hi.String)
	}
	return first, last, err == nil, err
}

// Coverage implements cost.Store.
func (s *CostStore) Coverage(ctx context.Context, from, to cost.Day) ([]cost.Coverage, error) {
	var where []string
	var args []any
	if from != 0 {
		where = append(where, "c.day >= ?")
		args = append(args, from.String())
	}
	if to != 0 {
		where = append(where, "c.day < ?")
		args = append(args, to.String())
	}
	q := `SELECT c.dim, c.method, c.currency, sum(c.charges * p.billed_w), ` + weightedSums("c") + `
		FROM cost_coverage c JOIN cost_periods p ON p.id = c.period_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.db.QueryContext(ctx, q+" GROUP BY c.dim, c.method, c.currency", args...)
	if err != nil {
		return nil, fmt.Errorf("reading cost coverage: %w", err)
	}
	defer rows.Close()
	out := []cost.Coverage{}
	for rows.Next() {
		var c cost.Coverage
		if err := rows.Scan(&c.Dim, &c.Method, &c.Currency, &c.Charges, amountsOf{&c.Amounts}); err != nil {
			return nil, fmt.Errorf("reading cost coverage: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading cost coverage: %w", err)
	}
	cost.SortCoverage(out)
	return out, nil
}

// Imports implements cost.Store.
func (s *CostStore) Imports(ctx context.Context, limit int) ([]cost.ImportRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, charges, files, periods FROM cost_imports ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing cost imports: %w", err)
	}
	defer rows.Close()
	out := []cost.ImportRecord{}
	for rows.Next() {
		var r cost.ImportRecord
		var at int64
		var files, periods []byte
		if err := rows.Scan(&r.ID, &at, &r.Charges, &files, &periods); err != nil {
			return nil, fmt.Errorf("listing cost imports: %w", err)
		}
		r.Time = time.UnixMicro(at).UTC()
		if err := errors.Join(json.Unmarshal(files, &r.Files), json.Unmarshal(periods, &r.Periods)); err != nil {
			return nil, fmt.Errorf("listing cost imports: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing cost imports: %w", err)
	}
	return out, nil
}

// Imported implements cost.Store.
func (s *CostStore) Imported(ctx context.Context, sha256 string) (bool, error) {
	var ok bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM cost_import_files WHERE sha256 = ?)`, sha256).Scan(&ok)
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
	amounts, err := amountArgsOf(a.Amount, a.Actual, a.Forecast)
	if err != nil {
		return false, fmt.Errorf("recording budget alert %s: %w", a.Budget, err)
	}
	var created bool
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO cost_alerts (budget, month, threshold, kind, currency, amount_units, amount_pico, actual_units, actual_pico,
				forecast_units, forecast_pico, notify, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (budget, month, threshold, kind) DO NOTHING`,
			append(append([]any{a.Budget, a.Month.String(), a.Threshold, string(a.Kind), a.Currency}, amounts...),
				string(notify), a.CreatedAt.UnixMicro())...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		created = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("recording budget alert %s: %w", a.Budget, err)
	}
	return created, nil
}

// Alerts implements cost.Store.
func (s *CostStore) Alerts(ctx context.Context, month cost.Month, pending bool) ([]cost.Alert, error) {
	q := `SELECT id, budget, month, threshold, kind, currency, amount_units, amount_pico, actual_units, actual_pico,
			forecast_units, forecast_pico, notify, created_at, notified_at
		FROM cost_alerts WHERE 1`
	var args []any
	if month != 0 {
		q += ` AND month = ?`
		args = append(args, month.String())
	}
	if pending {
		q += ` AND notified_at IS NULL`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing budget alerts: %w", err)
	}
	defer rows.Close()
	var out []cost.Alert
	for rows.Next() {
		var a cost.Alert
		var month string
		var notify []byte
		var created int64
		var notified sql.NullInt64
		var parts [6]int64
		if err := rows.Scan(&a.ID, &a.Budget, &month, &a.Threshold, &a.Kind, &a.Currency, &parts[0], &parts[1], &parts[2], &parts[3],
			&parts[4], &parts[5], &notify, &created, &notified); err != nil {
			return nil, fmt.Errorf("listing budget alerts: %w", err)
		}
		a.Amount = money.FromParts(parts[0], parts[1])
		a.Actual = money.FromParts(parts[2], parts[3])
		a.Forecast = money.FromParts(parts[4], parts[5])
		if err := errors.Join(a.Month.UnmarshalText([]byte(month)), json.Unmarshal(notify, &a.Notify)); err != nil {
			return nil, fmt.Errorf("listing budget alerts: %w", err)
		}
		a.CreatedAt = time.UnixMicro(created).UTC()
		if notified.Valid {
			t := time.UnixMicro(notified.Int64).UTC()
			a.NotifiedAt = &t
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing budget alerts: %w", err)
	}
	return out, nil
}

// MarkNotified implements cost.Store.
func (s *CostStore) MarkNotified(ctx context.Context, id int64, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE cost_alerts SET notified_at = ? WHERE id = ?`, at.UnixMicro(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("marking budget alert %d notified: %w", id, err)
	}
	return nil
}
