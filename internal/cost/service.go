package cost

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/socle-dev/socle/internal/spec"
)

// Service is socle's FinOps as the CLI on a data directory and the API in
// the server both use it. Its fields are set once, before first use.
type Service struct {
	Store Store
	// Repo returns the platform repository in force: its costs section,
	// budgets, apps, environments and zones. It may return nil: costs are
	// then allocated by the default tag keys and there are no budgets.
	Repo func() *spec.Repo
	// Notifier receives budget alerts; nil leaves them pending in the store.
	Notifier Notifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives what the service does; nil discards it.
	Log *slog.Logger

	mu        sync.Mutex
	allocRepo *spec.Repo
	alloc     *Allocator
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Service) repo() *spec.Repo {
	if s.Repo == nil {
		return nil
	}
	return s.Repo()
}

// allocator returns the allocator of the repository in force, built once
// per repository.
func (s *Service) allocator() *Allocator {
	r := s.repo()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alloc == nil || r != s.allocRepo {
		s.alloc, s.allocRepo = NewAllocator(r), r
	}
	return s.alloc
}

// ImportResult is what one batch brought in.
type ImportResult struct {
	Files   []FileInfo      `json:"files"`
	Periods []PeriodSummary `json:"periods"`
	// Mode is how the batch was imported: replace or append.
	Mode string `json:"mode"`
	// Replaced is what was stored for the batch's periods and is gone
	// (Replace), or what the batch was added to (Append): a part of a
	// multi-part export imported alone replaces the parts before it.
	Replaced   []Prior `json:"replaced,omitempty"`
	AppendedTo []Prior `json:"appendedTo,omitempty"`
	// Alerts are the budget alerts the import raised.
	Alerts []Alert `json:"alerts,omitempty"`
}

// PeriodSummary describes one (source, billing period, view) of an import.
type PeriodSummary struct {
	Source   string     `json:"source"`
	Period   Month      `json:"period"`
	View     View       `json:"view,omitempty"`
	Charges  int64      `json:"charges"`
	Rows     int        `json:"rows"`
	Totals   []Total    `json:"totals"`
	Coverage []Coverage `json:"coverage"`
}

// Import reads files that form one export into the store as mode says,
// then checks the budgets of the months they touched.
func (s *Service) Import(ctx context.Context, files []File, mode Mode) (*ImportResult, error) {
	b, err := ReadBatch(ctx, s.allocator(), files)
	if err != nil {
		return nil, err
	}
	priors, err := s.Store.ImportBatch(ctx, b, mode)
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("storing costs: %w", err)
	}
	res := &ImportResult{Files: b.Files, Mode: mode.String()}
	if mode == Append {
		res.AppendedTo = priors
	} else {
		res.Replaced = priors
	}
	months := map[Month]bool{}
	for _, p := range b.Periods {
		sum := PeriodSummary{Source: p.Source, Period: p.Month, View: p.View, Charges: p.Charges, Rows: len(p.Rows),
			Coverage: mergeCoverage(p.Coverage)}
		byCur := map[string]*Amounts{}
		for _, r := range p.Rows {
			months[r.Day.Month()] = true
			a := byCur[r.Currency]
			if a == nil {
				a = &Amounts{}
				byCur[r.Currency] = a
			}
			a.Add(r.Amounts)
		}
		for cur, a := range byCur {
			sum.Totals = append(sum.Totals, Total{Currency: cur, Amounts: *a})
		}
		slices.SortFunc(sum.Totals, func(a, b Total) int { return cmp.Compare(a.Currency, b.Currency) })
		res.Periods = append(res.Periods, sum)
	}
	names := make([]string, len(b.Files))
	for i, f := range b.Files {
		names[i] = f.Name
	}
	log := s.log()
	log.Info("costs imported", "files", strings.Join(names, ", "), "periods", len(b.Periods), "mode", mode.String())
	for _, p := range res.Replaced {
		// a part of an export alone replaces the parts imported before
		// it: say so where nobody reads an import's answer (the watcher)
		log.Warn("cost import replaced stored costs", "source", p.Source, "period", p.Period.String(), "view", string(p.View),
			"charges", p.Charges, "totals", totalsString(p.Totals), "imported", p.ImportedAt, "files", strings.Join(p.Files, ", "))
	}
	// budgets alert on this month and, for late data, the last one
	current := DayOf(s.now()).Month()
	for m := range months {
		if m != current && m != current-1 {
			continue
		}
		alerts, err := s.checkBudgets(ctx, m)
		if err != nil {
			return res, fmt.Errorf("costs imported, but checking budgets: %w", err)
		}
		res.Alerts = append(res.Alerts, alerts...)
	}
	return res, nil
}

