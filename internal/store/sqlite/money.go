package sqlite

import (
	"database/sql/driver"
	"fmt"
	"strings"

	sqlite "modernc.org/sqlite"

	"github.com/socle-dev/socle/internal/cost"
	"github.com/socle-dev/socle/internal/money"
)

// Money in SQLite. An amount (package money: pico-units in 128 bits) is
// kept in two INTEGER columns, x_units and x_pico: its whole currency
// units and the pico-units (10⁻¹²) of the rest, both of the amount's sign,
// |x_pico| < 10¹². Both are plain integers a person can read in the
// sqlite3 shell (12.5 is 12 and 500000000000), and no REAL is involved.
//
// SQLite's sum() of integers is exact but stops at 2⁶³: summing picos apart
// overflows past 9.2 million rows, units past 9.2×10¹⁸. The aggregate
// money_sum(units, pico, …) adds pairs of columns in Go, in int64 while
// they fit and in 128 bits past that, and returns the exact sums as
// decimal text, separated by spaces, which money.Amount reads; it fails the
// query rather than wrap. Summing the three costs of a row in one call
// costs some 10% over three pairs of sum() (60 ms a million rows, measured
// with modernc's driver; three calls of one pair each cost twice that).
//
// money_units(x) and money_pico(x) cut an amount into the two columns: x
// is decimal text (a money_sum of one pair) or a REAL of a database written
// before money was exact (migration 0012), which becomes the shortest
// decimal that reads back as the same double, rounded half to even to 12
// decimals.
func init() {
	sqlite.MustRegisterFunction("money_sum", &sqlite.FunctionImpl{
		NArgs:         -1,
		Deterministic: true,
		MakeAggregate: func(sqlite.FunctionContext) (sqlite.AggregateFunction, error) { return &moneySum{}, nil },
	})
	sqlite.MustRegisterDeterministicScalarFunction("money_units", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		u, _, err := moneyParts(args[0])
		return u, err
	})
	sqlite.MustRegisterDeterministicScalarFunction("money_pico", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		_, p, err := moneyParts(args[0])
		return p, err
	})
}

// moneySum is the state of one money_sum: a sum per pair of arguments.
type moneySum struct{ sums []moneyAcc }

// moneyAcc sums one amount's columns: in int64 while they fit, the rest
// folded into an Amount when an int64 would overflow.
type moneyAcc struct {
	units, pico int64
	rest        money.Amount
}

// add64 returns a + b, and false on overflow.
func add64(a, b int64) (int64, bool) {
	s := a + b
	return s, (a >= 0) != (b >= 0) || (s >= 0) == (a >= 0)
}

func (m *moneyAcc) add(units, pico int64) bool {
	ok := true
	if s, fits := add64(m.units, units); fits {
		m.units = s
	} else {
		m.rest, ok = m.rest.AddChecked(money.FromUnits(m.units))
		m.units = units
	}
	if s, fits := add64(m.pico, pico); fits {
		m.pico = s
	} else if ok {
		m.rest, ok = m.rest.AddChecked(money.FromPico(m.pico))
		m.pico = pico
	}
	return ok
}

func (m *moneyAcc) sum() (money.Amount, bool) {
	s, ok := m.rest.AddChecked(money.FromUnits(m.units))
	if ok {
		s, ok = s.AddChecked(money.FromPico(m.pico))
	}
	return s, ok
}

func (m *moneySum) Step(_ *sqlite.FunctionContext, args []driver.Value) error {
	if len(args)%2 != 0 {
		return fmt.Errorf("money_sum: %d arguments, not pairs of units and pico-units", len(args))
	}
	if m.sums == nil {
		m.sums = make([]moneyAcc, len(args)/2)
	}
	for i := range m.sums {
		var parts [2]int64
		for j := range parts {
			switch n := args[2*i+j].(type) {
			case int64:
				parts[j] = n
			case nil: // a NULL adds nothing, as in sum()
			default:
				return fmt.Errorf("money_sum: argument %d is a %T, not an integer", 2*i+j+1, n)
			}
		}
		if !m.sums[i].add(parts[0], parts[1]) {
			return fmt.Errorf("money_sum: %w", money.ErrOverflow)
		}
	}
	return nil
}

func (m *moneySum) WindowInverse(*sqlite.FunctionContext, []driver.Value) error {
	return fmt.Errorf("money_sum is not a window function")
}

func (m *moneySum) WindowValue(*sqlite.FunctionContext) (driver.Value, error) {
	if m.sums == nil {
		return "0", nil // no row, of one pair: the caller knows how many it asked for
	}
	var b []byte
	for i := range m.sums {
		s, ok := m.sums[i].sum()
		if !ok {
			return nil, fmt.Errorf("money_sum: %w", money.ErrOverflow)
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = s.Append(b)
	}
	return string(b), nil
}

func (m *moneySum) Final(*sqlite.FunctionContext) {}

// amountsOf scans the text of a money_sum of a row's three costs.
type amountsOf struct{ a *cost.Amounts }

func (s amountsOf) Scan(src any) error {
	var text string
	switch v := src.(type) {
	case string:
		text = v
	case []byte:
		text = string(v)
	default:
		return fmt.Errorf("money_sum answered a %T", src)
	}
	parts := strings.Fields(text)
	if len(parts) != 3 {
		return fmt.Errorf("money_sum answered %q, not three amounts", text)
	}
	for i, dst := range []*money.Amount{&s.a.Billed, &s.a.Effective, &s.a.List} {
		if err := dst.UnmarshalText([]byte(parts[i])); err != nil {
			return err
		}
	}
	return nil
}

// moneyParts cuts an amount given as text or as a REAL into the columns.
func moneyParts(v driver.Value) (units, pico int64, err error) {
	var a money.Amount
	switch x := v.(type) {
	case nil:
		return 0, 0, nil
	case int64:
		return x, 0, nil
	case float64:
		a, err = money.FromFloat64(x)
	case string:
		err = a.UnmarshalText([]byte(x)) // a sum: any amount, past money.MaxUnits too
	case []byte:
		err = a.UnmarshalText(x)
	default:
		err = fmt.Errorf("a %T is not an amount", v)
	}
	if err != nil {
		return 0, 0, err
	}
	units, pico, ok := a.Parts()
	if !ok {
		return 0, 0, fmt.Errorf("%s: %w", a, money.ErrOverflow)
	}
	return units, pico, nil
}

// amountArgs returns the two column values of an amount, for an INSERT;
// an amount whose units do not fit is refused.
func amountArgs(a money.Amount) (units, pico int64, err error) {
	units, pico, ok := a.Parts()
	if !ok {
		return 0, 0, fmt.Errorf("storing %s: %w", a, money.ErrOverflow)
	}
	return units, pico, nil
}
