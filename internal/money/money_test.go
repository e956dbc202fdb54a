package money

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: String of the result, or the error's kind
	}{
		{"0", "0"},
		{"-0", "0"},
		{"+1", "1"},
		{"12.50", "12.5"},
		{".5", "0.5"},
		{"5.", "5"},
		{"0.00000080000", "0.0000008"},    // the FOCUS sample's 11 decimals
		{"0.00000041370", "0.0000004137"}, // digits past the 9th kept
		{"-2E-7", "-0.0000002"},
		{"1.5e+3", "1500"},
		{"2.4000000000000002E-5", "0.000024"},        // a double's noise rounded off
		{"0.0000000000005", "0"},                     // half to even: down to 0
		{"0.0000000000015", "0.000000000002"},        // half to even: up to 2
		{"0.00000000000050000001", "0.000000000001"}, // above half
		{"-0.0000000000025", "-0.000000000002"},      // symmetric
		{"1e-400", "0"},                              // far below a pico-unit
		{"999999999999999999.999999999999", "999999999999999999.999999999999"}, // just below MaxUnits
		{"123456789012345678", "123456789012345678"},
		{"0e99999999", "0"},
		{"1e18", "overflow"},
		{"-1000000000000000000", "overflow"},
		{"999999999999999999.9999999999995", "overflow"}, // rounds up to MaxUnits
		{"1e400", "overflow"},
		{"", "syntax"},
		{"-", "syntax"},
		{".", "syntax"},
		{"1.2.3", "syntax"},
		{"1e", "syntax"},
		{"1e+", "syntax"},
		{" 1", "syntax"},
		{"1,5", "syntax"},
		{"NaN", "syntax"},
		{"Inf", "syntax"},
		{"0x1p-2", "syntax"},
		{"1_000", "syntax"},
	} {
		got, err := Parse(tc.in)
		switch {
		case tc.want == "overflow" || tc.want == "syntax":
			want := map[string]error{"overflow": ErrOverflow, "syntax": ErrSyntax}[tc.want]
			if !errors.Is(err, want) {
				t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, want)
			}
		case err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case got.String() != tc.want:
			t.Errorf("Parse(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFixedAndDisplay(t *testing.T) {
	for _, tc := range []struct {
		in             string
		places         int
		fixed, display string
	}{
		{"0", 2, "0.00", "0.00"},
		{"1234567.891", 2, "1234567.89", "1,234,567.89"},
		{"0.125", 2, "0.12", "0.12"}, // half to even
		{"0.135", 2, "0.14", "0.14"},
		{"-0.004", 2, "0.00", "0.00"}, // never -0.00
		{"-1234.5", 2, "-1234.50", "-1,234.50"},
		{"999.995", 2, "1000.00", "1,000.00"},
		{"12.5", 0, "12", "12.50"},
		{"0.0000004137", 12, "0.000000413700", "0.00"},
		{"123456789012345678", 2, "123456789012345678.00", "123,456,789,012,345,678.00"},
	} {
		a := MustParse(tc.in)
		if got := a.Fixed(tc.places); got != tc.fixed {
			t.Errorf("Fixed(%s, %d) = %s, want %s", tc.in, tc.places, got, tc.fixed)
		}
		if got := a.Display(); got != tc.display {
			t.Errorf("Display(%s) = %s, want %s", tc.in, got, tc.display)
		}
		if got := fmt.Sprintf("%.*f", tc.places, a); got != tc.fixed {
			t.Errorf("%%.%df of %s = %s, want %s", tc.places, tc.in, got, tc.fixed)
		}
	}
	if got := fmt.Sprintf("%v|%s|%q|%8s|%-6v|%d", MustParse("1.5"), MustParse("-2"), MustParse("3"), MustParse("4.25"), MustParse("5"), MustParse("6")); got != `1.5|-2|"3"|    4.25|5     |%!d(money.Amount=6)` {
		t.Errorf("fmt: %s", got)
	}
}

// TestLargeAmounts covers amounts past 2⁶⁴ pico-units and past 2⁶⁴ units.
func TestLargeAmounts(t *testing.T) {
	a := MustParse("999999999999999999.999999999999")
	sum := Zero
	for range 100 {
		sum = sum.Add(a)
	}
	if got, want := sum.String(), "99999999999999999999.9999999999"; got != want {
		t.Errorf("100 × max = %s, want %s", got, want)
	}
	if got := sum.Sub(a.Add(a)).String(); got != "97999999999999999999.999999999902" {
		t.Errorf("sub: %s", got)
	}
	if _, _, ok := sum.Parts(); ok {
		t.Error("Parts of 10²⁰ units fit an int64")
	}
	big := Amount{hi: 1<<63 - 1, lo: ^uint64(0)}
	if _, ok := big.AddChecked(FromPico(1)); ok {
		t.Error("the largest amount + 1 did not overflow")
	}
	if _, ok := big.Neg().AddChecked(FromPico(-2)); ok {
		t.Error("the smallest amount - 1 did not overflow")
	}
	defer func() {
		if recover() == nil {
			t.Error("Add did not panic on overflow")
		}
	}()
	big.Add(big)
}

func TestParts(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "12.000000000001", "-12.000000000001", "0.999999999999", "-0.5",
		"999999999999999999.999999999999", "-999999999999999999.999999999999"} {
		a := MustParse(s)
		u, p, ok := a.Parts()
		if !ok || FromParts(u, p) != a || p <= -unit || p >= unit || (u != 0 && p != 0 && (u < 0) != (p < 0)) {
			t.Errorf("%s: Parts = %d, %d, %v; FromParts = %s", s, u, p, ok, FromParts(u, p))
		}
	}
	if got := FromParts(3, -2*unit-1).String(); got != "0.999999999999" {
		t.Errorf("FromParts of un-normalized parts: %s", got)
	}
	if got := FromParts(-1<<63, 0).String(); got != "-9223372036854775808" {
		t.Errorf("FromParts(MinInt64): %s", got)
	}
}

