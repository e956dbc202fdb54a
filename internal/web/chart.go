package web

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// ChartKind is how a chart draws its series.
type ChartKind int

const (
	// Bars draws one bar per label and series, side by side.
	Bars ChartKind = iota
	// Lines draws each series as a polyline with a dot per point.
	Lines
)

// Chart is a small chart rendered as SVG on the server, so the portal
// needs no script and no CDN to show one.
type Chart struct {
	Title string
	Kind  ChartKind
	// Labels name the points along the x axis; LabelName names them all,
	// as the head of their column in the chart's table ("Week of").
	Labels    []string
	LabelName string
	Series    []Series
	// Format writes a value on the y axis and in tooltips; default: %g.
	Format func(float64) string
	// Limit, when set, draws a horizontal dashed line (a budget, a goal).
	Limit      float64
	LimitLabel string
	// Width and Height in pixels; default 560 × 220.
	Width, Height int
	// Markers are events drawn as vertical lines at their point (a
	// deploy, a rollback).
	Markers []Marker
}

// Marker is an event at a point of a chart: Kind is its CSS class
// (marker-<kind>), Text its label and tooltip.
type Marker struct {
	Index      int
	Kind, Text string
}

// Series is one named set of values, one per label. NaN is a gap.
type Series struct {
	Name   string
	Values []float64
}

// chart geometry: room for the y labels on the left, the x labels below
// and the title and legend above.
const (
	padLeft   = 56
	padRight  = 12
	padTop    = 28
	padBottom = 36
)

