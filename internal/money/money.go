// Package money is socle's exact amount of money: a signed count of
// pico-units (10⁻¹² of a currency's unit) in 128 bits. It parses the
// decimal text of billing exports exactly, adds and compares exactly,
// rounds in one documented way (half to even) where a result has more
// digits than it keeps, splits an amount by shares without creating or
// losing a pico-unit, and writes itself as a decimal string in JSON. It
// knows nothing of currencies: an Amount is in the currency its holder says.
//
// Why 10⁻¹²: billing exports carry more digits than cents. The FinOps
// Foundation's FOCUS sample has cost values with 11 decimals (0.00000041370),
// 44% of its rows have digits past the 9th, and AWS and Azure write unit
// prices with 10 or more; 12 decimals hold every one of them exactly. Why
// 128 bits: at 12 decimals an int64 holds only ±9.2 million units, less
// than a day of a large bill in yen or rupiah; 128 bits hold ±1.7×10²⁶ units.
// Parse refuses amounts of 10¹⁸ units or more (MaxUnits), far above any
// charge in any currency, so that sums of a hundred million of them cannot
// overflow; Add and Sub panic on overflow rather than wrap, and AddChecked
// says so, for sums of untrusted input.
//
// Why not a decimal library: socle stores and sums amounts at one fixed
// scale (see store/sqlite), adds hundreds of thousands of them a second
// while importing, and needs them comparable with ==. A two-word integer
// with math/bits does that without allocating; math/big serves the rare
// multiplications and divisions (forecasts, statistics, shares).
package money

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Scale is the number of decimal digits an Amount keeps after the point.
const Scale = 12

// unit is 10^Scale: the pico-units of one currency unit.
const unit = 1_000_000_000_000

// MaxUnits bounds what Parse accepts: |amount| < MaxUnits currency units.
const MaxUnits = 1_000_000_000_000_000_000

// Amount is an exact amount of money: hi·2⁶⁴ + lo pico-units, in two's
// complement. The zero value is zero; Amounts are comparable with ==.
type Amount struct {
	hi int64
	lo uint64
}

// Zero is no money.
var Zero Amount

// ErrOverflow is wrapped by the errors of amounts too large to hold.
var ErrOverflow = errors.New("amount out of range")

// FromUnits returns n currency units.
func FromUnits(n int64) Amount { return FromParts(n, 0) }

// FromPico returns n pico-units.
func FromPico(n int64) Amount {
	if n < 0 {
		return Amount{hi: -1, lo: uint64(n)}
	}
	return Amount{lo: uint64(n)}
}

// FromParts returns units + pico·10⁻¹² currency units: the form the store
// keeps (see Parts). pico need not be below 10¹² nor of units' sign.
func FromParts(units, pico int64) Amount {
	hi, lo := bits.Mul64(uint64(abs64(units)), unit)
	a := Amount{hi: int64(hi), lo: lo}
	if units < 0 {
		a = a.neg()
	}
	return a.Add(FromPico(pico))
}

// Parts cuts a into whole units and the pico-units of the rest, both of
// a's sign (or zero): a = units + pico·10⁻¹², |pico| < 10¹². ok is false
// when the units do not fit an int64, which Parse's bound excludes for any
// sum of fewer than nine billion parsed amounts.
func (a Amount) Parts() (units, pico int64, ok bool) {
	neg := a.hi < 0
	m := a.magnitude()
	q, r := m.divmod(unit)
	if q.hi != 0 || q.lo > 1<<63-1 {
		return 0, 0, false
	}
	units, pico = int64(q.lo), int64(r)
	if neg {
		units, pico = -units, -pico
	}
	return units, pico, true
}

func abs64(n int64) uint64 {
	if n < 0 {
		return uint64(-n) // -MinInt64 wraps to itself, and its uint64 is right
	}
	return uint64(n)
}

// u128 is an unsigned 128-bit magnitude.
type u128 struct{ hi, lo uint64 }

func (a Amount) magnitude() u128 {
	if a.hi < 0 {
		n := a.neg()
		return u128{uint64(n.hi), n.lo}
	}
	return u128{uint64(a.hi), a.lo}
}

// divmod divides m by d, a 64-bit divisor.
func (m u128) divmod(d uint64) (u128, uint64) {
	qhi, r := m.hi/d, m.hi%d
	qlo, r := bits.Div64(r, m.lo, d)
	return u128{qhi, qlo}, r
}

// mulAdd returns m·k + c, and false on overflow.
func (m u128) mulAdd(k, c uint64) (u128, bool) {
	h1, l := bits.Mul64(m.lo, k)
	h2, hl := bits.Mul64(m.hi, k)
	if h2 != 0 {
		return u128{}, false
	}
	hi, carry := bits.Add64(hl, h1, 0)
	if carry != 0 {
		return u128{}, false
	}
	lo, carry := bits.Add64(l, c, 0)
	hi, carry = bits.Add64(hi, 0, carry)
	return u128{hi, lo}, carry == 0
}

