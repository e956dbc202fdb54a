package cost

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/socle-dev/socle/internal/money"
)

// The parsers of this file read the values of billing exports as they are
// written in the wild: NULL or empty for nothing, timestamps with or without
// T, Z, seconds or an offset, US, European or ISO dates, decimal commas.

// unsafeString views b as a string without copying; the string must not
// outlive the call it is passed to.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// isNull reports whether a field holds no value.
func isNull(b []byte) bool {
	switch len(b) {
	case 0:
		return true
	case 4:
		return (b[0]|0x20) == 'n' && (b[1]|0x20) == 'u' && (b[2]|0x20) == 'l' && (b[3]|0x20) == 'l'
	}
	return false
}

// value returns b trimmed of spaces, or nil for a null.
func value(b []byte) []byte {
	if len(b) > 0 && (b[0] == ' ' || b[len(b)-1] == ' ') {
		b = bytes.TrimSpace(b)
	}
	if isNull(b) {
		return nil
	}
	return b
}

var errEmpty = errors.New("is empty")

// parseNumber parses a decimal amount exactly: 1.5, -2E-7, 1,5 or
// 1.234,56. Digits past the 12th decimal are rounded half to even (see
// package money).
func parseNumber(b []byte) (money.Amount, error) {
	b = value(b)
	if b == nil {
		return money.Zero, errEmpty
	}
	a, err := money.ParseBytes(b)
	if err == nil {
		return a, nil
	}
	if errors.Is(err, money.ErrOverflow) {
		return money.Zero, fmt.Errorf("%q is too large an amount (socle reads amounts below 10^18)", truncate(b))
	}
	s, ok := delocalize(b)
	if ok {
		if a, err = money.Parse(s); err == nil {
			return a, nil
		}
	}
	return money.Zero, fmt.Errorf("%q is not a number", truncate(b))
}

// parseDecimal parses a number as parseNumber does, as an exact rational
// of all its digits: a price or a quantity, whose product is then rounded
// once.
func parseDecimal(b []byte) (*big.Rat, error) {
	b = value(b)
	if b == nil {
		return nil, errEmpty
	}
	s := string(b)
	if _, err := money.Parse(s); err != nil {
		var ok bool
		if s, ok = delocalize(b); !ok {
			return nil, fmt.Errorf("%q is not a number", truncate(b))
		}
		if _, err := money.Parse(s); err != nil {
			return nil, fmt.Errorf("%q is not a number", truncate(b))
		}
	}
	r, ok := new(big.Rat).SetString(s) // money.Parse checked the syntax: a decimal, not a/b nor 0x…
	if !ok {
		return nil, fmt.Errorf("%q is not a number", truncate(b))
	}
	return r, nil
}

// delocalize rewrites a number written with a decimal comma or thousands
// separators (1.234,56, 1,5, 1 234,56, 1'234.56) with a decimal point and
// no separator; false when b is not such a number.
func delocalize(b []byte) (string, bool) {
	s := strings.NewReplacer(" ", "", "\u00a0", "", "\u202f", "", "'", "").Replace(string(b))
	comma, dot := strings.LastIndexByte(s, ','), strings.LastIndexByte(s, '.')
	switch {
	case comma >= 0 && dot >= 0 && comma > dot: // 1.234,56
		s = strings.ReplaceAll(s[:comma], ".", "") + "." + s[comma+1:]
	case comma >= 0 && dot >= 0: // 1,234.56
		s = strings.ReplaceAll(s, ",", "")
	case comma >= 0 && strings.Count(s, ",") == 1: // 1,5
		s = strings.Replace(s, ",", ".", 1)
	}
	return s, s != string(b)
}

// dateOrder says how to read a date written with slashes.
type dateOrder uint8

const (
	monthFirst dateOrder = iota // 09/18/2024, as US exports write it
	dayFirst                    // 18/09/2024, as localized exports write it
)

// stamp is a parsed timestamp: its local date and its offset from UTC.
type stamp struct {
	y, m, d int
	minutes int // minutes since local midnight
	offset  int // minutes east of UTC
}

// utcDay returns the UTC day of s.
func (s stamp) utcDay() Day {
	day := civilDay(s.y, time.Month(s.m), s.d)
	if s.offset != 0 {
		m := s.minutes - s.offset
		switch {
		case m < 0:
			day -= Day((-m + 1439) / 1440)
		case m >= 1440:
			day += Day(m / 1440)
		}
	}
	return day
}

// localMonth returns the month of s's local date: billing periods are named
// by it whatever their offset.
func (s stamp) localMonth() Month { return MonthOf(s.y, time.Month(s.m)) }

