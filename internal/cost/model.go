package cost

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/socle-dev/socle/internal/money"
)

// Day is a calendar day in UTC, counted from 1970-01-01.
type Day int32

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day {
	return civilDay(t.UTC().Date())
}

// civilDay converts a proleptic Gregorian date to days since 1970-01-01
// (Howard Hinnant's days_from_civil), without the cost of time.Date.
func civilDay(y int, m time.Month, d int) Day {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (int(m) + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return Day(era*146097 + doe - 719468)
}

// Date returns the year, month and day of d.
func (d Day) Date() (int, time.Month, int) {
	z := int(d) + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era = (z - 146096) / 146097
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	dd := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, time.Month(m), dd
}

// Time returns midnight UTC of d.
func (d Day) Time() time.Time {
	y, m, dd := d.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
}

// Month returns the month d is in.
func (d Day) Month() Month {
	y, m, _ := d.Date()
	return MonthOf(y, m)
}

// Weekday returns the day of the week of d.
func (d Day) Weekday() time.Weekday {
	return time.Weekday((int(d)%7 + 7 + 4) % 7) // 1970-01-01 was a Thursday
}

func (d Day) String() string {
	y, m, dd := d.Date()
	return fmt.Sprintf("%04d-%02d-%02d", y, int(m), dd)
}

// ParseDay parses 2006-01-02.
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Errorf("day %q is not YYYY-MM-DD", s)
	}
	return DayOf(t), nil
}

// MarshalText writes d as 2006-01-02.
func (d Day) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads 2006-01-02.
func (d *Day) UnmarshalText(b []byte) error {
	v, err := ParseDay(string(b))
	*d = v
	return err
}

// Month is a calendar month, counted as year*12 + month-1.
type Month int32

// MonthOf returns the month m of year y.
func MonthOf(y int, m time.Month) Month { return Month(y*12 + int(m) - 1) }

// ParseMonth parses 2006-01.
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return 0, fmt.Errorf("month %q is not YYYY-MM", s)
	}
	return MonthOf(t.Year(), t.Month()), nil
}

// First returns the first day of m.
func (m Month) First() Day { return civilDay(int(m)/12, time.Month(int(m)%12+1), 1) }

// End returns the first day of the month after m.
func (m Month) End() Day { return (m + 1).First() }

// Days returns the number of days of m.
func (m Month) Days() int { return int(m.End() - m.First()) }

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", int(m)/12, int(m)%12+1) }

// MarshalText writes m as 2006-01.
func (m Month) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads 2006-01.
func (m *Month) UnmarshalText(b []byte) error {
	v, err := ParseMonth(string(b))
	*m = v
	return err
}

// Dim is a dimension that costs are grouped or filtered by.
type Dim string

// The dimensions of the daily aggregates. Currency is always a grouping
// dimension of totals: costs are never summed across currencies.
const (
	DimDay      Dim = "day"
	DimMonth    Dim = "month" // the month of the day, not the billing period
	DimSource   Dim = "source"
	DimPeriod   Dim = "period" // the billing period
	DimProvider Dim = "provider"
	DimAccount  Dim = "account"
	DimService  Dim = "service"
	DimRegion   Dim = "region"
	DimCategory Dim = "category"
	DimCurrency Dim = "currency"
	DimTeam     Dim = "team"
	DimApp      Dim = "app"
	DimEnv      Dim = "env"
	DimZone     Dim = "zone"
)

// Dims lists every dimension, in the order reports show them.
var Dims = []Dim{DimDay, DimMonth, DimSource, DimPeriod, DimProvider, DimAccount, DimService, DimRegion,
	DimCategory, DimCurrency, DimTeam, DimApp, DimEnv, DimZone}

// ParseDim accepts a dimension's name and a few spellings people use for it.
func ParseDim(s string) (Dim, error) {
	switch k := strings.ToLower(strings.TrimSpace(s)); k {
	case "environment":
		return DimEnv, nil
	case "application":
		return DimApp, nil
	case "chargecategory", "charge_category", "charge-category":
		return DimCategory, nil
	case "subaccount", "sub_account", "subscription", "project":
		return DimAccount, nil
	case "date":
		return DimDay, nil
	default:
		for _, d := range Dims {
			if string(d) == k {
				return d, nil
			}
		}
		return "", fmt.Errorf("unknown dimension %q (known: %s)", s, dimList(Dims))
	}
}