func (m u128) less(o u128) bool { return m.hi < o.hi || m.hi == o.hi && m.lo < o.lo }

func (m u128) isZero() bool { return m.hi == 0 && m.lo == 0 }

// signed returns m with a sign; m must be below 2¹²⁷.
func (m u128) signed(neg bool) Amount {
	a := Amount{hi: int64(m.hi), lo: m.lo}
	if neg {
		a = a.neg()
	}
	return a
}

// neg negates a, wrapping: only the most negative Amount wraps, and no
// operation that checks its range produces it.
func (a Amount) neg() Amount {
	lo, borrow := bits.Sub64(0, a.lo, 0)
	hi := -a.hi - int64(borrow)
	return Amount{hi: hi, lo: lo}
}

// Neg returns -a.
func (a Amount) Neg() Amount {
	if a.hi == -1<<63 && a.lo == 0 {
		panic("money: negating the most negative amount")
	}
	return a.neg()
}

// Abs returns |a|.
func (a Amount) Abs() Amount {
	if a.hi < 0 {
		return a.Neg()
	}
	return a
}

// Sign returns -1, 0 or +1.
func (a Amount) Sign() int {
	switch {
	case a.hi < 0:
		return -1
	case a.hi == 0 && a.lo == 0:
		return 0
	}
	return 1
}

// IsZero reports whether a is zero.
func (a Amount) IsZero() bool { return a == Zero }

// Cmp returns -1, 0 or +1 as a is less than, equal to or greater than b.
func (a Amount) Cmp(b Amount) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

// AddChecked returns a + b, and false when the sum is out of range.
func (a Amount) AddChecked(b Amount) (Amount, bool) {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	hi := a.hi + b.hi + int64(carry)
	if (a.hi >= 0) == (b.hi >= 0) && (hi >= 0) != (a.hi >= 0) {
		return Amount{}, false
	}
	return Amount{hi: hi, lo: lo}, true
}

// Add returns a + b. It panics if the sum is out of range (±1.7×10²⁶
// units), which sums of parsed amounts never reach; use AddChecked where
// the count of terms is not bounded.
func (a Amount) Add(b Amount) Amount {
	s, ok := a.AddChecked(b)
	if !ok {
		panic(fmt.Sprintf("money: %s + %s: %v", a, b, ErrOverflow))
	}
	return s
}

// Sub returns a - b; it panics on overflow, as Add.
func (a Amount) Sub(b Amount) Amount {
	if b.hi == -1<<63 && b.lo == 0 {
		panic(fmt.Sprintf("money: %s - %s: %v", a, b, ErrOverflow))
	}
	return a.Add(b.neg())
}

// big returns a as a big.Int of pico-units.
func (a Amount) big() *big.Int {
	m := a.magnitude()
	n := new(big.Int).SetUint64(m.hi)
	n.Lsh(n, 64).Or(n, new(big.Int).SetUint64(m.lo))
	if a.hi < 0 {
		n.Neg(n)
	}
	return n
}

var maxMagnitude = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))

// fromBig returns n pico-units, and false when n is out of range.
func fromBig(n *big.Int) (Amount, bool) {
	if n.CmpAbs(maxMagnitude) > 0 {
		return Amount{}, false
	}
	var m big.Int
	m.Abs(n)
	lo := new(big.Int).And(&m, new(big.Int).SetUint64(^uint64(0))).Uint64()
	hi := m.Rsh(&m, 64).Uint64()
	return u128{hi, lo}.signed(n.Sign() < 0), true
}

// roundQuo returns num/den rounded half to even, den > 0.
func roundQuo(num, den *big.Int) *big.Int {
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	// compare 2|r| with den
	r2 := new(big.Int).Abs(r)
	r2.Lsh(r2, 1)
	switch c := r2.Cmp(den); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}

// MulRat returns a·r rounded half to even to a pico-unit, and false when
// the product is out of range. Forecasts and statistics use it; so does a
// price times a quantity.
func (a Amount) MulRat(r *big.Rat) (Amount, bool) {
	num := new(big.Int).Mul(a.big(), r.Num())
	return fromBig(roundQuo(num, r.Denom()))
}

// Rat returns a as an exact rational number of currency units.
func (a Amount) Rat() *big.Rat { return new(big.Rat).SetFrac(a.big(), big.NewInt(unit)) }

// FromRat returns r rounded half to even to a pico-unit, and false when r
// is out of range.
func FromRat(r *big.Rat) (Amount, bool) {
	num := new(big.Int).Mul(r.Num(), big.NewInt(unit))
	return fromBig(roundQuo(num, r.Denom()))
}

// Round returns a rounded half to even to places decimals (0 to Scale).
func (a Amount) Round(places int) Amount {
	if places >= Scale {
		return a
	}
	places = max(places, 0)
	step := pow10[Scale-places]
	neg := a.hi < 0
	q, r := a.magnitude().divmod(step)
	if half := step / 2; r > half || r == half && q.lo&1 == 1 {
		q, _ = q.mulAdd(1, 1)
	}
	m, _ := q.mulAdd(step, 0) // below the magnitude rounded up, which fits
	return m.signed(neg)
}

