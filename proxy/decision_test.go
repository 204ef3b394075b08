package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
)

// decisionServer is the proxy's decision handler on a real 127.0.0.1
// listener, beside the harness's recording upstream (which a decision must
// never call).
func decisionServer(t *testing.T, h *harness, o DecisionOptions) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h.proxy.DecisionHandler(o))
	t.Cleanup(srv.Close)
	return srv
}

var loopbackProxies = config.CIDRs{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func ask(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body map[string]string
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("body %q is not the JSON error body: %v", b, err)
		}
	}
	return res, body
}

func TestDecision(t *testing.T) {
	k := allKeys(t)
	valid := k.rsa.Sign(t, claims(issA))
	h := newHarness(t, verifierConfig{}, nil)
	srv := decisionServer(t, h, DecisionOptions{TrustedProxies: loopbackProxies})
	envoy := decisionServer(t, h, DecisionOptions{TrustedProxies: loopbackProxies, PathPrefix: "/authz"})
	untrusted := decisionServer(t, h, DecisionOptions{TrustedProxies: config.CIDRs{netip.MustParsePrefix("10.0.0.0/8")}})

	tests := []struct {
		name        string
		srv         *httptest.Server
		method      string
		path        string
		hdr         map[string]string
		wantStatus  int
		wantError   string // the body's error; "" for a 200
		wantReason  string // the requests_total reason
		wantSubject string
		challenge   bool
	}{
		{name: "valid token, nginx headers", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/api/x?a=1", "X-Original-Method": "POST", "Authorization": "Bearer " + valid, "X-Auth-Subject": "forged"},
			wantStatus: 200, wantSubject: "alice"},
		{name: "valid token, Traefik headers", srv: srv, path: "/",
			hdr:        map[string]string{"X-Forwarded-Uri": "/api", "X-Forwarded-Method": "GET", "X-Forwarded-Host": "app.example", "Authorization": "Bearer " + valid},
			wantStatus: 200, wantSubject: "alice"},
		{name: "valid token, ingress-nginx X-Original-URL", srv: srv, path: "/",
			hdr:        map[string]string{"X-Original-URL": "https://app.example/api?x=1", "Authorization": "Bearer " + valid},
			wantStatus: 200, wantSubject: "alice"},
		{name: "public path without token", srv: srv, path: "/_auth",
			hdr: map[string]string{"X-Original-URI": "/public/page", "X-Auth-Subject": "forged"}, wantStatus: 200},
		{name: "missing token", srv: srv, path: "/_auth", hdr: map[string]string{"X-Original-URI": "/api"},
			wantStatus: 401, wantError: "unauthorized", wantReason: "missing", challenge: true},
		{name: "bad signature", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/api", "Authorization": "Bearer " + k.other.Sign(t, claims(issA))},
			wantStatus: 401, wantError: "invalid_token", wantReason: "bad_signature", challenge: true},
		{name: "expired", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/api", "Authorization": "Bearer " + k.rsa.Sign(t, with(claims(issA), "exp", base.Add(-time.Hour).Unix()))},
			wantStatus: 401, wantError: "invalid_token", wantReason: "expired", challenge: true},
		{name: "insufficient scope", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/api", "Authorization": "Bearer " + k.rsa.Sign(t, with(claims(issA), "scope", "write"))},
			wantStatus: 403, wantError: "insufficient_scope", wantReason: "insufficient_scope", challenge: true},
		{name: "dot segments are cleaned before matching", srv: srv, path: "/_auth",
			hdr: map[string]string{"X-Original-URI": "/public/../api"}, wantStatus: 401, wantError: "unauthorized", wantReason: "missing", challenge: true},
		{name: "ambiguous original path", srv: srv, path: "/_auth",
			hdr: map[string]string{"X-Original-URI": "/public/..;/api"}, wantStatus: 400, wantError: "invalid_request", wantReason: "ambiguous_path"},
		{name: "gRPC original is still refused with a status, never 200", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/pkg.Svc/Call", "Content-Type": "application/grpc"},
			wantStatus: 401, wantError: "unauthorized", wantReason: "missing", challenge: true},
		{name: "no original request", srv: srv, path: "/public/page",
			wantStatus: 400, wantError: "invalid_request", wantReason: "bad_original"},
		{name: "conflicting originals", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/api", "X-Forwarded-Uri": "/public/x"},
			wantStatus: 400, wantError: "invalid_request", wantReason: "bad_original"},
		{name: "absolute original URI", srv: srv, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "http://evil/public/x"},
			wantStatus: 400, wantError: "invalid_request", wantReason: "bad_original"},
		{name: "untrusted source forging a public original", srv: untrusted, path: "/_auth",
			hdr:        map[string]string{"X-Forwarded-Uri": "/public/x"},
			wantStatus: 403, wantError: "forbidden", wantReason: "untrusted_proxy"},
		{name: "untrusted source with a valid token", srv: untrusted, path: "/_auth",
			hdr:        map[string]string{"X-Original-URI": "/api", "Authorization": "Bearer " + valid},
			wantStatus: 403, wantError: "forbidden", wantReason: "untrusted_proxy"},
		{name: "envoy shape: valid token", srv: envoy, path: "/authz/api/x",
			hdr: map[string]string{"Authorization": "Bearer " + valid}, wantStatus: 200, wantSubject: "alice"},
		{name: "envoy shape: public path", srv: envoy, path: "/authz/public/x", wantStatus: 200},
		{name: "envoy shape ignores forwarded headers", srv: envoy, path: "/authz/api",
			hdr: map[string]string{"X-Forwarded-Uri": "/public/x"}, wantStatus: 401, wantError: "unauthorized", wantReason: "missing", challenge: true},
		{name: "envoy shape: ambiguous path", srv: envoy, path: "/authz/a/%252e%252e/api",
			wantStatus: 400, wantError: "invalid_request", wantReason: "ambiguous_path"},
		{name: "envoy server, nginx shape outside the prefix", srv: envoy, path: "/_auth",
			hdr: map[string]string{"X-Original-URI": "/public/x"}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			if tt.wantReason != "" {
				before = reasonCount(t, h, tt.wantReason)
			}
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			res, body := ask(t, tt.srv, method, tt.path, tt.hdr)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d (%v), want %d", res.StatusCode, body, tt.wantStatus)
			}
			if got := res.Header.Get("X-Auth-Subject"); got != tt.wantSubject {
				t.Errorf("X-Auth-Subject = %q, want %q", got, tt.wantSubject)
			}
			if res.Header.Get(RequestIDHeader) == "" {
				t.Errorf("no %s on the answer", RequestIDHeader)
			}
			if res.Header.Get("Authorization") != "" {
				t.Errorf("the token came back in the answer")
			}
			if tt.wantSubject != "" && res.Header.Get("X-Auth-Roles") != "admin,user" {
				t.Errorf("X-Auth-Roles = %q, want admin,user", res.Header.Get("X-Auth-Roles"))
			}
			if got := body["error"]; got != tt.wantError {
				t.Errorf("error = %q, want %q", got, tt.wantError)
			}
			if got := res.Header.Get("WWW-Authenticate") != ""; got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want a challenge: %v", res.Header.Get("WWW-Authenticate"), tt.challenge)
			}
			if tt.wantReason != "" {
				after := reasonCount(t, h, tt.wantReason)
				if after != before+1 {
					t.Errorf("requests_total{reason=%q} went from %v to %v, want one more", tt.wantReason, before, after)
				}
			}
		})
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Errorf("the upstream saw %d requests; a decision forwards nothing", n)
	}
}

