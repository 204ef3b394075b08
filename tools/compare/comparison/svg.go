package comparison

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// The picture's geometry, in SVG user units (pixels).
const (
	svgLeft    = 64  // room for the latency axis labels
	svgPanelW  = 300 // one round trip's column
	svgGap     = 36
	svgTop     = 74 // title and column headings
	svgLatH    = 190
	svgMid     = 34 // between the two rows of panels
	svgShareH  = 90
	svgBottom  = 92 // time axis, legend
	svgRight   = 16
	svgLatMin  = 1e-5 // 10 µs
	svgLatMax  = 1.0  // 1 s
	svgFont    = "font-family=\"sans-serif\" font-size=\"11\""
	svgOutageC = "#888888"
)

// modeColor is each mode's colour, the same in every panel.
var modeColor = map[string]string{ModeJWT: "#1f77b4", ModeIntrospection: "#d62728"}

// series are the lines of each mode: in the latency panel the sidecar's
// verification median (solid) and the client's end-to-end median
// (dashed), in the share panel the share served per interval.
var series = []struct {
	name  string
	panel string // "latency" or "share"
	dash  string
	value func(Point) *float64
}{
	{"verification p50", "latency", "", func(p Point) *float64 { return p.VerifyP50 }},
	{"end-to-end p50", "latency", "5,3", func(p Point) *float64 { return p.E2EP50 }},
	{"served share", "share", "", func(p Point) *float64 { return p.ServedShare }},
}

// WriteSVG draws the report's timelines: one column per round trip, the
// latencies (log scale) above, the share served per sampling interval
// below, the issuer's outage shaded and the revocation marked. It is
// hand-written SVG 1.1, so it needs no plotting library and diffs as text.
func (rp *Report) WriteSVG(w io.Writer) error {
	n := max(len(rp.Runs), 1)
	// At least wide enough for the title and the legend.
	width := max(svgLeft+n*svgPanelW+(n-1)*svgGap+svgRight, 860)
	height := svgTop + svgLatH + svgMid + svgShareH + svgBottom
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>`)
	p(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" %s>`, width, height, width, height, svgFont)
	p(`<title>jwt-sidecar: stateless JWT verification vs token introspection, by distance to the token service</title>`)
	p(`<rect width="100%%" height="100%%" fill="white"/>`)
	p(`<text x="%d" y="18" font-size="14" font-weight="bold">Stateless JWT verification (blue) vs token introspection (red), through a token-service outage</text>`, svgLeft)
	if len(rp.Runs) > 0 {
		r := rp.Runs[0]
		p(`<text x="%d" y="34" fill="#444">%g requests/s to each sidecar, caches %s; every point is one %s interval; %s</text>`, svgLeft, r.Rate,
			map[bool]string{false: "off", true: "on"}[r.Caches], samplingInterval(r), esc(rp.Machine.CPU))
	}
	for i, r := range rp.Runs {
		x0 := float64(svgLeft + i*(svgPanelW+svgGap))
		rp.column(&b, r, x0, i == 0)
	}
	// Legend.
	ly := svgTop + svgLatH + svgMid + svgShareH + 52
	lx := svgLeft
	for _, m := range []string{ModeJWT, ModeIntrospection} {
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`, lx, ly, lx+22, ly, modeColor[m])
		p(`<text x="%d" y="%d">%s</text>`, lx+28, ly+4, esc(modeTitle[m]))
		lx += 190
	}
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="1.5"/><text x="%d" y="%d">verification p50 (the sidecar)</text>`, lx, ly, lx+22, ly, lx+28, ly+4)
	lx += 200
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="1.5" stroke-dasharray="5,3"/><text x="%d" y="%d">end-to-end p50 (the client)</text>`, lx, ly, lx+22, ly, lx+28, ly+4)
	ly += 20
	p(`<rect x="%d" y="%d" width="22" height="10" fill="%s" fill-opacity="0.25"/><text x="%d" y="%d">token service down</text>`, svgLeft, ly-8, svgOutageC, svgLeft+28, ly+1)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555" stroke-dasharray="2,2"/><text x="%d" y="%d">a probe token revoked; ▲ first refusal by each sidecar</text>`,
		svgLeft+190, ly-8, svgLeft+190, ly+3, svgLeft+198, ly+1)
	if rp.Command != "" {
		p(`<text x="%d" y="%d" fill="#666" font-size="9">%s</text>`, svgLeft, height-6, esc(rp.Command))
	}
	p(`</svg>`)
	_, err := w.Write(b.Bytes())
	return err
}

// samplingInterval is the spacing of the run's samples, "1 s".
func samplingInterval(r *Results) string {
	if len(r.Timeline) < 2 {
		return "n/a"
	}
	d := (r.Timeline[len(r.Timeline)-1].T - r.Timeline[0].T) / float64(len(r.Timeline)-1)
	return fmt.Sprintf("%.1f s", d)
}

