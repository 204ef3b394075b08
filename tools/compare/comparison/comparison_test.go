package comparison

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	jwtTarget           = "http://127.0.0.1:7070/compare"
	introspectionTarget = "http://127.0.0.1:7080/compare"
)

func mustParse(t *testing.T, text string) *scrape {
	t.Helper()
	s, err := parseScrape(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readScrape(t *testing.T, path string) *scrape {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(b))
}

func near(got *float64, want float64) bool {
	return got != nil && math.Abs(*got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	b := func(pairs ...float64) []Bucket {
		var out []Bucket
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, Bucket{LE: pairs[i], Count: pairs[i+1]})
		}
		return out
	}
	tests := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64 // NaN for none
	}{
		{name: "middle of a bucket", q: 0.5, buckets: b(1, 0, 2, 50, 4, 100, inf, 100), want: 2},
		{name: "interpolated", q: 0.75, buckets: b(1, 0, 2, 50, 4, 100, inf, 100), want: 3},
		{name: "first bucket starts at 0", q: 0.5, buckets: b(0.001, 100, inf, 100), want: 0.0005},
		{name: "rank in +Inf: the highest finite bound", q: 0.99, buckets: b(1, 10, 2, 20, inf, 100), want: 2},
		{name: "no observations", q: 0.5, buckets: b(1, 0, inf, 0), want: math.NaN()},
		{name: "no +Inf bucket", q: 0.5, buckets: b(1, 10, 2, 20), want: math.NaN()},
		{name: "q out of range", q: 1.5, buckets: b(1, 10, inf, 10), want: math.NaN()},
		{name: "dips made monotonic", q: 0.5, buckets: b(1, 60, 2, 50, inf, 100), want: 1 * 50.0 / 60},
		{name: "negative first bound", q: 0.1, buckets: b(-1, 10, 1, 20, inf, 20), want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quantile(tt.q, tt.buckets)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-12) {
				t.Errorf("Quantile(%g) = %g, want %g", tt.q, got, tt.want)
			}
		})
	}
}

// TestIncrease covers counters that were reset (a restarted issuer) and
// series that appeared during the phase.
func TestIncrease(t *testing.T) {
	a := mustParse(t, `# TYPE c counter
c{code="200",endpoint="token"} 10
c{code="200",endpoint="introspect"} 500
`)
	b := mustParse(t, `# TYPE c counter
c{code="200",endpoint="token"} 15
c{code="200",endpoint="introspect"} 40
c{code="401",endpoint="introspect"} 2
`)
	tests := []struct {
		name string
		a    *scrape
		ms   []matcher
		want float64
	}{
		{name: "grown", a: a, ms: []matcher{eq("endpoint", "token")}, want: 5},
		{name: "reset counts from zero, a new series from zero", a: a, ms: []matcher{eq("endpoint", "introspect")}, want: 40 + 2},
		{name: "all", a: a, want: 5 + 40 + 2},
		{name: "no process before", a: nil, ms: []matcher{oneOf("code", "401", "500")}, want: 2},
		{name: "prefix", a: a, ms: []matcher{hasPrefix("code", "2")}, want: 5 + 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := increase(tt.a, b, "c", tt.ms...); got != tt.want {
				t.Errorf("increase = %g, want %g", got, tt.want)
			}
		})
	}
	if got := increase(a, nil, "c"); got != 0 {
		t.Errorf("increase to a missing scrape = %g, want 0", got)
	}
}

// TestBucketIncreaseSumsSeries: two series of one histogram (one reset)
// add bucket by bucket before the quantile.
func TestBucketIncreaseSumsSeries(t *testing.T) {
	a := mustParse(t, `# TYPE h histogram
h_bucket{path="/a",le="1"} 10
h_bucket{path="/a",le="2"} 20
h_bucket{path="/a",le="+Inf"} 20
h_sum{path="/a"} 25
h_count{path="/a"} 20
h_bucket{path="/b",le="1"} 100
h_bucket{path="/b",le="2"} 100
h_bucket{path="/b",le="+Inf"} 100
h_sum{path="/b"} 50
h_count{path="/b"} 100
`)
	b := mustParse(t, `# TYPE h histogram
h_bucket{path="/a",le="1"} 20
h_bucket{path="/a",le="2"} 40
h_bucket{path="/a",le="+Inf"} 40
h_sum{path="/a"} 55
h_count{path="/a"} 40
h_bucket{path="/b",le="1"} 0
h_bucket{path="/b",le="2"} 20
h_bucket{path="/b",le="+Inf"} 20
h_sum{path="/b"} 35
h_count{path="/b"} 20
`)
	got := bucketIncrease(a, b, "h")
	want := []Bucket{{LE: 1, Count: 10}, {LE: 2, Count: 40}, {LE: math.Inf(1), Count: 40}}
	if len(got) != len(want) {
		t.Fatalf("buckets = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d = %v, want %v", i, got[i], want[i])
		}
	}
	// 40 observations: 10 up to 1, 30 between 1 and 2. The median's rank
	// 20 is the 10th of 30 in (1, 2].
	if q := Quantile(0.5, got); math.Abs(q-(1+10.0/30)) > 1e-12 {
		t.Errorf("p50 = %g, want %g", q, 1+10.0/30)
	}
	if got := bucketIncrease(a, b, "h", eq("path", "/a")); got[0].Count != 10 || got[2].Count != 20 {
		t.Errorf("/a alone = %v, want 10, 20, 20", got)
	}
}

