package comparison

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// withRevocation adds a round trip, a revocation phase and a timeline to
// the results of results(): jwt refused after 1.5 s of a 2 s poll,
// introspection after 3 ms; samples every second for 30 s, with the
// introspection sidecar serving nothing while the issuer was down.
func withRevocation(t *testing.T, rtt float64) *Results {
	t.Helper()
	r := results(t, outage(2000, 2000, map[string]float64{"200": 2000}, 0), outage(0, 2000, map[string]float64{"503": 2000}, 2000), false)
	r.RTT = RTT{Seconds: rtt}
	if rtt > 0 {
		r.RTT.Measured = ptr(rtt + 0.0003)
	}
	r.RevocationInterval = 2
	r.Modes[0].Revocation = &Revocation{RefusedAfter: ptr(1.5), WaitedSeconds: 1.5, Probes: 300, Challenge: `Bearer error="invalid_token"`}
	r.Modes[1].Revocation = &Revocation{RefusedAfter: ptr(0.003), WaitedSeconds: 0.003, Probes: 1}
	r.Marks = Marks{OutageStart: 10, OutageEnd: 20, Restarted: 20.1, Recovered: 30, Revoked: ptr(30.2), End: 31.7}
	for i := -2; i <= 31; i++ {
		in := float64(i) >= 10 && float64(i) <= 20
		share := 1.0
		if in {
			share = 0
		}
		r.Timeline = append(r.Timeline, Sample{T: float64(i), Modes: []Point{
			{Mode: ModeJWT, ServedPerSecond: 200, ServedShare: ptr(1), VerifyP50: ptr(100e-6), VerifyP99: ptr(900e-6), E2EP50: ptr(1e-3), E2EP99: ptr(3e-3)},
			{Mode: ModeIntrospection, ServedPerSecond: 200 * share, ServedShare: ptr(share), VerifyP50: ptr(1e-3 + rtt), VerifyP99: ptr(2e-3 + rtt), E2EP50: ptr(2e-3 + rtt), E2EP99: ptr(4e-3 + rtt)},
		}})
	}
	// An interval without answers leaves a gap, not a zero.
	r.Timeline[5].Modes[0].E2EP50 = nil
	return r
}

func twoRuns(t *testing.T) *Report {
	t.Helper()
	rp := &Report{Command: "go run ./tools/compare -rtt 0,2ms -svg docs/compare.svg", Machine: Machine{CPU: "Test CPU <1>", Cores: 2, OS: "linux", Arch: "amd64", GoVersion: "go1.26.8"}}
	for _, rtt := range []float64{0, 0.002} {
		rp.Runs = append(rp.Runs, withRevocation(t, rtt))
	}
	return rp
}

// TestWriteSVG: the picture is well-formed XML with, per round trip, each
// mode's three series (one point per sample, a gap where there was no
// value), the outage shaded in both panels, and the revocation marked.
func TestWriteSVG(t *testing.T) {
	rp := twoRuns(t)
	var out bytes.Buffer
	if err := rp.WriteSVG(&out); err != nil {
		t.Fatal(err)
	}
	type elem struct {
		name  string
		attrs map[string]string
		run   string // data-rtt-seconds of the enclosing run
	}
	var elems []elem
	dec := xml.NewDecoder(bytes.NewReader(out.Bytes()))
	run, root := "", ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out.String())
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		e := elem{name: se.Name.Local, attrs: map[string]string{}}
		for _, a := range se.Attr {
			e.attrs[a.Name.Local] = a.Value
		}
		if root == "" {
			root = se.Name.Space + " " + se.Name.Local
		}
		if e.name == "g" && e.attrs["class"] == "run" {
			run = e.attrs["data-rtt-seconds"]
		}
		e.run = run
		elems = append(elems, e)
	}
	if root != "http://www.w3.org/2000/svg svg" {
		t.Errorf("root element %q, want svg in the SVG namespace", root)
	}
	count := func(keep func(e elem) bool) int {
		n := 0
		for _, e := range elems {
			if keep(e) {
				n++
			}
		}
		return n
	}
	for _, rtt := range []string{"0", "0.002"} {
		for _, mode := range []string{ModeJWT, ModeIntrospection} {
			for _, s := range []string{"verification p50", "end-to-end p50", "served share"} {
				var d []string
				for _, e := range elems {
					if e.run == rtt && e.name == "path" && e.attrs["class"] == "series" && e.attrs["data-mode"] == mode && e.attrs["data-series"] == s {
						d = append(d, e.attrs["d"])
					}
				}
				if len(d) != 1 {
					t.Errorf("rtt %s, %s %s: %d paths, want 1", rtt, mode, s, len(d))
					continue
				}
				points := strings.Count(d[0], "M") + strings.Count(d[0], "L")
				wantPoints, wantMoves := 34, 1
				if mode == ModeJWT && s == "end-to-end p50" {
					wantPoints, wantMoves = 33, 2 // the gap
				}
				if points != wantPoints || strings.Count(d[0], "M") != wantMoves {
					t.Errorf("rtt %s, %s %s: %d points in %d strokes, want %d in %d: %s", rtt, mode, s, points, strings.Count(d[0], "M"), wantPoints, wantMoves, d[0])
				}
			}
		}
		if n := count(func(e elem) bool { return e.run == rtt && e.name == "rect" && e.attrs["class"] == "outage" }); n != 2 {
			t.Errorf("rtt %s: %d outage areas, want 2 (latency and share panels)", rtt, n)
		}
		if n := count(func(e elem) bool { return e.run == rtt && e.attrs["class"] == "revoked" }); n != 1 {
			t.Errorf("rtt %s: %d revocation lines, want 1", rtt, n)
		}
		if n := count(func(e elem) bool { return e.run == rtt && e.attrs["class"] == "refused" }); n != 2 {
			t.Errorf("rtt %s: %d refusal marks, want 2", rtt, n)
		}
	}
	for _, text := range []string{"token service on loopback", "token service 2 ms away", "relay measured at +2.30 ms per exchange", "Test CPU &lt;1&gt;", "token service down"} {
		if !strings.Contains(out.String(), text) {
			t.Errorf("picture lacks %q", text)
		}
	}
}

