package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
)

// inProcess is an upstream inside the benchmark: it drains the request and
// answers 200 with a small body, with no network in between, so that the
// benchmarks measure the proxy alone.
type inProcess struct{}

func (inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader("upstream ok")),
		ContentLength: 11,
		Request:       r,
	}, nil
}

// baseline is the comparison: a plain pooled ReverseProxy doing only what
// any reverse proxy does (SetURL, X-Forwarded-*).
func baseline(b *testing.B) http.Handler {
	up := mustURL(b, "http://127.0.0.1:3000")
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetURL(up)
			pr.SetXForwarded()
		},
		Transport:  inProcess{},
		BufferPool: newBufferPool(),
	}
}

// sidecar is the whole Handler with the real verifier and metrics, its
// token cache on, and two claim headers.
func sidecar(b *testing.B) (http.Handler, string) {
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	p, err := testOptions{
		Options: Options{
			Upstream:  mustURL(b, "http://127.0.0.1:3000"),
			Recorder:  m,
			Logger:    discardLogger(),
			Transport: inProcess{},
		},
		Verifier:     newVerifier(b, verifierConfig{cacheSize: 1024}, m),
		ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
		PublicPaths:  []string{"/public/*", "/healthz"},
	}.build()
	if err != nil {
		b.Fatal(err)
	}
	return p.Handler(), benchToken(b)
}

func benchRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://app.example/api/v1/items?page=2", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func serveLoop(b *testing.B, h http.Handler, r *http.Request) {
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, fresh(r))
		if rec.Code != http.StatusOK {
			b.Fatalf("status = %d", rec.Code)
		}
	}
	cpu.report(b)
}

// fresh copies r as a server would parse it anew: handlers may change the
// inbound request's headers (the proxy strips the token from them), so
// reusing one request across iterations would measure something else.
// Baseline and handler pay the same copy.
func fresh(r *http.Request) *http.Request {
	c := *r
	c.Header = r.Header.Clone()
	return &c
}

// cpuClock reads the process's CPU time (user + system, every thread, GC
// included), so that a benchmark can report CPU per request, which other
// load on the machine does not inflate the way it inflates ns/op.
type cpuClock struct{ start time.Duration }

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) cpuClock { return cpuClock{start: processCPU(b)} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU(b)-c.start)/float64(b.N), "cpu-ns/op")
}

func serveParallel(b *testing.B, h http.Handler, token string) {
	b.ReportAllocs()
	cpu := startCPU(b)
	defer cpu.report(b)
	b.RunParallel(func(pb *testing.PB) {
		r := benchRequest(token)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, fresh(r))
			if rec.Code != http.StatusOK {
				b.Errorf("status = %d", rec.Code)
				return
			}
		}
	})
}

// BenchmarkBaseline is a plain pooled ReverseProxy, for comparison with
// BenchmarkHandler.
// The baseline gets the same requests, token included: a client behind a
// plain proxy sends it too.
func BenchmarkBaseline(b *testing.B) {
	serveLoop(b, baseline(b), benchRequest(benchToken(b)))
}

func benchToken(b *testing.B) string { return allKeys(b).rsa.Sign(b, claims(issA)) }

// BenchmarkHandler is the whole chain with a repeated token: every request
// after the first is a token cache hit.
func BenchmarkHandler(b *testing.B) {
	h, tok := sidecar(b)
	serveLoop(b, h, benchRequest(tok))
}

// BenchmarkHandlerPublic is a public path: no verification at all.
func BenchmarkHandlerPublic(b *testing.B) {
	h, _ := sidecar(b)
	r := benchRequest("")
	r.URL.Path = "/public/app.js"
	serveLoop(b, h, r)
}

// BenchmarkHandlerRefused is a request without a token: the 401 path, which
// an unauthenticated flood exercises.
func BenchmarkHandlerRefused(b *testing.B) {
	h, _ := sidecar(b)
	r := benchRequest("")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
	}
}

func BenchmarkBaselineParallel(b *testing.B) {
	serveParallel(b, baseline(b), benchToken(b))
}

func BenchmarkHandlerParallel(b *testing.B) {
	h, tok := sidecar(b)
	serveParallel(b, h, tok)
}

func BenchmarkHeaderValue(b *testing.B) {
	tests := []struct {
		name string
		json string
	}{
		{name: "string", json: `"alice@example.com"`},
		{name: "integer", json: `1700000000`},
		{name: "exponent", json: `1e21`},
		{name: "one role", json: `["admin"]`},
		{name: "roles", json: `["admin","user","billing","support"]`},
		{name: "object", json: `{"roles":["a","b"],"tenant":"t1"}`},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			d := json.NewDecoder(strings.NewReader(tt.json))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := HeaderValue(v); !ok {
					b.Fatal("not rendered")
				}
			}
		})
	}
}

// loopback benchmarks run the proxy as a real server between a real client
// and a real upstream on 127.0.0.1. CPU per request covers all three (they
// share the process), so the ratio understates the proxy's own share; the
// in-process benchmarks above overstate it. The truth for a deployment lies
// between, nearer this one.
func loopback(b *testing.B, h func(upstream *url.URL) http.Handler, token string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream ok")
	}))
	b.Cleanup(up.Close)
	srv := httptest.NewServer(h(mustURL(b, up.URL)))
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/items?page=2", nil)
	if err != nil {
		b.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status = %d", resp.StatusCode)
		}
	}
	cpu.report(b)
}

func BenchmarkLoopbackBaseline(b *testing.B) {
	loopback(b, func(up *url.URL) http.Handler {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
				pr.SetURL(up)
				pr.SetXForwarded()
			},
			Transport:  newTransport(DefaultMaxIdleConns, 0),
			BufferPool: newBufferPool(),
		}
	}, benchToken(b))
}

func BenchmarkLoopbackHandler(b *testing.B) {
	m := testMetrics(prometheus.NewRegistry())
	v := newVerifier(b, verifierConfig{cacheSize: 1024}, m)
	loopback(b, func(up *url.URL) http.Handler {
		p, err := testOptions{
			Options:      Options{Upstream: up, Recorder: m, Logger: discardLogger()},
			Verifier:     v,
			ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
		}.build()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.CloseIdleConnections)
		return p.Handler()
	}, benchToken(b))
}

// BenchmarkHandlerPolicy is the whole chain under a CONFIG_FILE-style
// policy: two providers, seven rules (the request matches the last), rule
// metrics on, a repeated token.
func BenchmarkHandlerPolicy(b *testing.B) {
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	pol, err := policy.New(policy.Options{Providers: testProviders(b, m), Rules: testRules(), Recorder: metrics.NewRules(reg)})
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(Options{Upstream: mustURL(b, "http://127.0.0.1:3000"), Policy: pol, Recorder: m, Logger: discardLogger(), Transport: inProcess{}})
	if err != nil {
		b.Fatal(err)
	}
	serveLoop(b, p.Handler(), benchRequest(allKeys(b).ec.Sign(b, claims(issA))))
}