// parseStamp reads 2024-09-18, 2024-09-18 22:00:00, 2024-09-18T22:00:00Z,
// 2024-09-18T22:00:00.000-07:00, 2024-09-18 22:00:00 UTC, 09/18/2024,
// 09/18/2024 10:00:00 PM, 18.09.2024 and, for billing periods, 202409.
func parseStamp(b []byte, order dateOrder) (stamp, error) {
	b = value(b)
	if b == nil {
		return stamp{}, errEmpty
	}
	var s stamp
	var rest []byte
	var ok bool
	switch {
	case len(b) >= 10 && b[4] == '-' && b[7] == '-':
		s.y, ok = digits(b[0:4])
		if ok {
			s.m, ok = digits(b[5:7])
		}
		if ok {
			s.d, ok = digits(b[8:10])
		}
		rest = b[10:]
	case len(b) == 6 || len(b) == 7 && b[4] == '-': // 202409, 2024-09
		s.y, ok = digits(b[0:4])
		if ok {
			s.m, ok = digits(b[len(b)-2:])
		}
		s.d = 1
	default:
		s, rest, ok = parseSlashDate(b, order)
	}
	if !ok {
		return stamp{}, fmt.Errorf("%q is not a date", truncate(b))
	}
	if s.m < 1 || s.m > 12 || s.d < 1 || s.d > monthDays(s.y, s.m) {
		return stamp{}, fmt.Errorf("%q is not a valid date", truncate(b))
	}
	if len(rest) > 0 {
		if err := s.parseTime(rest); err != nil {
			return stamp{}, fmt.Errorf("%q: %w", truncate(b), err)
		}
	}
	return s, nil
}

// parseSlashDate reads 09/18/2024 (or 18/09/2024 in day-first order),
// 18.09.2024 and 2024/09/18, each possibly followed by a time.
func parseSlashDate(b []byte, order dateOrder) (stamp, []byte, bool) {
	var s stamp
	var parts [3]int
	i := 0
	for p := range 3 {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i || j-i > 4 {
			return s, nil, false
		}
		parts[p], _ = digits(b[i:j])
		if p < 2 {
			if j >= len(b) || (b[j] != '/' && b[j] != '.' && b[j] != '-') {
				return s, nil, false
			}
			if p == 0 && b[j] == '.' {
				order = dayFirst
			}
			j++
		}
		i = j
	}
	s.y = parts[2]
	switch {
	case digitsAt(b, 0) == 4: // 2024/09/18, as Japanese exports write it
		s.y, s.m, s.d = parts[0], parts[1], parts[2]
		return s, b[i:], true
	case s.y < 100:
		return s, nil, false
	case order == dayFirst:
		s.d, s.m = parts[0], parts[1]
	default:
		s.m, s.d = parts[0], parts[1]
	}
	return s, b[i:], true
}

// digitsAt counts the digits of b from i.
func digitsAt(b []byte, i int) int {
	n := 0
	for i+n < len(b) && b[i+n] >= '0' && b[i+n] <= '9' {
		n++
	}
	return n
}

// parseTime reads what follows a date: [T| ]HH:MM[:SS[.frac]][ ][AM|PM][Z|UTC|±HH[:MM]].
func (s *stamp) parseTime(b []byte) error {
	if b[0] != 'T' && b[0] != ' ' && b[0] != 't' {
		return errors.New("unexpected text after the date")
	}
	b = bytes.TrimLeft(b[1:], " ")
	if len(b) == 0 {
		return nil
	}
	if len(b) < 4 {
		return errors.New("bad time")
	}
	colon := bytes.IndexByte(b, ':')
	if colon < 1 || colon > 2 || len(b) < colon+3 {
		return errors.New("bad time")
	}
	hh, ok1 := digits(b[:colon])
	mm, ok2 := digits(b[colon+1 : colon+3])
	if !ok1 || !ok2 || hh > 24 || mm > 59 {
		return errors.New("bad time")
	}
	b = b[colon+3:]
	if len(b) >= 3 && b[0] == ':' { // seconds
		b = b[3:]
		if len(b) > 0 && (b[0] == '.' || b[0] == ',') {
			i := 1
			for i < len(b) && b[i] >= '0' && b[i] <= '9' {
				i++
			}
			b = b[i:]
		}
	}
	b = bytes.TrimLeft(b, " ")
	if len(b) >= 2 && (b[1] == 'M' || b[1] == 'm') {
		switch b[0] | 0x20 {
		case 'a':
			if hh == 12 {
				hh = 0
			}
		case 'p':
			if hh < 12 {
				hh += 12
			}
		default:
			return errors.New("bad time")
		}
		b = bytes.TrimLeft(b[2:], " ")
	}
	s.minutes = hh*60 + mm
	switch {
	case len(b) == 0, len(b) == 1 && (b[0] == 'Z' || b[0] == 'z'), bytes.EqualFold(b, []byte("UTC")), bytes.EqualFold(b, []byte("GMT")):
		return nil
	case b[0] == '+' || b[0] == '-':
		sign := 1
		if b[0] == '-' {
			sign = -1
		}
		z := bytes.ReplaceAll(b[1:], []byte{':'}, nil)
		var oh, om int
		var ok bool
		switch len(z) {
		case 2:
			oh, ok = digits(z)
		case 4:
			oh, ok = digits(z[:2])
			if ok {
				om, ok = digits(z[2:])
			}
		}
		if !ok {
			return errors.New("bad time zone offset")
		}
		s.offset = sign * (oh*60 + om)
		return nil
	}
	return errors.New("bad time zone")
}