// TestWriteSVGEmpty: a report without runs still draws a valid picture.
func TestWriteSVGEmpty(t *testing.T) {
	var out bytes.Buffer
	if err := (&Report{}).WriteSVG(&out); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&out)
	for {
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	rp := twoRuns(t)
	rp.Runs[1].Failures = []string{"something off"}
	var out bytes.Buffer
	rp.WriteSummary(&out)
	for _, line := range []string{
		"| token service | mode | verification p50 | verification p99 | end-to-end p99 | token-service calls per request | token-service requests/s | **served while it was down** | **revoked token refused after** |",
		"| on loopback | jwt | 18.0 µs | 72.0 µs | 3.89 ms | 0.0005 | 0.10/s | **100.0%** | **1.50 s** |",
		"| on loopback | introspection | 1.00 ms | 2.00 ms | 4.00 ms | 0.95 | 189/s | **0.0%** | **3.00 ms** |",
		"| 2 ms away (measured +2.30 ms) | introspection |",
		"Revocation: the jwt sidecar polls /revocations every 2 s.",
		"**UNEXPECTED: token service 2 ms away: something off**",
		"command: go run ./tools/compare -rtt 0,2ms",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("summary lacks %q:\n%s", line, out.String())
		}
	}
}

func TestCheckRevocation(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *Results)
		caches bool
		want   string
	}{
		{name: "as expected", edit: func(*Results) {}},
		{name: "jwt never refused", edit: func(r *Results) {
			r.Modes[0].Revocation = &Revocation{WaitedSeconds: 7}
		}, want: "jwt: a revoked token was still accepted 7.0 s after the revocation"},
		{name: "jwt late", edit: func(r *Results) {
			r.Modes[0].Revocation.RefusedAfter = ptr(4.5)
		}, want: "jwt: a revoked token was refused only 4.50 s after"},
		{name: "introspection late without a cache", edit: func(r *Results) {
			r.Modes[1].Revocation.RefusedAfter = ptr(5)
		}, want: "introspection: a revoked token was not refused at once (5.00 s)"},
		{name: "introspection with a cache may be late", caches: true, edit: func(r *Results) {
			r.Modes[1].Revocation = &Revocation{WaitedSeconds: 7}
		}},
		{name: "no revocation phase", edit: func(r *Results) {
			r.Modes[0].Revocation, r.Modes[1].Revocation = nil, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := withRevocation(t, 0)
			r.Caches = tt.caches
			tt.edit(r)
			got := strings.Join(r.checkRevocation(), "\n")
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("failures %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPoint: a timeline sample is the phase numbers of its interval.
func TestPoint(t *testing.T) {
	a, b := twoModes(t)
	smp := point(a, b, specs)
	if len(smp.Modes) != 2 || smp.Modes[0].Mode != ModeJWT || smp.Modes[1].Mode != ModeIntrospection {
		t.Fatalf("modes = %+v", smp.Modes)
	}
	in := smp.Modes[1]
	if in.ServedPerSecond != 189 || !near(in.ServedShare, 0.945) || !near(in.VerifyP50, 0.001) || !near(in.E2EP99, 0.004) {
		t.Errorf("introspection point = %+v", in)
	}
	if want := float64(b.at.UnixNano()) / 1e9; smp.T != want {
		t.Errorf("T = %g, want the second scrape's time %g", smp.T, want)
	}
}