// TestDecisionAccessLogNamesTheOriginal: the access line is about the
// original request (its method and cleaned path), with the answer's ID.
func TestDecisionAccessLogNamesTheOriginal(t *testing.T) {
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.AccessLog = true })
	srv := decisionServer(t, h, DecisionOptions{TrustedProxies: loopbackProxies})
	res, _ := ask(t, srv, http.MethodGet, "/_auth", map[string]string{"X-Original-URI": "/api/../secret", "X-Original-Method": "DELETE"})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", res.StatusCode)
	}
	lines := logLines(t, h.logs)
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want one access line: %v", len(lines), lines)
	}
	l := lines[0]
	if l["msg"] != "request" || l["method"] != "DELETE" || l["path"] != "/secret" || l["reason"] != "missing" || l["status"] != float64(401) {
		t.Errorf("access line %v, want the original DELETE /secret refused missing with 401", l)
	}
	if l["request_id"] != res.Header.Get(RequestIDHeader) {
		t.Errorf("request_id %v, want the answer's %q", l["request_id"], res.Header.Get(RequestIDHeader))
	}
}

// TestDecisionServiceOnly: without an upstream the proxy still decides;
// its proxy handler, if ever served, forwards nothing.
func TestDecisionServiceOnly(t *testing.T) {
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = nil })
	srv := decisionServer(t, h, DecisionOptions{TrustedProxies: loopbackProxies})
	valid := allKeys(t).rsa.Sign(t, claims(issA))
	res, _ := ask(t, srv, http.MethodGet, "/_auth", map[string]string{"X-Original-URI": "/api", "Authorization": "Bearer " + valid})
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Auth-Subject") != "alice" {
		t.Fatalf("decision: %d %q, want 200 with the subject", res.StatusCode, res.Header.Get("X-Auth-Subject"))
	}
	if rec := h.serve(bearer("/api", valid)); rec.Code != http.StatusBadGateway {
		t.Errorf("proxy handler without upstream: %d, want 502", rec.Code)
	}
}