// ParseDims parses a comma-separated list of dimensions.
func ParseDims(s string) ([]Dim, error) {
	var out []Dim
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		d, err := ParseDim(part)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func dimList(ds []Dim) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// Unallocated is the owner of what no tag or rule allocates.
const Unallocated = "unallocated"

// Key identifies one daily aggregate.
type Key struct {
	Day      Day    `json:"day"`
	Provider string `json:"provider"`
	Account  string `json:"account"`
	Service  string `json:"service"`
	Region   string `json:"region"`
	Category string `json:"category"`
	Currency string `json:"currency"`
	Team     string `json:"team"`
	App      string `json:"app"`
	Env      string `json:"env"`
	Zone     string `json:"zone"`
}

// Amounts are the three costs FOCUS defines: billed (what the invoice says),
// effective (amortized: commitments spread over what used them) and list
// (public prices). They are exact (see package money), and written in JSON
// as decimal strings.
type Amounts struct {
	Billed    money.Amount `json:"billed"`
	Effective money.Amount `json:"effective"`
	List      money.Amount `json:"list"`
}

// Add adds b to a. It panics on overflow, which sums of what an import
// accepts never reach (see addChecked).
func (a *Amounts) Add(b Amounts) {
	a.Billed = a.Billed.Add(b.Billed)
	a.Effective = a.Effective.Add(b.Effective)
	a.List = a.List.Add(b.List)
}

// addChecked adds b to a, and reports false, leaving a as it was, when a
// sum would overflow: what an import adds comes from files of any size.
func (a *Amounts) addChecked(b Amounts) bool {
	billed, ok1 := a.Billed.AddChecked(b.Billed)
	eff, ok2 := a.Effective.AddChecked(b.Effective)
	list, ok3 := a.List.AddChecked(b.List)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	*a = Amounts{billed, eff, list}
	return true
}

// errTooMuch is the error of sums out of money.Amount's range.
var errTooMuch = fmt.Errorf("%w: the costs add up to more than socle can hold (10^26 in one currency)", ErrInvalid)

// Row is one daily aggregate.
type Row struct {
	Key
	Amounts
}

// View says which costs of a billing period a set of charges carries. Most
// exports carry all three (billed, effective, list) in every row. Azure
// writes two exports of the same charges instead: actual cost, which bills
// commitments (reservations, savings plans) when they are bought, and
// amortized cost, which spreads them over the usage they covered and the
// hours left unused. socle keeps both as two views of one billing period
// and never adds them: billed and list cost come from the actual view,
// effective cost from the amortized one; a view alone gives all three, as
// well as it can.
type View string

// The views of a billing period.
const (
	ViewFull      View = ""          // every cost in every row: FOCUS, CUR, Google Cloud, Azure without commitments
	ViewActual    View = "actual"    // Azure actual cost
	ViewAmortized View = "amortized" // Azure amortized cost
)

// Period is everything a batch holds for one (source, billing period,
// view): it replaces what was stored for it, or adds to it (see Mode).
type Period struct {
	// Source names where the costs come from: the provider and billing
	// account, e.g. "AWS:123456789012".
	Source string `json:"source"`
	// Month is the billing period.
	Month Month `json:"period"`
	// View is the view of the period the rows are.
	View View `json:"view,omitempty"`
	// Charges is how many billing rows were read.
	Charges int64 `json:"charges"`
	// Rows are the daily aggregates.
	Rows []Row `json:"-"`
	// Coverage says how the period's costs were allocated, per day of
	// their charges (Coverage.Day), so that a report over some days
	// describes exactly the charges it sums.
	Coverage []Coverage `json:"coverage,omitempty"`
}

// Method says how a dimension of a charge was allocated.
type Method string

// The allocation methods, from the most to the least direct.
const (
	ByTag      Method = "tag"         // a resource tag named it
	ByRule     Method = "rule"        // an allocation rule of socle.yaml set it
	ByPlatform Method = "platform"    // socle derived it: an app's owner, an environment's zone, a zone's account
	NotFound   Method = "unallocated" // nothing did
)

// Coverage sums the costs of one allocation method of one dimension.
type Coverage struct {
	// Day is the day of the charges in a Period's coverage; reports sum
	// days away.
	Day      Day    `json:"-"`
	Dim      Dim    `json:"dim"`
	Method   Method `json:"method"`
	Currency string `json:"currency"`
	Charges  int64  `json:"charges"`
	Amounts
}

// FileInfo describes one imported file.
type FileInfo struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Format Format `json:"format"`
	// View is the Azure view the file was recognized as, from its rows.
	View    View  `json:"view,omitempty"`
	Charges int64 `json:"charges"`
}

// Batch is the result of reading a set of files that are imported together:
// the parts of one export.
type Batch struct {
	Files   []FileInfo `json:"files"`
	Periods []Period   `json:"periods"`
}