// totalsString writes totals per currency as "12.50 EUR billed, 10.00 EUR
// effective; …".
func totalsString(ts []Total) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s %s billed, %s %s effective", t.Billed.Display(), t.Currency, t.Effective.Display(), t.Currency)
	}
	if len(parts) == 0 {
		return "no cost"
	}
	return strings.Join(parts, "; ")
}

// ImportPath imports a file, or every billing file under a directory: the
// files of one directory form one batch (the parts of an export land in
// one directory), batches are imported in path order, and the first that
// fails stops the import.
func (s *Service) ImportPath(ctx context.Context, path string, mode Mode) ([]*ImportResult, error) {
	batches, err := Batches(path)
	if err != nil {
		return nil, err
	}
	var out []*ImportResult
	for _, files := range batches {
		res, err := s.Import(ctx, files, mode)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// Batches lists the billing files under path, grouped by directory.
func Batches(path string) ([][]File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return [][]File{{{Path: path, Name: filepath.Base(path)}}}, nil
	}
	byDir := map[string][]File{}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !IsBillingFile(d.Name()) {
			return nil
		}
		rel, _ := filepath.Rel(path, p)
		dir := filepath.Dir(p)
		byDir[dir] = append(byDir[dir], File{Path: p, Name: filepath.ToSlash(rel)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	out := make([][]File, 0, len(dirs))
	for _, d := range dirs {
		fs := byDir[d]
		slices.SortFunc(fs, func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
		out = append(out, fs)
	}
	return out, nil
}

// IsBillingFile reports whether a file name looks like a billing export
// rather than a manifest, a temporary file or a hidden one.
func IsBillingFile(name string) bool {
	l := strings.ToLower(name)
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "~") || strings.Contains(l, "manifest") ||
		strings.HasSuffix(l, ".tmp") || strings.HasSuffix(l, ".part") {
		return false
	}
	l = strings.TrimSuffix(l, ".gz")
	for _, ext := range []string{".csv", ".tsv", ".txt", ".parquet", ".json", ".jsonl", ".ndjson"} {
		if strings.HasSuffix(l, ext) {
			return true
		}
	}
	return false
}

// collect runs a query into a slice.
func (s *Service) collect(ctx context.Context, q Query) ([]Total, error) {
	var out []Total
	err := s.Store.Totals(ctx, q, func(t Total) error {
		out = append(out, t)
		return nil
	})
	return out, err
}

// Imports returns the latest imports, newest first.
func (s *Service) Imports(ctx context.Context, limit int) ([]ImportRecord, error) {
	return s.Store.Imports(ctx, limit)
}

// ParseRange reads the range of days a command or a request names: a
// month (2006-01), or from and to days (2006-01-02, both inclusive; either
// may be left out). It returns [from, to); zeros when nothing is named.
func ParseRange(month, from, to string) (Day, Day, error) {
	if month != "" {
		if from != "" || to != "" {
			return 0, 0, errors.New("name a month or a range of days, not both")
		}
		m, err := ParseMonth(month)
		if err != nil {
			return 0, 0, err
		}
		return m.First(), m.End(), nil
	}
	var f, t Day
	var err error
	if from != "" {
		if f, err = ParseDay(from); err != nil {
			return 0, 0, err
		}
	}
	if to != "" {
		if t, err = ParseDay(to); err != nil {
			return 0, 0, err
		}
		t++
	}
	switch {
	case f != 0 && t == 0:
		t = f.Month().End()
	case f == 0 && t != 0:
		f = (t - 1).Month().First()
	}
	if t != 0 && t <= f {
		return 0, 0, fmt.Errorf("the range %s to %s is empty", from, to)
	}
	return f, t, nil
}

// orLastMonth returns from and to, or when both are zero the month of the
// last day with data (the current month when there is none).
func (s *Service) orLastMonth(ctx context.Context, from, to Day) (Day, Day, error) {
	if from != 0 || to != 0 {
		return from, to, nil
	}
	_, last, ok, err := s.Store.Span(ctx)
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		last = DayOf(s.now())
	}
	return last.Month().First(), last.Month().End(), nil
}