func TestRoundAndCmp(t *testing.T) {
	a, b := MustParse("1.005"), MustParse("1.015")
	if a.Round(2).String() != "1" || b.Round(2).String() != "1.02" || a.Neg().Round(2).String() != "-1" {
		t.Errorf("Round: %s %s %s", a.Round(2), b.Round(2), a.Neg().Round(2))
	}
	if a.Cmp(b) != -1 || b.Cmp(a) != 1 || a.Cmp(a) != 0 || a.Neg().Cmp(a) != -1 || Zero.Cmp(a.Neg()) != 1 {
		t.Error("Cmp")
	}
	if a.Sign() != 1 || a.Neg().Sign() != -1 || Zero.Sign() != 0 || !a.Sub(a).IsZero() || a.Neg().Abs() != a {
		t.Error("Sign, IsZero, Abs")
	}
}

func TestMulRat(t *testing.T) {
	week := MustParse("700.000000000007")
	got, ok := week.MulRat(big.NewRat(23, 7)) // 23 days left at the week's average
	if !ok || got.String() != "2300.000000000023" {
		t.Errorf("MulRat = %s %v", got, ok)
	}
	third, _ := MustParse("1").MulRat(big.NewRat(1, 3))
	if third.String() != "0.333333333333" {
		t.Errorf("1/3 = %s", third)
	}
	half, _ := MustParse("0.000000000001").MulRat(big.NewRat(1, 2)) // half a pico-unit: to even, 0
	if !half.IsZero() {
		t.Errorf("half a pico-unit = %s", half)
	}
	if _, ok := MustParse("999999999999999999").MulRat(big.NewRat(1e18, 1)); ok {
		t.Error("an overflowing product was accepted")
	}
	if r, ok := FromRat(MustParse("-12.345").Rat()); !ok || r != MustParse("-12.345") {
		t.Errorf("Rat round trip: %s", r)
	}
}