func digits(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func monthDays(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// truncate shortens a value quoted in an error message.
func truncate(b []byte) string {
	const max = 60
	if len(b) <= max {
		return string(b)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}

// tag is one resource tag or label.
type tag struct{ key, value string }

// parseTags reads tags written as a JSON object ({"team": "x"}), a JSON
// object without its braces ("team": "x", as Azure writes them), or an
// array of {"key": …, "value": …} (Google Cloud labels) in JSON or as a
// Python list. Keys are trimmed:
// exports carry keys with stray spaces.
func parseTags(b []byte, into []tag) ([]tag, error) {
	b = value(b)
	if b == nil {
		return into, nil
	}
	switch b[0] {
	case '{':
	case '[':
		var kvs []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		}
		if err := json.Unmarshal(b, &kvs); err != nil {
			// labels written as a Python list, as pandas saves them
			js, perr := pythonToJSON(b)
			if perr != nil || json.Unmarshal(js, &kvs) != nil {
				return into, fmt.Errorf("tags %q are not a JSON array of key and value: %w", truncate(b), err)
			}
		}
		for _, kv := range kvs {
			into = append(into, tag{strings.TrimSpace(kv.Key), scalarString(kv.Value)})
		}
		return into, nil
	default:
		b = append(append([]byte{'{'}, b...), '}')
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return into, fmt.Errorf("tags %q are not a JSON object: %w", truncate(b), err)
	}
	start := len(into)
	for k, v := range m {
		into = append(into, tag{strings.TrimSpace(k), scalarString(v)})
	}
	// map order is random: sort, so that keys equal once trimmed resolve
	// the same way on every run
	slices.SortFunc(into[start:], func(a, b tag) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.value, b.value))
	})
	return into, nil
}

// scalarString writes a tag value as text.
func scalarString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	case bool, float64:
		return fmt.Sprint(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// pythonToJSON rewrites a Python literal of lists, dicts, strings, numbers,
// True, False and None, as repr() writes it, as JSON. Python's strings may
// be quoted with ' or " and use its escapes; everything else is the same
// as JSON's. No library reads Python literals in Go, and this subset is
// what billing CSVs written by pandas hold. The output is at most a few
// times the input, which a CSV record bounds (maxRecord).
func pythonToJSON(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b)+len(b)/4)
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\'' || c == '"':
			s, n, err := pythonString(b[i:])
			if err != nil {
				return nil, err
			}
			q, _ := json.Marshal(s)
			out = append(out, q...)
			i += n
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			j := i
			for j < len(b) && (b[j] >= 'A' && b[j] <= 'Z' || b[j] >= 'a' && b[j] <= 'z') {
				j++
			}
			switch w := string(b[i:j]); w {
			case "True":
				out = append(out, "true"...)
			case "False":
				out = append(out, "false"...)
			case "None":
				out = append(out, "null"...)
			case "e", "E": // an exponent
				out = append(out, w...)
			default:
				return nil, fmt.Errorf("%q at offset %d is not a Python literal", truncate(b[i:j]), i)
			}
			i = j
		default:
			out = append(out, c)
			i++
		}
	}
	return out, nil
}

// pythonString reads a quoted Python string at the start of b and returns
// its value and the number of bytes it took.
func pythonString(b []byte) (string, int, error) {
	q := b[0]
	var s []byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == q:
			return string(s), i + 1, nil
		case c != '\\':
			s = append(s, c)
			continue
		}
		i++
		if i == len(b) {
			break
		}
		switch e := b[i]; e {
		case '\\', '\'', '"':
			s = append(s, e)
		case 'n':
			s = append(s, '\n')
		case 't':
			s = append(s, '\t')
		case 'r':
			s = append(s, '\r')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+n >= len(b) {
				return "", 0, errors.New("a Python string escape is cut short")
			}
			r, err := strconv.ParseUint(string(b[i+1:i+1+n]), 16, 32)
			if err != nil || r > unicode.MaxRune {
				return "", 0, fmt.Errorf("bad Python string escape \\%c%s", e, b[i+1:i+1+n])
			}
			s = utf8.AppendRune(s, rune(r))
			i += n
		default: // Python keeps an unknown escape as it is
			s = append(s, '\\', e)
		}
	}
	return "", 0, errors.New("a Python string is never closed")
}
