package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// layout is how big the picture is and what it says under the title.
type layout struct {
	Width int
	Note  string
}

// Grafana's grid: 24 columns, rows of 30 pixels, and its dark theme.
const (
	columns   = 24
	rowHeight = 30
	gap       = 6
	header    = 52
	bg        = "#111217"
	panelBg   = "#181b1f"
	border    = "#2c3235"
	textColor = "#ccccdc"
	dimText   = "#8e8e9e"
)

// palette is Grafana's classic one.
var palette = []string{
	"#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a6", "#705da0",
	"#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477",
}

// render draws the dashboard's panels with their data.
func render(d dashboard, data map[int][]series, w window, l layout) []byte {
	height := 0
	for _, p := range d.Panels {
		height = max(height, (p.GridPos.Y+p.GridPos.H)*rowHeight)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Inter, Helvetica, Arial, sans-serif">`+"\n",
		l.Width, height+header, l.Width, height+header)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="%s"/>`+"\n", bg)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="18" fill="%s">%s</text>`+"\n", gap, textColor, esc(d.Title))
	sub := w.Start.UTC().Format("2006-01-02 15:04") + " – " + w.End.UTC().Format("15:04 UTC")
	if l.Note != "" {
		sub += " · " + l.Note
	}
	fmt.Fprintf(&b, `<text x="%d" y="42" font-size="12" fill="%s">%s</text>`+"\n", gap, dimText, esc(sub))
	colWidth := float64(l.Width) / columns
	for _, p := range d.Panels {
		x := float64(p.GridPos.X) * colWidth
		y := float64(header + p.GridPos.Y*rowHeight)
		wd := float64(p.GridPos.W) * colWidth
		ht := float64(p.GridPos.H * rowHeight)
		if p.Type == "row" {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="15" font-weight="600" fill="%s">%s</text>`+"\n", x+gap, y+21, textColor, esc(p.Title))
			continue
		}
		drawPanel(&b, p, data[p.ID], w, x+gap/2, y+gap/2, wd-gap, ht-gap)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// drawPanel draws one time-series panel in the box (x, y, w, h).
func drawPanel(b *bytes.Buffer, p panel, ss []series, win window, x, y, w, h float64) {
	fmt.Fprintf(b, `<g><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="2" fill="%s" stroke="%s"/>`+"\n", x, y, w, h, panelBg, border)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="500" fill="%s">%s</text>`+"\n", x+8, y+18, textColor, esc(p.Title))
	unit := p.FieldConfig.Defaults.Unit
	lo, hi, seen := math.Inf(1), math.Inf(-1), false
	for _, s := range ss {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi, seen = min(lo, v), max(hi, v), true
			}
		}
	}
	if !seen {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" fill="%s" text-anchor="middle">No data</text></g>`+"\n", x+w/2, y+h/2, dimText)
		return
	}
	if m := p.FieldConfig.Defaults.Min; m != nil {
		lo = min(lo, *m)
	}
	if hi == lo {
		hi = lo + 1
	}
	// Ticks are round numbers in the unit they are written in (MiB, not bytes).
	scale := displayScale(unit, hi)
	ticks := niceTicks(lo/scale, hi/scale, 4)
	for i := range ticks {
		ticks[i] *= scale
	}
	lo, hi = min(lo, ticks[0]), max(hi, ticks[len(ticks)-1])

	// The legend under the plot: as many lines as it needs, at most 3.
	legendLines, legend := legendLayout(ss, w-16)
	const axisWidth, top, xAxis = 58.0, 28.0, 16.0
	plotX, plotY := x+axisWidth, y+top
	plotW := w - axisWidth - 10
	plotH := h - top - xAxis - float64(legendLines)*14 - 6
	// Y axis: grid lines and labels.
	for _, t := range ticks {
		py := plotY + plotH - (t-lo)/(hi-lo)*plotH
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="0.6"/>`, plotX, py, plotX+plotW, py, border)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s" text-anchor="end">%s</text>`+"\n", plotX-5, py+3.5, dimText, esc(formatValue(t, unit, ticks)))
	}
	// X axis: a few times.
	span := win.End.Sub(win.Start)
	every := niceDuration(span / 5)
	for t := win.Start.Truncate(every).Add(every); t.Before(win.End); t = t.Add(every) {
		px := plotX + float64(t.Sub(win.Start))/float64(span)*plotW
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s" text-anchor="middle">%s</text>`, px, plotY+plotH+13, dimText, t.UTC().Format("15:04"))
	}
	b.WriteString("\n")
	// The lines, broken where a series has no point.
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts []string
		flush := func() {
			if len(pts) > 1 {
				fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.3" points="%s"/>`+"\n", color, strings.Join(pts, " "))
			} else if len(pts) == 1 {
				xy := strings.Split(pts[0], ",")
				fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="1.5" fill="%s"/>`+"\n", xy[0], xy[1], color)
			}
			pts = pts[:0]
		}
		for j, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				flush()
				continue
			}
			px := plotX + float64(s.Times[j].Sub(win.Start))/float64(span)*plotW
			py := plotY + plotH - (v-lo)/(hi-lo)*plotH
			pts = append(pts, strconv.FormatFloat(px, 'f', 1, 64)+","+strconv.FormatFloat(py, 'f', 1, 64))
		}
		flush()
	}
	// The legend.
	ly := plotY + plotH + xAxis + 12
	for _, line := range legend {
		lx := x + 10
		for _, e := range line {
			if e.index >= 0 {
				fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="10" height="3" fill="%s"/>`, lx, ly-5, palette[e.index%len(palette)])
				lx += 14
			}
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%s</text>`, lx, ly, textColor, esc(e.text))
			lx += e.width + 12
		}
		b.WriteString("\n")
		ly += 14
	}
	b.WriteString("</g>\n")
}

type legendEntry struct {
	index int // series index; -1 for the "+N more" note
	text  string
	width float64
}

// legendLayout flows the series' names into lines of width w, at most 3;
// what does not fit is counted in a last "+N more".
func legendLayout(ss []series, w float64) (int, [][]legendEntry) {
	const maxLines = 3
	var lines [][]legendEntry
	var line []legendEntry
	used := 0.0
	for i, s := range ss {
		text := s.Legend
		if len(text) > 48 {
			text = text[:47] + "…"
		}
		ew := textWidth(text)
		if used > 0 && used+14+ew > w {
			lines = append(lines, line)
			line, used = nil, 0
		}
		if len(lines) == maxLines { // no room for ss[i:]
			rest, last := len(ss)-i, lines[maxLines-1]
			for len(last) > 1 && lineWidth(last)+textWidth(moreText(rest)) > w {
				last, rest = last[:len(last)-1], rest+1
			}
			lines[maxLines-1] = append(last, legendEntry{index: -1, text: moreText(rest), width: textWidth(moreText(rest))})
			return maxLines, lines
		}
		line = append(line, legendEntry{index: i, text: text, width: ew})
		used += 14 + ew + 12
	}
	if len(line) > 0 {
		lines = append(lines, line)
	}
	return len(lines), lines
}

func moreText(n int) string { return fmt.Sprintf("+%d more", n) }

func lineWidth(l []legendEntry) float64 {
	w := 0.0
	for _, e := range l {
		w += 14 + e.width + 12
	}
	return w
}

// textWidth estimates the width of 10-pixel text.
func textWidth(s string) float64 { return float64(len([]rune(s))) * 5.6 }

// displayScale is what values of the unit are divided by when written.
func displayScale(unit string, hi float64) float64 {
	if unit == "bytes" {
		for _, size := range []float64{1 << 30, 1 << 20, 1 << 10} {
			if hi >= size {
				return size
			}
		}
	}
	return 1
}

// niceTicks returns about n round values covering lo..hi.
func niceTicks(lo, hi float64, n int) []float64 {
	step := niceNumber((hi - lo) / float64(n))
	start := math.Floor(lo/step) * step
	var out []float64
	for v := start; v <= hi+step*0.5; v += step {
		out = append(out, math.Round(v/step)*step)
		if v >= hi {
			break
		}
	}
	return out
}

func niceNumber(x float64) float64 {
	if x <= 0 {
		return 1
	}
	exp := math.Pow(10, math.Floor(math.Log10(x)))
	switch f := x / exp; {
	case f <= 1:
		return exp
	case f <= 2:
		return 2 * exp
	case f <= 5:
		return 5 * exp
	}
	return 10 * exp
}

func niceDuration(d time.Duration) time.Duration {
	for _, c := range []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour} {
		if d <= c {
			return c
		}
	}
	return 24 * time.Hour
}

// formatValue writes v in the panel's unit (Grafana's unit ids), with as
// many decimals as the ticks need.
func formatValue(v float64, unit string, ticks []float64) string {
	step := 1.0
	if len(ticks) > 1 {
		step = ticks[1] - ticks[0]
	}
	num := func(x, step float64) string {
		dec := 0
		for dec < 4 && math.Abs(step-math.Round(step*math.Pow(10, float64(dec)))/math.Pow(10, float64(dec))) > 1e-9 {
			dec++
		}
		return strconv.FormatFloat(x, 'f', dec, 64)
	}
	switch unit {
	case "s":
		switch a := math.Max(math.Abs(ticks[len(ticks)-1]), math.Abs(ticks[0])); {
		case a == 0:
			return "0"
		case a < 1e-3:
			return num(v*1e6, step*1e6) + " µs"
		case a < 1:
			return num(v*1e3, step*1e3) + " ms"
		}
		return num(v, step) + " s"
	case "percentunit":
		return num(v*100, step*100) + "%"
	case "bytes":
		f := displayScale(unit, ticks[len(ticks)-1])
		name := map[float64]string{1: "B", 1 << 10: "KiB", 1 << 20: "MiB", 1 << 30: "GiB"}[f]
		return num(v/f, step/f) + " " + name
	case "reqps":
		return num(v, step) + " req/s"
	case "ops":
		return num(v, step) + " /s"
	case "opm":
		return num(v, step) + " /min"
	}
	return num(v, step)
}

func esc(s string) string { return html.EscapeString(s) }