// TestSplit: largest remainder, and the parts always add up.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		amount  string
		weights []uint64
		want    string
	}{
		{"0.000000000010", []uint64{1, 1, 1}, "0.000000000004 0.000000000003 0.000000000003"},
		{"100", []uint64{1, 1, 1}, "33.333333333334 33.333333333333 33.333333333333"},
		{"-100", []uint64{1, 1, 1}, "-33.333333333334 -33.333333333333 -33.333333333333"},
		{"0.000000000002", []uint64{1, 2, 2}, "0 0.000000000001 0.000000000001"}, // 0.4, 0.8, 0.8: the two largest remainders
		{"10", []uint64{0, 3, 1}, "0 7.5 2.5"},
		{"0", []uint64{5, 5}, "0 0"},
	} {
		parts := MustParse(tc.amount).Split(tc.weights)
		s := make([]string, len(parts))
		for i, p := range parts {
			s[i] = p.String()
		}
		if got := strings.Join(s, " "); got != tc.want {
			t.Errorf("%s split %v = %s, want %s", tc.amount, tc.weights, got, tc.want)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("100", uint64(1), uint64(1), uint64(1))
	f.Add("-0.000000000007", uint64(3), uint64(0), uint64(5))
	f.Fuzz(func(t *testing.T, s string, w1, w2, w3 uint64) {
		a, err := Parse(s)
		if err != nil || w1|w2|w3 == 0 {
			return
		}
		parts := a.Split([]uint64{w1, w2, w3})
		sum := Zero
		for _, p := range parts {
			sum = sum.Add(p)
			if p.Sign()*a.Sign() < 0 {
				t.Fatalf("%s split %d,%d,%d: a part of the other sign, %s", a, w1, w2, w3, p)
			}
		}
		if sum != a {
			t.Fatalf("%s split %d,%d,%d adds up to %s", a, w1, w2, w3, sum)
		}
		// each part is within a pico-unit of its exact share
		total := new(big.Rat).SetInt(new(big.Int).Add(new(big.Int).Add(new(big.Int).SetUint64(w1), new(big.Int).SetUint64(w2)), new(big.Int).SetUint64(w3)))
		for i, w := range []uint64{w1, w2, w3} {
			exact := new(big.Rat).Mul(a.Rat(), new(big.Rat).Quo(new(big.Rat).SetInt(new(big.Int).SetUint64(w)), total))
			diff := new(big.Rat).Abs(new(big.Rat).Sub(parts[i].Rat(), exact))
			if diff.Cmp(big.NewRat(1, unit)) >= 0 {
				t.Fatalf("%s split %d,%d,%d: part %d is %s, exactly %s", a, w1, w2, w3, i, parts[i], exact.FloatString(14))
			}
		}
	})
}

// FuzzParse compares Parse with math/big: the exact value of the text,
// rounded half to even to 12 decimals, within MaxUnits.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-2E-7", "0.00000041370", "2.4000000000000002E-5", "0.0000000000015", "1e18", ".5", "5.", "1e-13", "-9.9999999999995e17"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		ref, ok := reference(s)
		switch {
		case !ok:
			if err == nil {
				t.Fatalf("Parse(%q) = %s, math/big refuses it", s, got)
			}
			return
		case err != nil:
			limit := new(big.Rat).SetInt64(MaxUnits)
			if errors.Is(err, ErrOverflow) && new(big.Rat).Abs(ref).Cmp(limit) >= 0 {
				return
			}
			t.Fatalf("Parse(%q): %v; math/big: %s", s, err, ref.FloatString(14))
		}
		if got.Rat().Cmp(ref) != 0 {
			t.Fatalf("Parse(%q) = %s, math/big %s", s, got, ref.FloatString(14))
		}
		// String reads back the same
		if back, err := Parse(got.String()); err != nil || back != got {
			t.Fatalf("%q: %s reads back as %s, %v", s, got, back, err)
		}
		js, _ := json.Marshal(got)
		var fromJSON Amount
		if err := json.Unmarshal(js, &fromJSON); err != nil || fromJSON != got {
			t.Fatalf("%q: JSON %s reads back as %s, %v", s, js, fromJSON, err)
		}
	})
}

