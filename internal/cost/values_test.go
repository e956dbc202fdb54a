package cost

import (
	"slices"
	"testing"
	"time"
)

func TestParseStamp(t *testing.T) {
	for _, tc := range []struct {
		in    string
		order dateOrder
		day   string
		month string
	}{
		{"2024-09-18", monthFirst, "2024-09-18", "2024-09"},
		{"2024-09-18 22:00:00", monthFirst, "2024-09-18", "2024-09"},
		{"2024-09-18T22:00:00Z", monthFirst, "2024-09-18", "2024-09"},
		{"2024-09-18T22:00:00.123456Z", monthFirst, "2024-09-18", "2024-09"},
		{"2024-09-18 22:00:00 UTC", monthFirst, "2024-09-18", "2024-09"},
		{"2024-09-18T22:00:00-07:00", monthFirst, "2024-09-19", "2024-09"},
		{"2024-09-30T22:00:00-0700", monthFirst, "2024-10-01", "2024-09"},
		{"2024-09-01T00:00:00+02:00", monthFirst, "2024-08-31", "2024-09"},
		{"2024-09-01T01:30:00+01", monthFirst, "2024-09-01", "2024-09"},
		{"2024-09-18t22:00", monthFirst, "2024-09-18", "2024-09"},
		{"09/18/2024", monthFirst, "2024-09-18", "2024-09"},
		{"9/8/2024 10:00:00 PM", monthFirst, "2024-09-08", "2024-09"},
		{"9/8/2024 12:30:00 AM", monthFirst, "2024-09-08", "2024-09"},
		{"18/09/2024", dayFirst, "2024-09-18", "2024-09"},
		{"18.09.2024", monthFirst, "2024-09-18", "2024-09"},
		{"202409", monthFirst, "2024-09-01", "2024-09"},
		{"2024-09", monthFirst, "2024-09-01", "2024-09"},
		{" 2024-02-29 ", monthFirst, "2024-02-29", "2024-02"},
	} {
		s, err := parseStamp([]byte(tc.in), tc.order)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if s.utcDay().String() != tc.day || s.localMonth().String() != tc.month {
			t.Errorf("%q: day %s month %s, want %s %s", tc.in, s.utcDay(), s.localMonth(), tc.day, tc.month)
		}
	}
	for _, in := range []string{"", "NULL", "yesterday", "2024-13-01", "2023-02-29", "18/09/2024", "2024-09-18X", "2024-09-18 25:00",
		"2024-09-18T10:00:00+1", "1/2/3", "2024-09-18 10:00 XM"} {
		if _, err := parseStamp([]byte(in), monthFirst); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for in, want := range map[string]string{
		"1.5": "1.5", "-0.00000080000": "-0.0000008", "2E-7": "0.0000002", " 3 ": "3", "1,5": "1.5", "1.234,56": "1234.56",
		"1,234.56": "1234.56", "1 234,5": "1234.5", "0": "0", "0.00000041370": "0.0000004137", "1.234,0000000000005": "1234",
		"2.4000000000000002E-5": "0.000024", "-1'234.56": "-1234.56",
	} {
		got, err := parseNumber([]byte(in))
		if err != nil || got.String() != want {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"abc", "1,2,3", "--1", "inf", "NaN", "0x10", "1e18", "1/3"} {
		if _, err := parseNumber([]byte(in)); err == nil || err == errEmpty {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, in := range []string{"", "NULL", "null"} {
		if _, err := parseNumber([]byte(in)); err != errEmpty {
			t.Errorf("%q: %v, want errEmpty", in, err)
		}
	}
}

func TestParseTags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []tag
	}{
		{`{"team": "a", " env": "prod"}`, []tag{{"env", "prod"}, {"team", "a"}}},
		{`"team": "a","cost": 12`, []tag{{"cost", "12"}, {"team", "a"}}},
		{`[{"key": "team", "value": "a"}, {"key": "n", "value": 1.50}]`, []tag{{"team", "a"}, {"n", "1.5"}}},
		{`{}`, nil},
		{`[]`, nil},
		{`NULL`, nil},
		{``, nil},
		{`{"nested": {"a": 1}, "flag": true, "none": null}`, []tag{{"flag", "true"}, {"nested", `{"a":1}`}, {"none", ""}}},
	} {
		got, err := parseTags([]byte(tc.in), nil)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`{"a": }`, `team=a`, `[1, 2]`} {
		if _, err := parseTags([]byte(in), nil); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestDays(t *testing.T) {
	for d := DayOf(time.Date(1899, 12, 25, 0, 0, 0, 0, time.UTC)); d < DayOf(time.Date(2101, 1, 5, 0, 0, 0, 0, time.UTC)); d++ {
		tm := d.Time()
		if DayOf(tm) != d || d.Weekday() != tm.Weekday() {
			t.Fatalf("day %d: %s", d, tm)
		}
		if y, m, dd := tm.Date(); civilDay(y, m, dd) != d {
			t.Fatalf("civilDay(%s) != %d", tm, d)
		}
	}
	m, err := ParseMonth("2024-02")
	if err != nil || m.Days() != 29 || m.First().String() != "2024-02-01" || m.End().String() != "2024-03-01" || m.String() != "2024-02" {
		t.Errorf("month %v %v", m, err)
	}
	if (m - 2).String() != "2023-12" {
		t.Errorf("two months before February 2024: %s", m-2)
	}
}

func TestParseDims(t *testing.T) {
	got, err := ParseDims("team, environment,app,chargecategory,day")
	if err != nil || !slices.Equal(got, []Dim{DimTeam, DimEnv, DimApp, DimCategory, DimDay}) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := ParseDims("team,color"); err == nil {
		t.Error("color is a dimension")
	}
}