// SVG renders the chart. Its output is deterministic (golden tests rely
// on it) and every text in it is escaped.
func (c Chart) SVG() template.HTML {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 560
	}
	if h == 0 {
		h = 220
	}
	format := c.Format
	if format == nil {
		format = func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	}
	plotW, plotH := float64(w-padLeft-padRight), float64(h-padTop-padBottom)
	top, empty := c.Limit, true
	for _, s := range c.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) {
				top, empty = max(top, v), false
			}
		}
	}
	ticks := niceTicks(top)
	ymax := ticks[len(ticks)-1]
	y := func(v float64) float64 { return float64(padTop) + plotH - v/ymax*plotH }

	var b strings.Builder
	put(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, w, h, w, h, esc(c.Title))
	put(&b, "<title>%s</title>", esc(c.Title))
	put(&b, `<text class="chart-title" x="%d" y="16">%s</text>`, padLeft, esc(c.Title))
	c.legend(&b, w)
	for _, t := range ticks {
		put(&b, `<line class="grid" x1="%d" y1="%s" x2="%d" y2="%s"/>`, padLeft, num(y(t)), w-padRight, num(y(t)))
		put(&b, `<text class="tick" x="%d" y="%s" text-anchor="end">%s</text>`, padLeft-6, num(y(t)+4), esc(format(t)))
	}
	put(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%s"/>`, padLeft, padTop, padLeft, num(y(0)))
	put(&b, `<line class="axis" x1="%d" y1="%s" x2="%d" y2="%s"/>`, padLeft, num(y(0)), w-padRight, num(y(0)))

	n := len(c.Labels)
	if n == 0 || empty {
		put(&b, `<text class="empty" x="%s" y="%s" text-anchor="middle">no data</text>`, num(float64(padLeft)+plotW/2), num(float64(padTop)+plotH/2))
		b.WriteString("</svg>")
		return template.HTML(b.String())
	}
	slot := plotW / float64(n)
	labelW := 7 * (maxLabelLen(c.Labels) + 1)           // about 7 px a character at the label's size
	every := max(1, (n*labelW+int(plotW)-1)/int(plotW)) // skip labels that would overlap
	for i, l := range c.Labels {
		if i%every != 0 {
			continue
		}
		put(&b, `<text class="label" x="%s" y="%d" text-anchor="middle">%s</text>`, num(float64(padLeft)+slot*(float64(i)+0.5)), h-padBottom+16, esc(l))
	}
	for si, s := range c.Series {
		switch c.Kind {
		case Bars:
			bw := slot * 0.8 / float64(len(c.Series))
			for i, v := range s.Values {
				if i >= n || math.IsNaN(v) {
					continue
				}
				x := float64(padLeft) + slot*float64(i) + slot*0.1 + bw*float64(si)
				put(&b, `<rect class="s%d" x="%s" y="%s" width="%s" height="%s"><title>%s %s: %s</title></rect>`,
					si%6, num(x), num(y(v)), num(bw), num(y(0)-y(v)), esc(c.Labels[i]), esc(s.Name), esc(format(v)))
			}
		case Lines:
			var pts []string
			for i, v := range s.Values {
				if i >= n || math.IsNaN(v) {
					continue
				}
				pts = append(pts, num(float64(padLeft)+slot*(float64(i)+0.5))+","+num(y(v)))
			}
			put(&b, `<polyline class="s%d" fill="none" points="%s"/>`, si%6, strings.Join(pts, " "))
			for i, v := range s.Values {
				if i >= n || math.IsNaN(v) {
					continue
				}
				put(&b, `<circle class="s%d" cx="%s" cy="%s" r="3"><title>%s %s: %s</title></circle>`,
					si%6, num(float64(padLeft)+slot*(float64(i)+0.5)), num(y(v)), esc(c.Labels[i]), esc(s.Name), esc(format(v)))
			}
		}
	}
	for _, m := range c.Markers {
		if m.Index < 0 || m.Index >= n {
			continue
		}
		x := num(float64(padLeft) + slot*(float64(m.Index)+0.5))
		put(&b, `<g class="marker marker-%s"><line x1="%s" y1="%d" x2="%s" y2="%s"/><text x="%s" y="%d" text-anchor="middle">%s</text><title>%s</title></g>`,
			esc(m.Kind), x, padTop, x, num(y(0)), x, padTop-2, esc(markerGlyph(m.Kind)), esc(m.Text))
	}
	if c.Limit > 0 {
		put(&b, `<line class="limit" x1="%d" y1="%s" x2="%d" y2="%s"/>`, padLeft, num(y(c.Limit)), w-padRight, num(y(c.Limit)))
		ly := y(c.Limit) - 4
		if ly < padTop+8 { // above the line it would run into the title: write it below
			ly = y(c.Limit) + 12
		}
		put(&b, `<text class="limit-label" x="%d" y="%s" text-anchor="end">%s</text>`, w-padRight, num(ly), esc(c.LimitLabel))
	}
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

// markerGlyph is the letter a marker of kind is drawn with.
func markerGlyph(kind string) string {
	switch kind {
	case "rollback":
		return "R"
	case "promotion":
		return "P"
	}
	return "D"
}

// Table is the chart's figures as a table, folded under it: for those
// who cannot see the chart, and for anyone who wants the exact values. A
// row per label, a column per series; a gap is a dash.
func (c Chart) Table() template.HTML {
	format := c.Format
	if format == nil {
		format = func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	}
	caption := c.Title
	if c.Limit > 0 && c.LimitLabel != "" {
		caption += " (" + c.LimitLabel + ")"
	}
	var b strings.Builder
	put(&b, `<details class="chart-data"><summary>As a table<span class="sr">: %s</span></summary>`, esc(c.Title))
	put(&b, `<table class="list values"><caption class="sr">%s</caption>`, esc(caption))
	b.WriteString(`<thead><tr><th scope="col">` + esc(cmp.Or(c.LabelName, "Point")) + `</th>`)
	for _, s := range c.Series {
		b.WriteString(`<th scope="col">` + esc(s.Name) + `</th>`)
	}
	put(&b, "</tr></thead><tbody>")
	for i, l := range c.Labels {
		b.WriteString(`<tr><th scope="row">` + esc(l) + `</th>`)
		for _, s := range c.Series {
			v := "—"
			if i < len(s.Values) && !math.IsNaN(s.Values[i]) {
				v = format(s.Values[i])
			}
			b.WriteString("<td>" + esc(v) + "</td>")
		}
		put(&b, "</tr>")
	}
	b.WriteString("</tbody></table></details>")
	return template.HTML(b.String())
}

// legend names the series at the top right, when there is more than one.
func (c Chart) legend(b *strings.Builder, w int) {
	if len(c.Series) < 2 {
		return
	}
	x := w - padRight
	for i := len(c.Series) - 1; i >= 0; i-- {
		name := c.Series[i].Name
		x -= 7*len(name) + 20
		put(b, `<rect class="s%d" x="%d" y="7" width="10" height="10"/><text class="legend" x="%d" y="16">%s</text>`, i%6, x, x+14, esc(name))
	}
}

// niceTicks returns the y axis ticks from 0 to a round value at or above
// top: 1, 2 or 5 times a power of ten per step, at most five steps.
func niceTicks(top float64) []float64 {
	if top <= 0 || math.IsNaN(top) || math.IsInf(top, 0) {
		return []float64{0, 1}
	}
	raw := top / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := pow * 10
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	var ticks []float64
	for v := 0.0; ; v += step {
		v = math.Round(v/step) * step // no drift from adding steps
		ticks = append(ticks, v)
		if v >= top {
			return ticks
		}
	}
}

func maxLabelLen(labels []string) int {
	n := 1
	for _, l := range labels {
		n = max(n, len(l))
	}
	return n
}

// num writes a coordinate with at most one decimal.
func num(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

func esc(s string) string { return template.HTMLEscapeString(s) }

// put writes one element per line, so that golden files diff well.
func put(b *strings.Builder, format string, args ...any) {
	fmt.Fprintf(b, format, args...)
	b.WriteByte('\n')
}