// twoModes reads the hand-written phase of testdata/two-modes: 10 s, both
// sidecars, the issuer answering, introspection losing 100 requests to 503
// and dropping 10.
func twoModes(t *testing.T) (snapshot, snapshot) {
	t.Helper()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	read := func(prefix string, at time.Time) snapshot {
		s := snapshot{label: prefix, at: at, scrapes: map[string]*scrape{}, ready: map[string]int{}}
		for _, job := range []string{jobLoadgen, sidecarJob(ModeJWT), sidecarJob(ModeIntrospection), jobIssuer} {
			s.scrapes[job] = readScrape(t, filepath.Join("testdata", "two-modes", prefix+"-"+job+".txt"))
		}
		return s
	}
	return read("a", at), read("b", at.Add(10*time.Second))
}

var specs = []modeSpec{
	{mode: ModeJWT, job: sidecarJob(ModeJWT), target: jwtTarget},
	{mode: ModeIntrospection, job: sidecarJob(ModeIntrospection), target: introspectionTarget},
}

func TestPhaseStatsTwoModes(t *testing.T) {
	a, b := twoModes(t)
	type want struct {
		scheduled, dropped, served, perSecond, share, sidecar float64
		codes                                                 map[string]float64
		p50, p99, e2e50, e2e99, calls, perRequest, attempted  float64
	}
	tests := []struct {
		spec modeSpec
		want want
	}{
		{spec: specs[0], want: want{
			scheduled: 2000, served: 2000, perSecond: 200, share: 1, sidecar: 2000,
			codes: map[string]float64{"200": 2000},
			// verification: increase 200, 1200, 1900, 2000 up to 10, 20, 40, 80 µs
			p50: 10e-6 + 10e-6*800/1000, p99: 40e-6 + 40e-6*80/100,
			// end to end: 1000, 1800, 1990, 2000 up to 1, 2, 4 ms
			e2e50: 0.001, e2e99: 0.002 + 0.002*180/190,
			calls: 1, perRequest: 1.0 / 2000, attempted: 1, // the interval refresh; the cooldowns made no call
		}},
		{spec: specs[1], want: want{
			scheduled: 2000, dropped: 10, served: 1890, perSecond: 189, share: 0.945, sidecar: 1990,
			codes: map[string]float64{"200": 1890, "503": 100},
			// verification: 0, 995, 1885, 1990 up to 0.5, 1, 2 ms, +Inf
			p50: 0.001, p99: 0.002,
			// end to end: 0, 400, 1800, 1990 up to 1, 2, 4 ms, +Inf
			e2e50: 0.002 + 0.002*595/1400, e2e99: 0.004,
			calls: 1890, perRequest: 1890.0 / 1990, attempted: 1990,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.spec.mode, func(t *testing.T) {
			p := phaseStats(a, b, tt.spec)
			w := tt.want
			if p.Seconds != 10 || p.Scheduled != w.scheduled || p.Dropped != w.dropped || p.Served != w.served ||
				p.ServedPerSecond != w.perSecond || !near(p.ServedShare, w.share) || p.SidecarRequests != w.sidecar {
				t.Errorf("counts = %+v, want %+v", p, w)
			}
			if len(p.Codes) != len(w.codes) {
				t.Errorf("codes = %v, want %v", p.Codes, w.codes)
			}
			for c, n := range w.codes {
				if p.Codes[c] != n {
					t.Errorf("code %s = %g, want %g", c, p.Codes[c], n)
				}
			}
			for _, q := range []struct {
				name string
				got  *float64
				want float64
			}{
				{"verification p50", p.VerifyP50, w.p50}, {"verification p99", p.VerifyP99, w.p99},
				{"end-to-end p50", p.E2EP50, w.e2e50}, {"end-to-end p99", p.E2EP99, w.e2e99},
				{"token-service calls", p.TokenServiceCalls, w.calls}, {"calls per request", p.CallsPerRequest, w.perRequest},
				{"calls attempted", p.CallsAttempted, w.attempted},
			} {
				if !near(q.got, q.want) {
					t.Errorf("%s = %v, want %g", q.name, deref(q.got), q.want)
				}
			}
		})
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// TestNoIssuerMetrics: without the issuer's scrape the calls are unknown,
// never zero.
func TestNoIssuerMetrics(t *testing.T) {
	a, b := twoModes(t)
	delete(b.scrapes, jobIssuer)
	p := phaseStats(a, b, specs[1])
	if p.TokenServiceCalls != nil || p.CallsPerRequest != nil {
		t.Errorf("calls = %v, per request %v; want unknown (nil)", deref(p.TokenServiceCalls), deref(p.CallsPerRequest))
	}
	if !near(p.CallsAttempted, 1990) {
		t.Errorf("attempted = %v, want the sidecar's own 1990", deref(p.CallsAttempted))
	}
}

// results builds the results of a run whose steady and recovery phases are
// the two-modes phase and whose outage is given.
func results(t *testing.T, jwtOutage, introspectionOutage PhaseStats, caches bool) *Results {
	t.Helper()
	a, b := twoModes(t)
	r := &Results{
		Rate: 200, Concurrency: 32, Caches: caches,
		Machine: Machine{CPU: "Test CPU", Cores: 2, OS: "linux", Arch: "amd64", GoVersion: "go1.26.8", SidecarGo: "go1.26.8"},
		Phases: []Phase{
			{Name: "warm-up", Seconds: 3}, {Name: "steady", Seconds: 10, Counted: true},
			{Name: "outage (issuer killed)", Seconds: 10, Counted: true}, {Name: "issuer restart", Seconds: 0.1},
			{Name: "recovery", Seconds: 10, Counted: true},
		},
		Command: "go run ./tools/compare -bin bin",
	}
	for i, out := range []PhaseStats{jwtOutage, introspectionOutage} {
		st := phaseStats(a, b, specs[i])
		r.Modes = append(r.Modes, ModeStats{Mode: specs[i].mode, Target: specs[i].target, Steady: st, Outage: out, Recovery: st,
			Ready: ReadyStatus{Steady: 200, Outage: 200}})
	}
	return r
}

func outage(served, scheduled float64, codes map[string]float64, attempted float64) PhaseStats {
	return PhaseStats{Seconds: 10, Scheduled: scheduled, Settled: scheduled, Served: served, ServedPerSecond: served / 10,
		ServedShare: ptr(served / scheduled), Codes: codes, CallsAttempted: ptr(attempted)}
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *Results)
		caches bool
		want   []string
	}{
		{name: "as expected", edit: func(*Results) {}},
		{name: "jwt stopped during the outage", edit: func(r *Results) {
			r.Modes[0].Outage = outage(100, 2000, map[string]float64{"200": 100, "401": 1900}, 0)
		}, want: []string{"jwt: only 5.0% served while the issuer was down", "401: 1900"}},
		{name: "introspection kept serving without a cache", edit: func(r *Results) {
			r.Modes[1].Outage = outage(2000, 2000, map[string]float64{"200": 2000}, 0)
		}, want: []string{"introspection: 100.0% served while the issuer was down, without a cache"}},
		{name: "with caches introspection may serve", caches: true, edit: func(r *Results) {
			r.Modes[1].Outage = outage(2000, 2000, map[string]float64{"200": 2000}, 0)
		}},
		{name: "steady refusals", edit: func(r *Results) {
			r.Modes[0].Steady = outage(10, 2000, map[string]float64{"200": 10, "401": 1990}, 0)
		}, want: []string{"jwt: only 0.5% of the steady phase's requests were served", "401: 1990"}},
		{name: "no recovery", edit: func(r *Results) {
			r.Modes[1].Recovery = outage(0, 1000, map[string]float64{"503": 1000}, 0)
		}, want: []string{"introspection: only 0.0% served after the issuer came back"}},
		{name: "jwt calls the issuer per request", edit: func(r *Results) {
			r.Modes[0].Steady.CallsPerRequest = ptr(1)
		}, want: []string{"jwt: 1.000 token-service calls per request"}},
		{name: "jwt polls a revocation list", edit: func(r *Results) {
			// 2000 requests in 10 s, a poll every 0.5 s: 21 calls at most.
			r.RevocationInterval = 0.5
			r.Modes[0].Steady.CallsPerRequest = ptr(0.01 + 20.0/2000)
		}},
		{name: "jwt polls more than its interval", edit: func(r *Results) {
			r.RevocationInterval = 0.5
			r.Modes[0].Steady.CallsPerRequest = ptr(0.01 + 40.0/2000)
		}, want: []string{"jwt: 0.030 token-service calls per request"}},
		{name: "introspection cached without the flag", edit: func(r *Results) {
			r.Modes[1].Steady.CallsPerRequest = ptr(0.01)
		}, want: []string{"introspection: 0.01 token-service calls per request"}},
		{name: "nothing scheduled", edit: func(r *Results) {
			r.Modes[0].Steady = PhaseStats{}
		}, want: []string{"jwt: only 0.0% of the steady phase's requests were served", "answers: none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := results(t, outage(2000, 2000, map[string]float64{"200": 2000}, 0), outage(0, 2000, map[string]float64{"503": 2000}, 2000), tt.caches)
			tt.edit(r)
			got := strings.Join(r.check(), "\n")
			if len(tt.want) == 0 && got != "" {
				t.Errorf("failures:\n%s\nwant none", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("failures:\n%s\nwant %q", got, w)
				}
			}
		})
	}
}

func TestWriteTableGolden(t *testing.T) {
	r := results(t, outage(2000, 2000, map[string]float64{"200": 2000}, 0), outage(0, 2000, map[string]float64{"503": 1990, "error": 10}, 2000), false)
	r.Notes = []string{"an example note"}
	r.RTT = RTT{Seconds: 0.002, Measured: ptr(0.0023)}
	r.RevocationInterval = 2
	r.Modes[0].Revocation = &Revocation{RefusedAfter: ptr(1.5), WaitedSeconds: 1.5, Probes: 300}
	r.Modes[1].Revocation = &Revocation{RefusedAfter: ptr(0.003), WaitedSeconds: 0.003, Probes: 1}
	r.Failures = append(r.check(), r.checkRevocation()...)
	var out bytes.Buffer
	r.WriteTable(&out)
	const golden = "testdata/table.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("table differs from %s (run go test -update):\n%s", golden, out.String())
	}
	for _, line := range []string{
		"| | jwt (stateless) | introspection (RFC 7662) |",
		"| served (2xx) per second, steady | 200.0 | 189.0 |",
		"| verification p50, steady ¹ | 18.0 µs | 1.00 ms |",
		"| token-service calls per request, steady ² | 0.0005 (1 in 2000 requests) | 0.95 (1890 in 1990 requests) |",
		"| **served (2xx) while the issuer was down** | **100.0% (2000 of 2000)** | **0.0% (0 of 2000)** |",
		"| answers while the issuer was down | 200: 2000 | 503: 1990, error: 10 |",
		"## Stateless JWT verification vs token introspection, token service 2 ms away",
		"| token-service requests per second, steady ² | 0.10/s | 189/s |",
		"| **revoked token refused after** ⁴ | **1.50 s** | **3.00 ms** |",
		"token service: through a relay adding a 2 ms round trip to every request and response (measured before the run: +2.30 ms per exchange)",
		"¹ Bucket-interpolated",
		"NOTE: introspection, steady: jwt-loadgen dropped 10 of 2000",
		"machine: Test CPU, 2 cores, linux/amd64, go1.26.8",
		"command: go run ./tools/compare -bin bin",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("table lacks %q", line)
		}
	}
	if strings.Contains(out.String(), "UNEXPECTED") {
		t.Errorf("a run as expected printed UNEXPECTED:\n%s", out.String())
	}
}