// column draws one run: heading, latency panel, share panel, time axis.
func (rp *Report) column(b *bytes.Buffer, r *Results, x0 float64, axisLabels bool) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	tMin, tMax := 0.0, r.Marks.End
	if len(r.Timeline) > 0 {
		tMin = math.Min(r.Timeline[0].T-1, 0)
		tMax = math.Max(tMax, r.Timeline[len(r.Timeline)-1].T)
	}
	tMax++ // room for the last refusal's mark
	if tMax <= tMin {
		tMax = tMin + 1
	}
	xOf := func(t float64) float64 { return x0 + (t-tMin)/(tMax-tMin)*svgPanelW }
	latTop, shareTop := float64(svgTop), float64(svgTop+svgLatH+svgMid)
	latY := func(v float64) float64 {
		v = math.Min(math.Max(v, svgLatMin), svgLatMax)
		f := (math.Log10(v) - math.Log10(svgLatMin)) / (math.Log10(svgLatMax) - math.Log10(svgLatMin))
		return latTop + svgLatH*(1-f)
	}
	shareY := func(v float64) float64 { return shareTop + svgShareH*(1-math.Min(math.Max(v, 0), 1)) }

	p(`<g class="run" data-rtt-seconds="%g">`, r.RTT.Seconds)
	p(`<text x="%.1f" y="%.1f" font-size="12" font-weight="bold">token service %s</text>`, x0, latTop-22, esc(r.RTT.label()))
	sub := "no relay"
	if r.RTT.Measured != nil {
		sub = fmt.Sprintf("relay measured at +%s per exchange", formatSeconds(r.RTT.Measured))
	}
	p(`<text x="%.1f" y="%.1f" fill="#444">%s</text>`, x0, latTop-8, esc(sub))
	for _, pan := range []struct{ top, h float64 }{{latTop, svgLatH}, {shareTop, svgShareH}} {
		// The outage: from the kill to the issuer's readiness.
		if r.Marks.Restarted > r.Marks.OutageStart {
			p(`<rect class="outage" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.25"/>`,
				xOf(r.Marks.OutageStart), pan.top, xOf(r.Marks.Restarted)-xOf(r.Marks.OutageStart), pan.h, svgOutageC)
		}
		p(`<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="none" stroke="#999"/>`, x0, pan.top, svgPanelW, pan.h)
	}
	// Latency grid: decades.
	for e := -5; e <= 0; e++ {
		v := math.Pow(10, float64(e))
		y := latY(v)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x0, y, x0+svgPanelW, y)
		if axisLabels {
			p(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, x0-4, y+4, esc(decade[e]))
		}
	}
	for _, v := range []float64{0, 0.5, 1} {
		y := shareY(v)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x0, y, x0+svgPanelW, y)
		if axisLabels {
			p(`<text x="%.1f" y="%.1f" text-anchor="end">%.0f%%</text>`, x0-4, y+4, 100*v)
		}
	}
	if axisLabels {
		p(`<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">latency (log)</text>`, x0-48, latTop+svgLatH/2, x0-48, latTop+svgLatH/2)
		p(`<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">served (2xx)</text>`, x0-48, shareTop+svgShareH/2, x0-48, shareTop+svgShareH/2)
	}
	// Time axis, every 10 s (5 s for short runs).
	step := 10.0
	if tMax-tMin < 30 {
		step = 5
	}
	axisY := shareTop + svgShareH
	for t := math.Ceil(tMin/step) * step; t <= tMax; t += step {
		x := xOf(t)
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/><text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`, x, axisY, x, axisY+4, x, axisY+16, int(math.Round(t)))
	}
	p(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">seconds since the steady phase began</text>`, x0+svgPanelW/2, axisY+30)
	// Revocation: the moment /revoke answered, and each sidecar's first
	// refusal.
	if r.Marks.Revoked != nil {
		x := xOf(*r.Marks.Revoked)
		p(`<line class="revoked" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="2,2"/>`, x, latTop, x, axisY)
		for _, m := range r.Modes {
			if m.Revocation == nil || m.Revocation.RefusedAfter == nil {
				continue
			}
			rx := xOf(*r.Marks.Revoked + *m.Revocation.RefusedAfter)
			p(`<path class="refused" data-mode="%s" d="M%.1f,%.1f l-4,7 h8 z" fill="%s"><title>%s refused the revoked token after %s</title></path>`,
				m.Mode, rx, axisY-8, modeColor[m.Mode], esc(m.Mode), esc(formatSeconds(m.Revocation.RefusedAfter)))
		}
	}
	// The lines.
	for _, s := range series {
		y := latY
		if s.panel == "share" {
			y = shareY
		}
		for _, m := range r.Modes {
			var d strings.Builder
			pen := false
			for _, smp := range r.Timeline {
				var v *float64
				for _, pt := range smp.Modes {
					if pt.Mode == m.Mode {
						v = s.value(pt)
					}
				}
				if v == nil {
					pen = false
					continue
				}
				cmd := "L"
				if !pen {
					cmd = "M"
				}
				fmt.Fprintf(&d, "%s%.1f,%.1f ", cmd, xOf(smp.T), y(*v))
				pen = true
			}
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			p(`<path class="series" data-mode="%s" data-series="%s" d="%s" fill="none" stroke="%s" stroke-width="1.5"%s/>`,
				m.Mode, s.name, strings.TrimSpace(d.String()), modeColor[m.Mode], dash)
		}
	}
	p(`</g>`)
}

// decade labels the latency axis.
var decade = map[int]string{-5: "10 µs", -4: "100 µs", -3: "1 ms", -2: "10 ms", -1: "100 ms", 0: "1 s"}

// esc escapes text for SVG.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
