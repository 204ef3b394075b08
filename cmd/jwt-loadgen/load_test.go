package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// running is a load generator started in this process.
type running struct {
	*app
	admin string // ADMIN_ADDR
	logs  *proctest.Buffer
	stop  context.CancelFunc
	done  chan error
}

// startLoad runs the load generator of env (plus the test client's
// credentials and a free admin port) until the test ends.
func startLoad(t *testing.T, tokenURL string, env map[string]string) *running {
	t.Helper()
	admin := proctest.FreeAddr(t)
	full := map[string]string{
		"TOKEN_URL": tokenURL, "CLIENT_ID": testClient, "CLIENT_SECRET": testSecret,
		"ADMIN_ADDR": admin, "REPORT_INTERVAL": "200ms",
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, secret, err := loadConfig(full)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{admin: admin, logs: &proctest.Buffer{}, done: make(chan error, 1)}
	r.app = newApp(cfg, secret, cli.Logger("debug", "text", r.logs))
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		r.wait(t)
		if t.Failed() {
			t.Logf("jwt-loadgen logs:\n%s", r.logs.String())
		}
	})
	return r
}

// wait returns once serve has returned, failing the test if it took more
// than 20 s or returned an error.
func (r *running) wait(t *testing.T) {
	t.Helper()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("serve = %v, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the load generator did not stop within 20s")
	}
}

// metric sums the samples of name in reg whose labels include want:
// counter and gauge values, or a histogram's sample count.
func metric(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// eventually polls cond every 10 ms until it holds, for at most 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond) // the poll interval
	}
}

// countingTarget answers 200 and counts.
func countingTarget(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestOpenLoopAccounting runs 200 requests/s to two targets for 1 s. The
// schedule calls for exactly 200 requests each whatever the machine's
// speed, and every one of them is either answered or counted as dropped.
func TestOpenLoopAccounting(t *testing.T) {
	signer := jwttest.NewSigner(t, "ES256", "k1")
	ts := newTokenServer(t, signer, time.Hour, 3600)
	a, aSeen := countingTarget(t)
	b, bSeen := countingTarget(t)
	r := startLoad(t, ts.URL, map[string]string{
		"TARGETS": a.URL + "/x," + b.URL + "/y", "RATE": "200", "DURATION": "1s", "CONCURRENCY": "16",
	})
	r.wait(t)

	for _, tg := range []struct {
		url  string
		seen *atomic.Int64
	}{{a.URL + "/x", aSeen}, {b.URL + "/y", bSeen}} {
		target := map[string]string{"target": tg.url}
		scheduled := metric(t, r.reg, "jwt_loadgen_scheduled_total", target)
		dropped := metric(t, r.reg, "jwt_loadgen_dropped_total", target)
		answered := metric(t, r.reg, "jwt_loadgen_requests_total", target)
		ok := metric(t, r.reg, "jwt_loadgen_requests_total", map[string]string{"target": tg.url, "code": "200"})
		if scheduled != 200 {
			t.Errorf("%s: scheduled = %g, want exactly 200 (RATE 200 for 1s)", tg.url, scheduled)
		}
		if answered+dropped != scheduled {
			t.Errorf("%s: answered %g + dropped %g != scheduled %g", tg.url, answered, dropped, scheduled)
		}
		if got := float64(tg.seen.Load()); got != ok {
			t.Errorf("%s: the server answered %g requests, the client counted %g 200s", tg.url, got, ok)
		}
		// Wide: only a machine stalled for half the run drops more.
		if ok < 100 {
			t.Errorf("%s: %g answered with 200, want at least 100 of 200", tg.url, ok)
		}
		if n := metric(t, r.reg, "jwt_loadgen_request_duration_seconds", target); n != answered {
			t.Errorf("%s: %g durations observed, want one per answer (%g)", tg.url, n, answered)
		}
		if n := metric(t, r.reg, "jwt_loadgen_in_flight", target); n != 0 {
			t.Errorf("%s: %g in flight after the run, want 0", tg.url, n)
		}
	}
	if n := ts.issued.Load(); n != 1 {
		t.Errorf("tokens issued = %d, want 1 (it lives an hour)", n)
	}
	if !strings.Contains(r.logs.String(), "load finished") {
		t.Error("no final summary in the logs")
	}
}

// TestDropsWhenAllBusy holds every request at the target: with
// CONCURRENCY 2, two requests are sent and the rest of the schedule is
// dropped, not queued and not slowed down.
func TestDropsWhenAllBusy(t *testing.T) {
	signer := jwttest.NewSigner(t, "ES256", "k1")
	ts := newTokenServer(t, signer, time.Hour, 3600)
	release := make(chan struct{})
	var arrived atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived.Add(1)
		<-release
	}))
	defer target.Close()
	defer close(release)
	r := startLoad(t, ts.URL, map[string]string{
		"TARGETS": target.URL, "RATE": "100", "DURATION": "300ms", "CONCURRENCY": "2",
	})
	labels := map[string]string{"target": target.URL}
	eventually(t, "30 requests scheduled", func() bool {
		return metric(t, r.reg, "jwt_loadgen_scheduled_total", labels) == 30
	})
	if n := metric(t, r.reg, "jwt_loadgen_in_flight", labels); n != 2 {
		t.Errorf("in flight = %g, want 2 (CONCURRENCY)", n)
	}
	release <- struct{}{}
	release <- struct{}{}
	r.wait(t)
	if n := metric(t, r.reg, "jwt_loadgen_dropped_total", labels); n != 28 {
		t.Errorf("dropped = %g, want 28 of 30", n)
	}
	if n := metric(t, r.reg, "jwt_loadgen_requests_total", labels); n != 2 {
		t.Errorf("answered = %g, want 2", n)
	}
	if n := arrived.Load(); n != 2 {
		t.Errorf("the target saw %d requests, want 2", n)
	}
}