// TestRecordedJWTRun computes the table of a real run's scrapes
// (testdata/recorded-jwt: `go run ./tools/compare -quick -modes jwt` on a
// build whose issuer had no /metrics yet; go_ and process_ series cut).
func TestRecordedJWTRun(t *testing.T) {
	labels := []string{"warm", "steady", "outage", "restarted", "recovered"}
	// The phase lengths the run measured.
	offsets := []time.Duration{0, 3028436902, 3028436902 + 3020129730, 3028436902 + 3020129730 + 80753712, 3028436902 + 3020129730 + 80753712 + 2023408030}
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var snaps []snapshot
	for i, l := range labels {
		s := snapshot{label: l, at: start.Add(offsets[i]), scrapes: map[string]*scrape{}, ready: map[string]int{sidecarJob(ModeJWT): 200},
			missing: map[string]string{jobIssuer: "GET http://127.0.0.1:46475/metrics: 404 Not Found"}}
		for _, job := range []string{jobLoadgen, sidecarJob(ModeJWT)} {
			s.scrapes[job] = readScrape(t, filepath.Join("testdata", "recorded-jwt", strings.Join([]string{strconv.Itoa(i), l, job}, "-")+".txt"))
		}
		snaps = append(snaps, s)
	}
	target := "http://127.0.0.1:36765/compare"
	r := compute(snaps, []modeSpec{{mode: ModeJWT, job: sidecarJob(ModeJWT), target: target}},
		Options{Rate: 200, Concurrency: 32, Phases: Phases{Warmup: time.Second}})
	if len(r.Failures) > 0 {
		t.Errorf("failures: %q", r.Failures)
	}
	m := r.Modes[0]
	for _, c := range []struct {
		name                        string
		p                           PhaseStats
		scheduled, served, requests float64
	}{
		{"steady", m.Steady, 606, 606, 604},
		{"outage", m.Outage, 604, 604, 604},
		{"recovery", m.Recovery, 406, 406, 407},
	} {
		if c.p.Scheduled != c.scheduled || c.p.Served != c.served || c.p.SidecarRequests != c.requests || c.p.Dropped != 0 {
			t.Errorf("%s: scheduled %g, served %g, sidecar %g, dropped %g; want %g, %g, %g, 0",
				c.name, c.p.Scheduled, c.p.Served, c.p.SidecarRequests, c.p.Dropped, c.scheduled, c.served, c.requests)
		}
		if !near(c.p.CallsAttempted, 0) {
			t.Errorf("%s: the jwt sidecar attempted %v calls, want 0 (its keys were loaded before the warm-up)", c.name, deref(c.p.CallsAttempted))
		}
	}
	// RS256 verification on this machine: between 100 µs and 1 ms at the
	// median, in the sidecar's 1.78x buckets.
	if p := m.Steady.VerifyP50; p == nil || *p < 100e-6 || *p > 1e-3 {
		t.Errorf("steady verification p50 = %v", deref(p))
	}
	if !near(m.Steady.VerifyP50, 0.00016153837195656594) {
		t.Errorf("steady verification p50 = %v, want the recorded run's 161.5 µs", deref(m.Steady.VerifyP50))
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "no issuer metrics at the warm snapshot") {
		t.Errorf("notes = %q, want the missing issuer metrics said once", r.Notes)
	}
	var out bytes.Buffer
	r.WriteTable(&out)
	for _, line := range []string{
		"| | jwt (stateless) |",
		"| token-service calls per request, steady ² | n/a |",
		"| **served (2xx) while the issuer was down** | **100.0% (604 of 604)** |",
		"| verification p50, steady ¹ | 161.5 µs |",
		"phases: warm-up 1.0 s (not counted), steady 3.0 s, outage (issuer killed) 3.0 s, issuer restart 0.1 s (not counted), recovery 2.0 s",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, out.String())
		}
	}
}