// ImportRecord is what the store remembers of one imported batch.
type ImportRecord struct {
	ID      int64      `json:"id"`
	Time    time.Time  `json:"time"`
	Files   []FileInfo `json:"files"`
	Periods []string   `json:"periods"` // "source period"
	Charges int64      `json:"charges"`
}

// Cond restricts a dimension to some values.
type Cond struct {
	Dim    Dim      `json:"dim"`
	Values []string `json:"values"`
}

// Query selects daily aggregates and groups them.
type Query struct {
	// From is the first day, To the day after the last; zero means unbounded.
	From, To Day
	// Where conditions, all of which must hold.
	Where []Cond
	// By are the grouping dimensions; currency is always added.
	By []Dim
}

// Total is one group of a query.
type Total struct {
	// Keys are the values of the query's By dimensions, in that order.
	Keys     []string `json:"keys,omitempty"`
	Currency string   `json:"currency"`
	Amounts
}

// Mode says what an import does with what was stored for the periods it
// holds.
type Mode uint8

const (
	// Replace replaces what was stored for each (source, billing period,
	// view) of the batch: a restated month never adds to the old one. A
	// full view replaces every view of its period; an Azure view replaces
	// itself and a full view, never the other Azure view.
	Replace Mode = iota
	// Append adds the batch to what was stored: the parts of a multi-part
	// export imported one by one. A full view joins the one view stored
	// (an Azure export's part without commitments); a part of an Azure view
	// turns a full view stored into that view.
	Append
)

func (m Mode) String() string {
	if m == Append {
		return "append"
	}
	return "replace"
}

// Prior is what was stored for a (source, billing period, view) before an
// import replaced it or added to it.
type Prior struct {
	Source  string  `json:"source"`
	Period  Month   `json:"period"`
	View    View    `json:"view,omitempty"`
	Charges int64   `json:"charges"`
	Totals  []Total `json:"totals"`
	// ImportedAt and Files say which import last wrote it.
	ImportedAt time.Time `json:"importedAt"`
	Files      []string  `json:"files"`
}

// ErrAlreadyImported is wrapped by the error of an import in Append mode of
// a file whose content was imported before: appending it would count its
// charges twice.
var ErrAlreadyImported = fmt.Errorf("%w: already imported", ErrInvalid)

// ErrAmbiguousView is wrapped by the error of an import that cannot tell
// which Azure view a file's charges belong to.
var ErrAmbiguousView = fmt.Errorf("%w: cannot tell actual from amortized cost", ErrInvalid)

// Store keeps daily aggregates, import records, coverage and budget alerts.
// Implementations are safe for concurrent use and pass the suite of package
// cost/costtest.
type Store interface {
	// ImportBatch stores a batch in one transaction, as mode says, and
	// records its files as an import. It returns what was stored before
	// for the periods it replaced (Replace) or added to (Append), in the
	// order of the batch's periods. When both Azure views of a (source,
	// billing period) are stored, Totals and Coverage take billed and list
	// cost (and coverage's charges) from the actual view and effective cost
	// from the amortized one, never adding them. On error nothing changes.
	ImportBatch(ctx context.Context, b *Batch, mode Mode) ([]Prior, error)
	// Totals calls fn with the sums of the aggregates q selects, grouped by
	// q.By and currency, ordered by the keys then currency.
	Totals(ctx context.Context, q Query, fn func(Total) error) error
	// Span returns the first and last day with data; ok is false when there
	// is none.
	Span(ctx context.Context) (first, last Day, ok bool, err error)
	// Coverage sums the allocation coverage of the charges of the days
	// [from, to) (zero: unbounded), by dimension, method and currency,
	// counting each Azure view for the costs it supplies to Totals.
	Coverage(ctx context.Context, from, to Day) ([]Coverage, error)
	// Imports returns the latest imports, newest first.
	Imports(ctx context.Context, limit int) ([]ImportRecord, error)
	// Imported reports whether a file with this SHA-256 has been imported.
	Imported(ctx context.Context, sha256 string) (bool, error)
	// PutAlert records a, unless an alert with the same budget, month,
	// threshold and kind exists; it reports whether it recorded it.
	PutAlert(ctx context.Context, a Alert) (created bool, err error)
	// Alerts returns the alerts of a month (zero: of every month), oldest first;
	// pending restricts them to those not yet notified.
	Alerts(ctx context.Context, month Month, pending bool) ([]Alert, error)
	// MarkNotified records that the alert was handed to the notifier.
	MarkNotified(ctx context.Context, id int64, at time.Time) error
}