// reference parses the same syntax with math/big and rounds half to even
// to 12 decimals; false for text Parse must refuse.
func reference(s string) (*big.Rat, bool) {
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || body == "" || strings.ContainsAny(body, "+-") && !strings.ContainsAny(body, "eE") {
		return nil, false
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(body), "e")
	if strings.ContainsAny(mant, "+-") || mant == "" || mant == "." || strings.Count(mant, ".") > 1 ||
		strings.Trim(mant, "0123456789.") != "" {
		return nil, false
	}
	e := 0
	if hasExp {
		digits := strings.TrimLeft(exp, "+-")
		if digits == "" || len(exp)-len(digits) > 1 || strings.Trim(digits, "0123456789") != "" {
			return nil, false
		}
		if len(strings.TrimLeft(digits, "0")) > 6 {
			digits = "999999"
		}
		e, _ = strconv.Atoi(digits)
		if strings.HasPrefix(exp, "-") {
			e = -e
		}
	}
	r, ok := new(big.Rat).SetString(mant)
	if !ok {
		return nil, false
	}
	// keep the reference fast: a huge exponent makes 0 or too much
	if e < -1000 || r.Sign() == 0 {
		return new(big.Rat), true
	}
	if e > 1000 {
		return new(big.Rat).SetInt64(MaxUnits), true
	}
	if e >= 0 {
		r.Mul(r, new(big.Rat).SetInt(pow(e)))
	} else {
		r.Quo(r, new(big.Rat).SetInt(pow(-e)))
	}
	if strings.HasPrefix(s, "-") {
		r.Neg(r)
	}
	// round to 12 decimals, half to even
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt64(unit))
	q := roundQuo(scaled.Num(), scaled.Denom())
	return new(big.Rat).SetFrac(q, big.NewInt(unit)), true
}

func pow(e int) *big.Int {
	if e <= 0 {
		return big.NewInt(1)
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil)
}

func TestFromFloat64(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0.1, "0.1"},
		{0.1 + 0.2, "0.3"}, // 0.30000000000000004: a double's noise, past 12 decimals
		{2.4000000000000002e-5, "0.000024"},
		{-1234.5678, "-1234.5678"},
		{1e-13, "0"},
	} {
		got, err := FromFloat64(tc.f)
		if err != nil || got.String() != tc.want {
			t.Errorf("FromFloat64(%v) = %s, %v; want %s", tc.f, got, err, tc.want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), 1e300} {
		if _, err := FromFloat64(f); err == nil {
			t.Errorf("FromFloat64(%v) accepted", f)
		}
	}
}

func TestJSON(t *testing.T) {
	type doc struct {
		A Amount `json:"a"`
		B Amount `json:"b"`
	}
	in := doc{MustParse("12345678901234567.000000000001"), MustParse("-0.5")}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"a":"12345678901234567.000000000001","b":"-0.5"}` {
		t.Fatalf("Marshal: %s %v", b, err)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("Unmarshal: %+v %v", out, err)
	}
	// a JSON number is decimal text too: read exactly
	if err := json.Unmarshal([]byte(`{"a":0.1,"b":"x"}`), &out); err == nil || out.A.String() != "0.1" {
		t.Errorf("a number, then a bad string: %+v %v", out, err)
	}
	var sc Amount
	if err := sc.Scan("-12.5"); err != nil || sc.String() != "-12.5" {
		t.Errorf("Scan text: %s %v", sc, err)
	}
	if err := sc.Scan(int64(7)); err != nil || sc.String() != "7" {
		t.Errorf("Scan integer: %s %v", sc, err)
	}
	// a sum past MaxUnits reads back from JSON and from the database
	huge := MustParse("999999999999999999").Add(MustParse("999999999999999999.5"))
	js, _ := json.Marshal(huge)
	var back Amount
	if err := json.Unmarshal(js, &back); err != nil || back != huge {
		t.Errorf("JSON of %s: %s, %v", huge, back, err)
	}
	if err := sc.Scan(huge.String()); err != nil || sc != huge {
		t.Errorf("Scan of %s: %s, %v", huge, sc, err)
	}
	if err := sc.Scan("1" + strings.Repeat("0", 27)); !errors.Is(err, ErrOverflow) {
		t.Errorf("Scan of 10²⁷: %v", err)
	}
	if err := sc.Scan(1.5); err == nil {
		t.Error("Scan accepted a float")
	}
}

func BenchmarkParse(b *testing.B) {
	in := []byte("0.00133333330")
	for b.Loop() {
		if _, err := ParseBytes(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	x, y := MustParse("0.00133333330"), Zero
	for b.Loop() {
		y, _ = y.AddChecked(x)
	}
}
