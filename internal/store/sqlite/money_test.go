package sqlite

import (
	"testing"

	"github.com/socle-dev/socle/internal/money"
)

// TestMoneyAccFolds adds more pico-units and more units than an int64
// holds, as money_sum does past millions of rows: the sums stay exact.
func TestMoneyAccFolds(t *testing.T) {
	var acc moneyAcc
	want := money.Zero
	pico, units := int64(999_999_999_999), int64(4_000_000_000_000_000_000)
	for range 10_000_000 { // 10¹⁹ pico-units: past 2⁶³
		if !acc.add(0, pico) {
			t.Fatal("overflow")
		}
	}
	for range 5 { // 2×10¹⁹ units
		if !acc.add(units, -pico) {
			t.Fatal("overflow")
		}
	}
	for range 10_000_000 {
		want = want.Add(money.FromPico(pico))
	}
	for range 5 {
		want = want.Add(money.FromParts(units, -pico))
	}
	got, ok := acc.sum()
	if !ok || got != want {
		t.Errorf("sum %s, %v; want %s", got, ok, want)
	}
	var neg moneyAcc
	for range 3 {
		neg.add(-units, -pico)
	}
	if got, _ := neg.sum(); got.String() != "-12000000000000000002.999999999997" {
		t.Errorf("negative sum %s", got)
	}
}