var pow10 = func() [20]uint64 {
	var p [20]uint64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// Split divides a into len(weights) parts proportional to the weights,
// by largest remainder: each part gets the pico-units of its exact share
// rounded toward zero, then the pico-units left go one each to the parts
// whose shares lost the most (the first of equal ones). The parts add up
// to a exactly, whatever the weights; a negative amount (a credit) splits
// as its opposite does. Weights must not all be zero.
func (a Amount) Split(weights []uint64) []Amount {
	var total big.Int
	for _, w := range weights {
		total.Add(&total, new(big.Int).SetUint64(w))
	}
	if total.Sign() == 0 {
		panic("money: splitting by weights that are all zero")
	}
	neg := a.hi < 0
	m := a.Abs().big()
	parts := make([]Amount, len(weights))
	rems := make([]*big.Int, len(weights))
	left := new(big.Int).Set(m)
	for i, w := range weights {
		q, r := new(big.Int).QuoRem(new(big.Int).Mul(m, new(big.Int).SetUint64(w)), &total, new(big.Int))
		rems[i] = r
		left.Sub(left, q)
		parts[i], _ = fromBig(q) // at most |a|
	}
	// left < len(weights): one pico-unit each to the largest remainders
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	sortStable(order, func(i, j int) bool { return rems[i].Cmp(rems[j]) > 0 })
	for k := int64(0); k < left.Int64(); k++ {
		parts[order[k]] = parts[order[k]].Add(FromPico(1))
	}
	if neg {
		for i := range parts {
			parts[i] = parts[i].Neg()
		}
	}
	return parts
}

// sortStable is an insertion sort: the parts of a split are few.
func sortStable(s []int, less func(i, j int) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Float64 returns a as the nearest float64, for drawing charts and other
// display; never for computing money.
func (a Amount) Float64() float64 {
	f, _ := strconv.ParseFloat(a.String(), 64)
	return f
}

// String writes a exactly, in decimal, without trailing zeros after the
// point or an exponent: 12.5, -0.0000008, 0.
func (a Amount) String() string { return string(a.Append(nil)) }

// Append appends a, as String writes it, to b.
func (a Amount) Append(b []byte) []byte {
	b, frac := a.appendUnits(b)
	if frac == 0 {
		return b
	}
	digits := strconv.AppendUint(nil, frac+unit, 10)[1:] // 12 digits, zero-padded
	end := len(digits)
	for digits[end-1] == '0' {
		end--
	}
	return append(append(b, '.'), digits[:end]...)
}

// appendUnits appends the sign and the whole units of a, and returns the
// pico-units of the rest.
func (a Amount) appendUnits(b []byte) ([]byte, uint64) {
	q, frac := a.magnitude().divmod(unit)
	if a.hi < 0 {
		b = append(b, '-')
	}
	if q.hi == 0 {
		return strconv.AppendUint(b, q.lo, 10), frac
	}
	// more than 2⁶⁴ units: digits in groups of 19
	hiPart, low := q.divmod(pow10[19])
	b = strconv.AppendUint(b, hiPart.lo, 10)
	var digits [19]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + low%10)
		low /= 10
	}
	return append(b, digits[:]...), frac
}

// Fixed writes a rounded half to even to places decimals (0 to Scale),
// with exactly that many: Fixed(2) of 12.5 is 12.50.
func (a Amount) Fixed(places int) string {
	places = min(max(places, 0), Scale)
	r := a.Round(places)
	if r.IsZero() {
		r = Zero // no "-0.00"
	}
	b, frac := r.appendUnits(nil)
	if places == 0 {
		return string(b)
	}
	digits := strconv.AppendUint(nil, frac+unit, 10)[1:]
	return string(append(append(b, '.'), digits[:places]...))
}

// Display writes a for people: two decimals, rounded half to even, and
// thousands separated by commas: -1,234.57.
func (a Amount) Display() string {
	s := a.Fixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	b.WriteByte('.')
	b.WriteString(frac)
	return b.String()
}

// Format lets fmt write an Amount: %v and %s as String, %f as String or,
// with a precision, as Fixed (%.2f), %q quoted.
func (a Amount) Format(f fmt.State, verb rune) {
	var s string
	switch verb {
	case 'v', 's':
		s = a.String()
	case 'f':
		if p, ok := f.Precision(); ok {
			s = a.Fixed(p)
		} else {
			s = a.String()
		}
	case 'q':
		s = strconv.Quote(a.String())
	default:
		fmt.Fprintf(f, "%%!%c(money.Amount=%s)", verb, a.String())
		return
	}
	if w, ok := f.Width(); ok && len(s) < w {
		pad := strings.Repeat(" ", w-len(s))
		if f.Flag('-') {
			s += pad
		} else {
			s = pad + s
		}
	}
	fmt.Fprint(f, s)
}