// TestRefreshesBeforeExp issues tokens that live 2 s to a run of 3 s: the
// target verifies exp with no leeway, so every request passing means a new
// token was in use before the first one expired.
func TestRefreshesBeforeExp(t *testing.T) {
	signer := jwttest.NewSigner(t, "ES256", "k1")
	ts := newTokenServer(t, signer, 2*time.Second, 2)
	target := newVerifyingTarget(t, signer)
	start := time.Now()
	r := startLoad(t, ts.URL, map[string]string{"TARGETS": target.URL, "RATE": "20", "DURATION": "3s"})
	r.wait(t)

	hits := target.seen()
	tokens := map[string]bool{}
	for _, h := range hits {
		tokens[h.token] = true
		if h.status != http.StatusOK {
			t.Errorf("a request at +%s got %d: its token was not valid then", h.at.Sub(start).Round(time.Millisecond), h.status)
		}
	}
	if len(hits) == 0 || hits[len(hits)-1].at.Sub(start) < 2*time.Second {
		t.Fatalf("no request after the first token's exp; the test proves nothing")
	}
	if ts.issued.Load() < 2 || len(tokens) < 2 {
		t.Errorf("issued %d tokens, %d used; want at least 2 of each", ts.issued.Load(), len(tokens))
	}
	if n := metric(t, r.reg, "jwt_loadgen_token_requests_total", map[string]string{"result": "ok"}); n != float64(ts.issued.Load()) {
		t.Errorf("token_requests_total{result=ok} = %g, want %d", n, ts.issued.Load())
	}
	if n := metric(t, r.reg, "jwt_loadgen_requests_total", map[string]string{"code": "200"}); n != float64(len(hits)) {
		t.Errorf("200s counted = %g, the target answered %d", n, len(hits))
	}
}

// TestTokenServiceDownKeepsSending is the outage drill: the token service
// goes away after the first token; refreshes fail and are counted, and the
// load goes on with the last token, which the target still accepts.
func TestTokenServiceDownKeepsSending(t *testing.T) {
	signer := jwttest.NewSigner(t, "ES256", "k1")
	// The JWT lives an hour but expires_in says 0.4 s: the load generator
	// tries to refresh within the run and finds the service gone.
	ts := newTokenServer(t, signer, time.Hour, 0.4)
	var downAt atomic.Int64
	var once sync.Once
	ts.onIssue = func() {
		once.Do(func() {
			downAt.Store(time.Now().UnixNano())
			go ts.Close() // after this response; later fetches are refused
		})
	}
	target := newVerifyingTarget(t, signer)
	r := startLoad(t, ts.URL, map[string]string{"TARGETS": target.URL, "RATE": "20", "DURATION": "1500ms"})
	r.wait(t)

	if n := ts.issued.Load(); n != 1 {
		t.Fatalf("issued %d tokens, want 1 before the outage", n)
	}
	if n := metric(t, r.reg, "jwt_loadgen_token_requests_total", map[string]string{"result": "error"}); n < 1 {
		t.Errorf("token_requests_total{result=error} = %g, want the failed refreshes counted", n)
	}
	after := 0
	for _, h := range target.seen() {
		if h.at.UnixNano() > downAt.Load()+int64(time.Second) {
			after++
		}
		if h.status != http.StatusOK {
			t.Errorf("a request got %d, want 200 with the old token", h.status)
		}
	}
	if after == 0 {
		t.Error("no request reached the target a second after the token service went down")
	}
	if logs := r.logs.String(); !strings.Contains(logs, "token fetch failed") || !strings.Contains(logs, "sending_with_token_expiring_in") {
		t.Errorf("the logs do not say the fetch failed and the old token is in use:\n%s", logs)
	}
}

// TestNoTokenNoLoad: until the first token arrives nothing is sent and
// /readyz answers 503; the refused fetches are counted.
func TestNoTokenNoLoad(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_client","error_description":"unknown client"}`))
	}))
	defer refusing.Close()
	target, seen := countingTarget(t)
	r := startLoad(t, refusing.URL, map[string]string{"TARGETS": target.URL, "RATE": "100"})
	eventually(t, "two refused fetches", func() bool {
		return metric(t, r.reg, "jwt_loadgen_token_requests_total", map[string]string{"result": "error"}) >= 2
	})
	if n := seen.Load(); n != 0 {
		t.Errorf("the target saw %d requests before any token, want 0", n)
	}
	if n := metric(t, r.reg, "jwt_loadgen_scheduled_total", nil); n != 0 {
		t.Errorf("scheduled = %g before any token, want 0", n)
	}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable} {
		resp, err := http.Get("http://" + r.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	if !strings.Contains(r.logs.String(), "invalid_client unknown client") {
		t.Errorf("the logs do not carry the token endpoint's error:\n%s", r.logs.String())
	}
	r.stop()
	r.wait(t)
}