// TestComputeIncompleteRun: fewer snapshots than phases is a failure, not
// a table of zeros.
func TestComputeIncompleteRun(t *testing.T) {
	a, b := twoModes(t)
	r := compute([]snapshot{a, b}, specs, Options{})
	if len(r.Failures) != 1 || !strings.Contains(r.Failures[0], "did not finish") {
		t.Errorf("failures = %q", r.Failures)
	}
}

// TestServedShareCountsFinishedRequests: a request due just before a phase
// boundary is answered just after it. The share of served requests counts
// the requests that finished in the phase, 2xx over all answers and drops,
// so such late answers can never make it pass 100% (a real run once
// printed "2009 of 2008" when the share was over scheduled requests).
func TestServedShareCountsFinishedRequests(t *testing.T) {
	a, b := twoModes(t)
	late := 0
	for i, smp := range b.scrapes[jobLoadgen].samples {
		if smp.name == loadRequests && smp.labels["target"] == jwtTarget && smp.labels["code"] == "200" {
			b.scrapes[jobLoadgen].samples[i].value += 7
			late++
		}
	}
	if late != 1 {
		t.Fatalf("found %d jwt 200 series in the fixture, want 1", late)
	}
	p := phaseStats(a, b, specs[0])
	if p.Served != p.Scheduled+7 {
		t.Fatalf("served %g of %g scheduled: the 7 late answers are not counted", p.Served, p.Scheduled)
	}
	if p.Settled != p.Served || p.ServedShare == nil || *p.ServedShare != 1 {
		t.Errorf("settled %g, share %v: want every finished request served, share 1", p.Settled, p.ServedShare)
	}
}
