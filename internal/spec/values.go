package spec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
)

// Duration is a length of time written as Go writes durations (90s, 30m,
// 1h30m) with days allowed as a leading term (2d, 1d12h).
type Duration time.Duration

// ParseDuration reads a Duration.
func ParseDuration(s string) (Duration, error) {
	var days int
	rest := s
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30m, 24h or 2d", s)
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30m, 24h or 2d", s)
		}
	}
	if d < 0 || days < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(time.Duration(days)*24*time.Hour + d), nil
}

// String writes the duration back in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	if d == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return d.decodeString(s)
}

// decodeString is UnmarshalJSON once the string is read (see stringDecoder).
func (d *Duration) decodeString(s string) error {
	if s == "" {
		*d = 0
		return nil
	}
	v, err := ParseDuration(s)
	*d = v
	return err
}

// JSONSchema describes the duration format to editors.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     durationPattern,
		Description: "A duration such as 90s, 30m, 1h30m or 2d.",
	}
}

const durationPattern = `^([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*$`

// Time is an instant written in RFC 3339 or as a date (midnight UTC).
type Time struct {
	time.Time
	err error // kept for the loader to report with the field's position
}

// MarshalJSON writes RFC 3339.
func (t Time) MarshalJSON() ([]byte, error) { return json.Marshal(t.Format(time.RFC3339)) }

// UnmarshalJSON reads RFC 3339 or a date.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return t.decodeString(s)
}

// decodeString is UnmarshalJSON once the string is read (see stringDecoder).
func (t *Time) decodeString(s string) error {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if v, err := time.Parse(layout, s); err == nil {
			*t = Time{Time: v}
			return nil
		}
	}
	*t = Time{err: fmt.Errorf("invalid time %q: want RFC 3339 (2026-12-18T18:00:00+01:00) or a date (2026-12-18)", s)}
	return nil
}

// JSONSchema describes the time format to editors.
func (Time) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$`,
		Description: "An RFC 3339 time (2026-12-18T18:00:00+01:00) or a date (2026-12-18, midnight UTC).",
	}
}

// Window is a recurring weekly period in a time zone, written
// "Tue,Thu 10:00-16:00 Europe/Paris" or "Mon-Fri 09:00-17:30" (UTC).
type Window struct {
	Days     [7]bool // indexed by time.Weekday
	From, To int     // minutes since midnight; To > From
	Location *time.Location
	text     string
	err      error // kept for the loader to report with the field's position
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow reads a Window.
func ParseWindow(s string) (Window, error) {
	w := Window{text: s, Location: time.UTC}
	bad := func(why string) (Window, error) {
		return Window{}, fmt.Errorf("invalid window %q: %s (want e.g. \"Tue,Thu 10:00-16:00 Europe/Paris\")", s, why)
	}
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return bad("want days, hours and an optional time zone")
	}
	for _, part := range strings.Split(f[0], ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, ok := weekdays[strings.ToLower(lo)]
		if !ok {
			return bad(fmt.Sprintf("unknown day %q", lo))
		}
		b := a
		if isRange {
			if b, ok = weekdays[strings.ToLower(hi)]; !ok {
				return bad(fmt.Sprintf("unknown day %q", hi))
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			w.Days[d] = true
			if d == b {
				break
			}
		}
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return bad("hours must be HH:MM-HH:MM")
	}
	var err error
	if w.From, err = clock(from); err != nil {
		return bad(err.Error())
	}
	if w.To, err = clock(to); err != nil {
		return bad(err.Error())
	}
	if w.To <= w.From {
		return bad("the end must be after the start")
	}
	if len(f) == 3 {
		if w.Location, err = time.LoadLocation(f[2]); err != nil {
			return bad(fmt.Sprintf("unknown time zone %q", f[2]))
		}
	}
	return w, nil
}

func clock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return hh*60 + mm, nil
}

// String returns the window as written.
func (w Window) String() string { return w.text }

// Contains reports whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	t = t.In(w.Location)
	m := t.Hour()*60 + t.Minute()
	return w.Days[t.Weekday()] && m >= w.From && m < w.To
}

// Next returns the earliest instant at or after t inside the window, within
// the next eight days; ok is false for a window that never opens.
func (w Window) Next(t time.Time) (time.Time, bool) {
	if w.Contains(t) {
		return t, true
	}
	t = t.In(w.Location)
	for i := 0; i <= 8; i++ {
		day := time.Date(t.Year(), t.Month(), t.Day()+i, 0, 0, 0, 0, w.Location)
		if !w.Days[day.Weekday()] {
			continue
		}
		open := day.Add(time.Duration(w.From) * time.Minute)
		if !open.Before(t) {
			return open, true
		}
	}
	return time.Time{}, false
}

// MarshalJSON writes the window as written.
func (w Window) MarshalJSON() ([]byte, error) { return json.Marshal(w.text) }

// UnmarshalJSON parses a window.
func (w *Window) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return w.decodeString(s)
}

// decodeString is UnmarshalJSON once the string is read (see stringDecoder).
func (w *Window) decodeString(s string) error {
	v, err := ParseWindow(s)
	if err != nil {
		v = Window{text: s, err: err}
	}
	*w = v
	return nil
}

// JSONSchema describes the window format to editors.
func (Window) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^[A-Za-z]{3}(-[A-Za-z]{3})?(,[A-Za-z]{3}(-[A-Za-z]{3})?)* [0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2}( [A-Za-z_/+-]+)?$`,
		Description: `Weekdays, hours and an optional IANA time zone: "Tue,Thu 10:00-16:00 Europe/Paris", "Mon-Fri 09:00-17:30".`,
		Examples:    []any{"Tue,Thu 10:00-16:00 Europe/Paris"},
	}
}