func TestParseOriginalAgrees(t *testing.T) {
	tests := []struct {
		name    string
		hdr     map[string][]string
		wantErr bool
		want    string // method host requestURI
	}{
		{name: "nginx", hdr: map[string][]string{"X-Original-Uri": {"/a%2Fb?q=1"}, "X-Original-Method": {"PUT"}}, want: "PUT  /a%2Fb?q=1"},
		{name: "traefik", hdr: map[string][]string{"X-Forwarded-Uri": {"/a"}, "X-Forwarded-Method": {"GET"}, "X-Forwarded-Host": {"app.example:8443"}}, want: "GET app.example:8443 /a"},
		{name: "same uri twice", hdr: map[string][]string{"X-Original-Uri": {"/a"}, "X-Forwarded-Uri": {"/a"}}, want: "  /a"},
		{name: "url and host agree", hdr: map[string][]string{"X-Original-Url": {"https://App.example/a"}, "X-Forwarded-Host": {"app.example"}}, want: " app.example /a"},
		{name: "two lines", hdr: map[string][]string{"X-Original-Uri": {"/a", "/b"}}, wantErr: true},
		{name: "methods differ", hdr: map[string][]string{"X-Original-Uri": {"/a"}, "X-Original-Method": {"GET"}, "X-Forwarded-Method": {"POST"}}, wantErr: true},
		{name: "bad method", hdr: map[string][]string{"X-Original-Uri": {"/a"}, "X-Original-Method": {"GE T"}}, wantErr: true},
		{name: "host list", hdr: map[string][]string{"X-Original-Uri": {"/a"}, "X-Forwarded-Host": {"a.example, b.example"}}, wantErr: true},
		{name: "host with path", hdr: map[string][]string{"X-Original-Uri": {"/a"}, "X-Forwarded-Host": {"a.example/x"}}, wantErr: true},
		{name: "url host differs", hdr: map[string][]string{"X-Original-Url": {"https://a.example/a"}, "X-Forwarded-Host": {"b.example"}}, wantErr: true},
		{name: "url with credentials", hdr: map[string][]string{"X-Original-Url": {"https://u:p@a.example/a"}}, wantErr: true},
		{name: "scheme-relative", hdr: map[string][]string{"X-Original-Uri": {"//evil/a"}}, wantErr: true},
		{name: "fragment", hdr: map[string][]string{"X-Original-Uri": {"/a#x"}}, wantErr: true},
		{name: "space", hdr: map[string][]string{"X-Original-Uri": {"/a b"}}, wantErr: true},
		{name: "empty", hdr: map[string][]string{"X-Original-Uri": {""}}, wantErr: true},
		{name: "method only", hdr: map[string][]string{"X-Original-Method": {"GET"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOriginal(http.Header(tt.hdr))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := strings.Join([]string{o.Method, o.Host, o.URL.RequestURI()}, " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// reasonCount is jwt_sidecar_requests_total for a refusal reason; 0 before
// its first refusal (the test's metrics do not pre-create the series).
func reasonCount(t *testing.T, h *harness, reason string) float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "jwt_sidecar_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// BenchmarkDecision is an allowed decision (nginx's shape), the header
// clone of each fresh request included.
func BenchmarkDecision(b *testing.B) {
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	p, err := testOptions{
		Options:      Options{Recorder: m, Logger: discardLogger()},
		Verifier:     newVerifier(b, verifierConfig{cacheSize: 1024}, m),
		ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
		PublicPaths:  []string{"/public/*", "/healthz"},
	}.build()
	if err != nil {
		b.Fatal(err)
	}
	h := p.DecisionHandler(DecisionOptions{TrustedProxies: loopbackProxies})
	r := benchRequest(benchToken(b))
	r.URL.Path, r.RemoteAddr = "/_auth", "127.0.0.1:40000"
	r.Header.Set("X-Original-URI", "/api/v1/items?page=2")
	r.Header.Set("X-Original-Method", "GET")
	hdr := r.Header
	b.ReportAllocs()
	for b.Loop() {
		r.Header = hdr.Clone()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// TestDecisionFollowsSetPolicy: a reload reaches the decision listener
// too; one policy decides both listeners.
func TestDecisionFollowsSetPolicy(t *testing.T) {
	h := newHarness(t, verifierConfig{}, nil)
	srv := decisionServer(t, h, DecisionOptions{TrustedProxies: loopbackProxies})
	hdr := map[string]string{"X-Original-URI": "/api/open"}
	if res, _ := ask(t, srv, http.MethodGet, "/_auth", hdr); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("before: %d, want 401", res.StatusCode)
	}
	next, err := testOptions{
		Options:     Options{Upstream: h.upstream.url(t)},
		Verifier:    newVerifier(t, verifierConfig{}, nil),
		PublicPaths: []string{"/api/open"},
	}.build()
	if err != nil {
		t.Fatal(err)
	}
	h.proxy.SetPolicy(next.Policy())
	if res, _ := ask(t, srv, http.MethodGet, "/_auth", hdr); res.StatusCode != http.StatusOK {
		t.Errorf("after SetPolicy: %d, want 200 (the new policy's public path)", res.StatusCode)
	}
}

// TestDecisionOriginalMethodAndHostChooseTheRule: rules that match
// methods and hosts see the original's, never the decision request's.
func TestDecisionOriginalMethodAndHostChooseTheRule(t *testing.T) {
	h, _ := policyHarness(t)
	rules := append(testRules(), policy.Rule{Name: "host", Match: policy.Match{Prefix: "/h", Hosts: []string{"app.example"}},
		Require: policy.Requirement{Kind: policy.RequirePublic}})
	pol, err := policy.New(policy.Options{Providers: testProviders(t, nil), Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	h.proxy.SetPolicy(pol)
	srv := decisionServer(t, h, DecisionOptions{TrustedProxies: loopbackProxies})
	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		want   int
	}{
		{name: "original GET on a GET-only public rule", method: http.MethodPost, hdr: map[string]string{"X-Original-URI": "/healthz", "X-Original-Method": "GET"}, want: 200},
		{name: "original POST on a GET-only public rule", method: http.MethodGet, hdr: map[string]string{"X-Original-URI": "/healthz", "X-Original-Method": "POST"}, want: 403},
		{name: "no method header: the decision request's", method: http.MethodGet, hdr: map[string]string{"X-Original-URI": "/healthz"}, want: 200},
		{name: "original host matches", hdr: map[string]string{"X-Forwarded-Uri": "/h/x", "X-Forwarded-Host": "app.example:443"}, want: 200},
		{name: "original host differs", hdr: map[string]string{"X-Forwarded-Uri": "/h/x", "X-Forwarded-Host": "other.example"}, want: 403},
		{name: "ingress-nginx URL host", hdr: map[string]string{"X-Original-URL": "https://app.example/h/x"}, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			if res, body := ask(t, srv, method, "/_auth", tt.hdr); res.StatusCode != tt.want {
				t.Errorf("status = %d (%v), want %d", res.StatusCode, body, tt.want)
			}
		})
	}
}
