package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// base is the fixed "now" of the tests; tokens are minted relative to it.
var base = jwttest.Now

const (
	issA = jwttest.IssuerA
	issB = jwttest.IssuerB
	aud  = jwttest.Audience
)

type signer = jwttest.Signer

func newSigner(t testing.TB, alg, kid string) signer { return jwttest.NewSigner(t, alg, kid) }

// keys are the test keys, generated once per test binary (RSA is slow).
type testKeys struct {
	rsa, ec, ed, other, issuerB signer
}

var (
	keysOnce sync.Once
	keysVal  testKeys
)

func allKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		keysVal = testKeys{
			rsa:     newSigner(t, "RS256", "rsa-1"),
			ec:      newSigner(t, "ES256", "ec-1"),
			ed:      newSigner(t, "EdDSA", "ed-1"),
			other:   newSigner(t, "RS256", "rsa-1"), // same kid, a key nobody trusts
			issuerB: newSigner(t, "RS256", "b-1"),
		}
	})
	return keysVal
}

// claims are valid claims at base, for issuer iss.
func claims(iss string) jwt.MapClaims {
	c := jwttest.Claims(iss)
	c["realm_access"] = map[string]any{"roles": []any{"admin", "user"}}
	return c
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// verifierConfig adjusts the real verifier the tests build.
type verifierConfig struct {
	lookups     []config.Lookup
	cacheSize   int
	sender      *verifier.SenderConstraint
	revocations verifier.Revocations
}

// newVerifier is the real verifier: static RSA, ECDSA and Ed25519 keys for
// issuer A, another RSA key for issuer B, scope "read" required.
func newVerifier(t testing.TB, vc verifierConfig, rec verifier.Recorder) *verifier.Verifier {
	t.Helper()
	k := allKeys(t)
	srcA, err := keys.NewStaticSource("static-a", []string{issA}, []keys.StaticKey{
		{KID: k.rsa.KID, Key: k.rsa.Key.Public()},
		{KID: k.ec.KID, Key: k.ec.Key.Public()},
		{KID: k.ed.KID, Key: k.ed.Key.Public()},
	})
	if err != nil {
		t.Fatal(err)
	}
	srcB, err := keys.NewStaticSource("static-b", []string{issB}, []keys.StaticKey{
		{KID: k.issuerB.KID, Key: k.issuerB.Key.Public()},
	})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keys.NewKeys(keys.KeyOptions{}, nil, nil, srcA, srcB)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{
		Keys:           keys,
		Lookups:        vc.lookups,
		Audiences:      []string{aud},
		ClockSkew:      30 * time.Second,
		RequireExp:     true,
		RequiredScopes: []string{"read"},
		CacheSize:      vc.cacheSize,
		Sender:         vc.sender,
		Revocations:    vc.revocations,
		Recorder:       rec,
		Now:            func() time.Time { return base },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// seen is one request as the upstream received it.
type seen struct {
	Method   string
	Path     string
	RawPath  string
	RawQuery string
	Host     string
	Header   http.Header
	Trailer  http.Header
	Body     []byte
}

// upstream is a real HTTP server that records every request it receives,
// so a test can prove that a refused request never arrived.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
			Host: r.Host, Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: body,
		})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// only returns the one request the upstream saw, failing otherwise.
func (u *upstream) only(t testing.TB) seen {
	t.Helper()
	reqs := u.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

func (u *upstream) url(t testing.TB) *url.URL {
	t.Helper()
	parsed, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// harness is a proxy in front of a recording upstream, with fresh metrics.
type harness struct {
	proxy    *Proxy
	handler  http.Handler
	upstream *upstream
	reg      *prometheus.Registry
	logs     *proctest.Buffer
}

// testOptions are the proxy's options and the one provider the
// environment would describe (its verifier, headers and public paths),
// which build() turns into the policy, as the sidecar's wiring does.
type testOptions struct {
	Options
	Verifier      policy.Authenticator
	Mode          string
	ClaimHeaders  []config.ClaimHeader
	PayloadHeader string
	ForwardToken  bool
	PublicPaths   []string
}

// build compiles the environment-shaped policy and the proxy.
func (o testOptions) build() (*Proxy, error) {
	rules, err := policy.PublicPathRules(o.PublicPaths)
	if err != nil {
		return nil, err
	}
	var providers []policy.Provider
	if o.Verifier != nil {
		providers = []policy.Provider{{
			Name: policy.EnvProvider, Auth: o.Verifier,
			Forward: policy.Forwarding{ClaimHeaders: o.ClaimHeaders, PayloadHeader: o.PayloadHeader, ForwardToken: o.ForwardToken},
		}}
	}
	pol, err := policy.New(policy.Options{
		Providers: providers,
		Rules:     rules,
		Default:   policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{policy.EnvProvider}},
		Mode:      o.Mode,
	})
	if err != nil {
		return nil, err
	}
	o.Policy = pol
	return New(o.Options)
}

// testMetrics are the sidecar's metrics with the label sets main passes.
func testMetrics(reg prometheus.Registerer) *metrics.Metrics {
	l := metrics.Labels{
		Passed:               []string{string(verifier.Allowed), string(verifier.Public)},
		Refusals:             map[string]string{},
		Modes:                []string{verifier.ModeJWT, verifier.ModeIntrospection},
		UpstreamErrors:       UpstreamErrorKinds,
		SkewClaims:           verifier.SkewClaims,
		IntrospectionResults: verifier.IntrospectionResults,
	}
	for _, r := range verifier.Reasons {
		l.Refusals[string(r)] = string(r.Outcome())
	}
	return metrics.New(reg, l)
}

// newHarness builds the proxy with the real verifier. adjust may change the
// options before New.
func newHarness(t testing.TB, vc verifierConfig, adjust func(*testOptions)) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	up := newUpstream(t)
	logs := &proctest.Buffer{}
	o := testOptions{
		Options: Options{
			Upstream: up.url(t),
			Recorder: m,
			Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		},
		Verifier:     newVerifier(t, vc, m),
		ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
		PublicPaths:  []string{"/public/*", "/healthz", "/docs/"},
	}
	if adjust != nil {
		adjust(&o)
	}
	p, err := o.build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return &harness{proxy: p, handler: p.Handler(), upstream: up, reg: reg, logs: logs}
}

// serve sends r through the proxy's handler.
func (h *harness) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, r)
	return rec
}

func get(target string) *http.Request {
	return httptest.NewRequest(http.MethodGet, target, nil)
}

func bearer(target, token string) *http.Request {
	r := get(target)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// counter reads one series of a counter family, or fails.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return series(t, reg, name, labels).GetCounter().GetValue()
}

// histogramCount reads the sample count of a histogram series.
func histogramCount(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) uint64 {
	t.Helper()
	return series(t, reg, name, labels).GetHistogram().GetSampleCount()
}

// series finds the series of family name with labels, or fails.
func series(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, labels) {
				return m
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return nil
}

// matches reports whether m has exactly labels.
func matches(m *dto.Metric, labels map[string]string) bool {
	if len(m.GetLabel()) != len(labels) {
		return false
	}
	for _, l := range m.GetLabel() {
		if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

// logLines decodes every JSON log line written to logs.
func logLines(t testing.TB, logs *proctest.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// b64 is base64url without padding, as in a compact JWS.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// errorBodyOf decodes the SPEC's JSON error body.
func errorBodyOf(t testing.TB, rec *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not the JSON error body: %v", rec.Body.String(), err)
	}
	return body
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// rawRequest writes a request byte for byte to addr and reads the response,
// so that no client library normalises the request line.
func rawRequest(t testing.TB, addr, raw string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
