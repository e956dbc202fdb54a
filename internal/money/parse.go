package money

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/invopop/jsonschema"
)

// ErrSyntax is wrapped by the errors of text that is not a decimal number.
var ErrSyntax = errors.New("not a decimal number")

// Parse reads a decimal number: an optional sign, digits with an optional
// point (1, 1.5, .5, 5.), and an optional exponent (2E-7, 1.5e+3), as
// billing exports and JSON write amounts. Digits past the 12th decimal are
// rounded half to even: the only digits an export carries there are a
// double's noise (2.4000000000000002E-5). Amounts of MaxUnits or more are
// refused with ErrOverflow.
func Parse(s string) (Amount, error) {
	return ParseBytes(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// ParseBytes is Parse of a byte slice; it does not allocate unless it fails.
func ParseBytes(b []byte) (Amount, error) { return parseWithin(b, maxPico) }

// parseWithin parses b, refusing magnitudes of limit pico-units or more.
func parseWithin(b []byte, limit u128) (Amount, error) {
	a, err := parse(b, limit)
	if err != nil {
		return Amount{}, fmt.Errorf("%q is %w", quoteable(b), err)
	}
	return a, nil
}

// quoteable shortens what an error quotes.
func quoteable(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func parse(b []byte, limit u128) (Amount, error) {
	i := 0
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	// the digits: [intStart, intEnd) before the point, [fracStart, fracEnd) after
	intStart := i
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	intEnd, fracStart, fracEnd := i, i, i
	if i < len(b) && b[i] == '.' {
		i++
		fracStart = i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		fracEnd = i
	}
	if intEnd == intStart && fracEnd == fracStart {
		return Amount{}, ErrSyntax
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			if exp < 100_000 { // beyond, every digit is gone or too many
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == start {
			return Amount{}, ErrSyntax
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) {
		return Amount{}, ErrSyntax
	}
	// value = D × 10^(exp - nfrac) with D the digits read as an integer;
	// in pico-units D × 10^shift
	nfrac := fracEnd - fracStart
	shift := exp - nfrac + Scale
	nd := (intEnd - intStart) + nfrac
	if nd <= 19 && shift >= 0 && shift <= Scale {
		// the common case: D fits a uint64, no digit is dropped
		var d uint64
		for _, c := range b[intStart:intEnd] {
			d = d*10 + uint64(c-'0')
		}
		for _, c := range b[fracStart:fracEnd] {
			d = d*10 + uint64(c-'0')
		}
		m, ok := u128{0, d}.mulAdd(pow10[shift], 0)
		if !ok || !m.less(limit) {
			return Amount{}, ErrOverflow
		}
		return m.signed(neg), nil
	}
	digit := func(k int) byte { // the k-th digit of D
		if k < intEnd-intStart {
			return b[intStart+k]
		}
		return b[fracStart+k-(intEnd-intStart)]
	}
	keep := nd
	if shift < 0 {
		keep = nd + shift // digits left of the rounding point
	}
	var m u128
	var ok bool
	for k := 0; k < keep; k++ {
		if m, ok = m.mulAdd(10, uint64(digit(k)-'0')); !ok || !m.less(limit) {
			return Amount{}, ErrOverflow
		}
	}
	if shift > 0 && !m.isZero() {
		for range shift {
			if m, ok = m.mulAdd(10, 0); !ok || !m.less(limit) {
				return Amount{}, ErrOverflow
			}
		}
	}
	if shift < 0 {
		// round half to even on the dropped digits
		var first byte = '0'
		sticky := false
		for k := max(keep, 0); k < nd; k++ {
			switch d := digit(k); {
			case k == keep:
				first = d
			case d != '0':
				sticky = true
			}
		}
		if keep < 0 {
			first, sticky = '0', sticky || first != '0'
		}
		if first > '5' || first == '5' && (sticky || m.lo&1 == 1) {
			if m, _ = m.mulAdd(1, 1); !m.less(limit) {
				return Amount{}, ErrOverflow
			}
		}
	}
	return m.signed(neg), nil
}

// maxPico is MaxUnits in pico-units; anyPico bounds every Amount.
var (
	maxPico = func() u128 {
		m, _ := u128{0, MaxUnits}.mulAdd(unit, 0)
		return m
	}()
	anyPico = u128{1 << 63, 0}
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// FromFloat64 converts a double, which billing data carries where a format
// stores money as a floating-point number (a Parquet DOUBLE column, a JSON
// number read as one): it takes the shortest decimal that reads back as
// the same double (what the exporter most likely wrote: 0.1, not
// 0.1000000000000000055511151231257827), then rounds it as Parse does.
func FromFloat64(f float64) (Amount, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Amount{}, fmt.Errorf("%v is %w", f, ErrSyntax)
	}
	var buf [32]byte
	return ParseBytes(strconv.AppendFloat(buf[:0], f, 'g', -1, 64))
}

// MustParse is Parse for constants of programs and tests; it panics on
// an error.
func MustParse(s string) Amount {
	a, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return a
}

// MarshalJSON writes a as a JSON string of its exact decimal: JSON numbers
// are read as doubles by JavaScript and most JSON libraries, which hold 15
// to 17 significant digits.
func (a Amount) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 24)
	b = append(b, '"')
	b = a.Append(b)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a JSON string or number of decimal text, exactly. It
// reads any Amount MarshalJSON writes, sums past MaxUnits included.
func (a *Amount) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	v, err := parseWithin(b, anyPico)
	if err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	*a = v
	return nil
}

// MarshalText writes a as String does.
func (a Amount) MarshalText() ([]byte, error) { return a.Append(nil), nil }

// UnmarshalText reads a as Parse does, but for the bound: it reads any
// Amount MarshalText writes.
func (a *Amount) UnmarshalText(b []byte) error {
	v, err := parseWithin(bytes.TrimSpace(b), anyPico)
	if err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	*a = v
	return nil
}

// Scan reads an amount from a database: decimal text (what the store's
// exact sums return) or an integer of whole units.
func (a *Amount) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*a = Zero
	case int64:
		*a = FromUnits(v)
	case string:
		return a.UnmarshalText([]byte(v))
	case []byte:
		return a.UnmarshalText(v)
	default:
		return fmt.Errorf("amount: cannot read a %T from the database", src)
	}
	return nil
}

// Pattern is the regular expression of an Amount's JSON string.
const Pattern = `^-?[0-9]+(\.[0-9]+)?$`

// JSONSchema describes an Amount in the API's OpenAPI document.
func (Amount) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:    "string",
		Format:  "decimal",
		Pattern: Pattern,
		Description: "An exact amount of money in the currency named beside it, as a decimal string " +
			"(a JSON number would lose digits in JavaScript): up to 12 decimals, no exponent.",
		Examples: []any{"1234.5", "-0.0000004137"},
	}
}
