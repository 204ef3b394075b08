package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// The two providers of the policy tests: "idp" (issuer A, Authorization,
// user claims) and "k8s" (issuer B, X-Service-Token, service claims).
const (
	serviceHeader  = "X-Service-Token"
	serviceSubject = "system:serviceaccount:shop:orders"
)

func providerVerifier(t testing.TB, name, iss string, s signer, lookups []config.Lookup, rec verifier.Recorder) *verifier.Verifier {
	t.Helper()
	src, err := keys.NewStaticSource(name, []string{iss}, []keys.StaticKey{{KID: s.KID, Key: s.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keys.NewKeys(keys.KeyOptions{}, nil, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := verifier.New(verifier.Options{
		Keys: keys, Lookups: lookups, Audiences: []string{aud}, ClockSkew: 30 * time.Second,
		RequireExp: true, CacheSize: 100, Recorder: rec, Now: func() time.Time { return base },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testProviders(t testing.TB, rec verifier.Recorder) []policy.Provider {
	k := allKeys(t)
	return []policy.Provider{
		{
			Name: "idp", Issuers: []string{issA},
			Auth: providerVerifier(t, "idp", issA, k.ec, nil, rec),
			Forward: policy.Forwarding{
				ClaimHeaders:  []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
				PayloadHeader: "X-Auth-Payload",
			},
		},
		{
			Name: "k8s", Issuers: []string{issB},
			Auth:    providerVerifier(t, "k8s", issB, k.issuerB, []config.Lookup{{Kind: config.InHeader, Name: serviceHeader}}, rec),
			Forward: policy.Forwarding{ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "X-Service-Account"}}},
		},
	}
}

func testRules() []policy.Rule {
	req := func(kind policy.RequirementKind, providers ...string) policy.Requirement {
		return policy.Requirement{Kind: kind, Providers: providers}
	}
	admin := req(policy.RequireAnyOf, "idp")
	admin.Claims = []policy.ClaimRequirement{{Claim: "realm_access.roles", Values: []any{"admin"}}}
	return []policy.Rule{
		{Name: "health", Match: policy.Match{Path: "/healthz", Methods: []string{"GET"}}, Require: req(policy.RequirePublic)},
		{Name: "admin", Match: policy.Match{Prefix: "/admin"}, Require: admin},
		{Name: "internal", Match: policy.Match{Prefix: "/internal"}, Require: req(policy.RequireAnyOf, "k8s", "idp")},
		{Name: "both", Match: policy.Match{Prefix: "/both"}, Require: req(policy.RequireAllOf, "idp", "k8s")},
		{Name: "optional", Match: policy.Match{Prefix: "/optional"}, Require: req(policy.RequireAllowMissing, "idp")},
		{Name: "blocked", Match: policy.Match{Prefix: "/blocked"}, Require: req(policy.RequireDeny)},
		{Name: "api", Match: policy.Match{Prefix: "/api"}, Require: req(policy.RequireAnyOf, "idp")},
	}
}

// policyHarness is a proxy with testProviders and testRules (default
// deny) in front of a recording upstream.
func policyHarness(t testing.TB) (*harness, *metrics.Rules) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	pm := metrics.NewRules(reg)
	pol, err := policy.New(policy.Options{Providers: testProviders(t, m), Rules: testRules(), Recorder: pm})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	logs := &proctest.Buffer{}
	p, err := New(Options{
		Upstream: up.url(t), Policy: pol, Recorder: m,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return &harness{proxy: p, handler: p.Handler(), upstream: up, reg: reg, logs: logs}, pm
}

// policyRequest carries forged claim headers of both providers, which must
// never arrive.
func policyRequest(method, target, user, service string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("X-Auth-Subject", "mallory")
	r.Header.Set("X_Auth_Roles", "admin")
	r.Header.Set("X-Service-Account", "mallory")
	r.Header.Set("X-Auth-Payload", "forged")
	if user != "" {
		r.Header.Set("Authorization", "Bearer "+user)
	}
	if service != "" {
		r.Header.Set(serviceHeader, service)
	}
	return r
}

func TestPolicyRequirements(t *testing.T) {
	k := allKeys(t)
	user := k.ec.Sign(t, claims(issA))
	plainUser := k.ec.Sign(t, with(claims(issA), "realm_access", map[string]any{"roles": []any{"user"}}))
	service := k.issuerB.Sign(t, with(claims(issB), "sub", serviceSubject))
	forgedService := k.ec.Sign(t, with(claims(issB), "sub", serviceSubject)) // idp's key, k8s's issuer
	tests := []struct {
		name          string
		req           *http.Request
		wantStatus    int
		wantReason    string   // refusals: the metric reason
		wantHeaders   []string // name=value pairs the upstream sees; name= for absent
		wantRuleCount string   // rule/outcome counted once
	}{
		{
			name: "public health, no token", req: policyRequest("GET", "/healthz", "", ""), wantStatus: 200,
			wantHeaders:   []string{"X-Auth-Subject=", "X-Auth-Roles=", "X-Service-Account=", "X-Auth-Payload="},
			wantRuleCount: "health/public",
		},
		{
			name: "public health keeps a token as it came", req: policyRequest("GET", "/healthz", user, ""), wantStatus: 200,
			wantHeaders:   []string{"Authorization=Bearer " + user, "X-Auth-Subject="},
			wantRuleCount: "health/public",
		},
		{name: "POST health is not the health rule", req: policyRequest("POST", "/healthz", user, ""), wantStatus: 403, wantReason: "denied", wantRuleCount: "default/forbidden"},
		{
			name: "admin with the group", req: policyRequest("GET", "/admin/users", user, ""), wantStatus: 200,
			wantHeaders:   []string{"X-Auth-Subject=alice", "X-Auth-Roles=admin,user", "Authorization=", "X-Service-Account="},
			wantRuleCount: "admin/allowed",
		},
		{name: "admin without the group", req: policyRequest("GET", "/admin/users", plainUser, ""), wantStatus: 403, wantReason: "insufficient_scope", wantRuleCount: "admin/forbidden"},
		{name: "admin with a service token", req: policyRequest("GET", "/admin", "", service), wantStatus: 401, wantReason: "missing", wantRuleCount: "admin/unauthenticated"},
		{name: "admin through ..", req: policyRequest("GET", "/healthz/../admin", "", ""), wantStatus: 401, wantReason: "missing", wantRuleCount: "admin/unauthenticated"},
		{
			name: "internal by the service account", req: policyRequest("GET", "/internal/sync", "", service), wantStatus: 200,
			wantHeaders:   []string{"X-Service-Account=" + serviceSubject, "X-Auth-Subject=", "X-Auth-Payload=", serviceHeader + "="},
			wantRuleCount: "internal/allowed",
		},
		{
			name: "internal by a user", req: policyRequest("GET", "/internal/sync", user, ""), wantStatus: 200,
			wantHeaders:   []string{"X-Auth-Subject=alice", "X-Service-Account="},
			wantRuleCount: "internal/allowed",
		},
		{name: "internal with idp's key claiming k8s", req: policyRequest("GET", "/internal", "", forgedService), wantStatus: 401, wantReason: "unknown_key", wantRuleCount: "internal/unauthenticated"},
		{
			name: "both tokens", req: policyRequest("GET", "/both", user, service), wantStatus: 200,
			wantHeaders:   []string{"X-Auth-Subject=alice", "X-Service-Account=" + serviceSubject, "Authorization=", serviceHeader + "="},
			wantRuleCount: "both/allowed",
		},
		{name: "both, service token missing", req: policyRequest("GET", "/both", user, ""), wantStatus: 401, wantReason: "missing", wantRuleCount: "both/unauthenticated"},
		{
			name: "optional without token", req: policyRequest("GET", "/optional", "", ""), wantStatus: 200,
			wantHeaders:   []string{"X-Auth-Subject=", "X-Auth-Payload="},
			wantRuleCount: "optional/public",
		},
		{
			name: "optional with a token", req: policyRequest("GET", "/optional", user, ""), wantStatus: 200,
			wantHeaders:   []string{"X-Auth-Subject=alice", "Authorization="},
			wantRuleCount: "optional/allowed",
		},
		{name: "optional with an expired token", req: policyRequest("GET", "/optional", k.ec.Sign(t, with(claims(issA), "exp", base.Add(-time.Hour).Unix())), ""), wantStatus: 401, wantReason: "expired", wantRuleCount: "optional/unauthenticated"},
		{name: "blocked with a good token", req: policyRequest("GET", "/blocked/x", user, ""), wantStatus: 403, wantReason: "denied", wantRuleCount: "blocked/forbidden"},
		{name: "unmatched: fail closed", req: policyRequest("GET", "/elsewhere", user, ""), wantStatus: 403, wantReason: "denied", wantRuleCount: "default/forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := policyHarness(t)
			rec := h.serve(tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			rule, outcome, _ := strings.Cut(tt.wantRuleCount, "/")
			if got := counter(t, h.reg, "jwt_sidecar_rule_requests_total", map[string]string{"rule": rule, "outcome": outcome}); got != 1 {
				t.Errorf("rule %s outcome %s counted %v times, want 1", rule, outcome, got)
			}
			if tt.wantStatus != http.StatusOK {
				if n := len(h.upstream.requests()); n != 0 {
					t.Errorf("upstream saw %d refused requests", n)
				}
				out := map[int]string{401: string(verifier.Unauthenticated), 403: string(verifier.Forbidden)}[tt.wantStatus]
				if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": out, "reason": tt.wantReason}); got != 1 {
					t.Errorf("requests_total{%s,%s} = %v, want 1", out, tt.wantReason, got)
				}
				return
			}
			got := h.upstream.only(t)
			for _, kv := range tt.wantHeaders {
				name, want, _ := strings.Cut(kv, "=")
				if v := strings.Join(got.Header.Values(name), "|"); v != want {
					t.Errorf("upstream header %s = %q, want %q", name, v, want)
				}
			}
		})
	}
}

// TestDeniedResponse: 403 forbidden, no Bearer challenge, a fixed body.
func TestDeniedResponse(t *testing.T) {
	h, _ := policyHarness(t)
	rec := h.serve(policyRequest("GET", "/nowhere", "", ""))
	if rec.Code != http.StatusForbidden || rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("status %d, challenge %q; want 403 and none", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if body := errorBodyOf(t, rec); body["error"] != "forbidden" || body["error_description"] != "no rule allows this request" {
		t.Errorf("body = %v", body)
	}
	if !strings.Contains(h.logs.String(), `"rule":"default"`) || !strings.Contains(h.logs.String(), "no rule matches GET /nowhere") {
		t.Errorf("the refusal log line lacks the rule and the detail:\n%s", h.logs)
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestNewPolicyRefusesHeaderClashes(t *testing.T) {
	ps := testProviders(t, nil)
	tests := []struct {
		name    string
		adjust  func(ps []policy.Provider)
		wantErr string
	}{
		{name: "all-of providers set one header", adjust: func(ps []policy.Provider) { ps[1].Forward.ClaimHeaders[0].Header = "x-auth-subject" },
			wantErr: "providers idp and k8s both set header X-Auth-Subject"},
		{name: "reserved header", adjust: func(ps []policy.Provider) { ps[1].Forward.ClaimHeaders[0].Header = "Host" }, wantErr: "reserved"},
		{name: "payload is a claim header", adjust: func(ps []policy.Provider) { ps[0].Forward.PayloadHeader = "X-Auth-Roles" }, wantErr: "also a claim header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := make([]policy.Provider, len(ps))
			for i, p := range ps {
				cp[i] = p
				cp[i].Forward.ClaimHeaders = append([]config.ClaimHeader(nil), p.Forward.ClaimHeaders...)
			}
			tt.adjust(cp)
			_, err := policy.New(policy.Options{Providers: cp, Rules: testRules()})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	// Different providers may map the same header when no all-of joins them.
	cp := append([]policy.Provider(nil), ps...)
	cp[1].Forward.ClaimHeaders = []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}}
	rules := testRules()[:3]
	if _, err := policy.New(policy.Options{Providers: cp, Rules: rules}); err != nil {
		t.Errorf("the same header for two providers of an any-of: %v", err)
	}
}

// TestExplainAgreesWithTheHandler: Explain and the handler give the same
// verdict, on the same policy, for the same requests.
func TestExplainAgreesWithTheHandler(t *testing.T) {
	k := allKeys(t)
	user := k.ec.Sign(t, claims(issA))
	service := k.issuerB.Sign(t, with(claims(issB), "sub", serviceSubject))
	reqs := []func() *http.Request{
		func() *http.Request { return policyRequest("GET", "/healthz", "", "") },
		func() *http.Request { return policyRequest("GET", "/admin", user, "") },
		func() *http.Request { return policyRequest("GET", "/admin", "", "") },
		func() *http.Request { return policyRequest("GET", "/admin", "garbage", "") },
		func() *http.Request { return policyRequest("GET", "/internal", "", service) },
		func() *http.Request { return policyRequest("GET", "/both", user, service) },
		func() *http.Request { return policyRequest("GET", "/both", "", service) },
		func() *http.Request { return policyRequest("GET", "/optional", "", "") },
		func() *http.Request {
			return policyRequest("GET", "/api", k.ec.Sign(t, with(claims(issA), "aud", "other")), "")
		},
		func() *http.Request { return policyRequest("DELETE", "/blocked", user, "") },
		func() *http.Request { return policyRequest("GET", "/x", user, "") },
	}
	for _, mk := range reqs {
		h, _ := policyHarness(t)
		r := mk()
		name := r.Method + " " + r.URL.Path
		rec := h.serve(mk())
		ex := h.proxy.Explain(r)
		wantStatus := rec.Code
		gotStatus := ex.Status
		if ex.Forwarded {
			gotStatus = http.StatusOK
		}
		if gotStatus != wantStatus {
			t.Errorf("%s: explain says %d, the handler answered %d", name, gotStatus, wantStatus)
		}
		if !ex.Forwarded {
			body := errorBodyOf(t, rec)
			if body["error"] != ex.Error || body["error_description"] != ex.Description {
				t.Errorf("%s: explain says %s %q, the handler's body is %v", name, ex.Error, ex.Description, body)
			}
			if !strings.Contains(h.logs.String(), `"reason":"`+string(ex.Reason)+`"`) {
				t.Errorf("%s: explain's reason %s is not the one logged:\n%s", name, ex.Reason, h.logs)
			}
			if n := len(h.upstream.requests()); n != 0 {
				t.Errorf("%s: refused, but the upstream saw %d requests", name, n)
			}
			continue
		}
		seen := h.upstream.only(t)
		for name, v := range ex.Headers {
			if got := seen.Header.Get(name); got != v[0] {
				t.Errorf("%s: explain says %s: %s, the upstream saw %q", r.URL.Path, name, v[0], got)
			}
		}
	}
}

// TestSetPolicyUnderLoad swaps two policies while requests flow: every
// request is answered by one policy or the other, never a mix (a claim
// header of the new policy is always scrubbed), and none fails.
func TestSetPolicyUnderLoad(t *testing.T) {
	k := allKeys(t)
	user := k.ec.Sign(t, claims(issA))
	h, _ := policyHarness(t)
	reg := prometheus.NewRegistry()
	pm := metrics.NewRules(reg)
	ps := testProviders(t, nil)
	open, err := policy.New(policy.Options{Providers: ps, Rules: testRules(), Recorder: pm})
	if err != nil {
		t.Fatal(err)
	}
	// The second policy maps two more headers (the token has no email, so
	// X-Auth-Email is only ever scrubbed), and lets /admin be reached
	// without the admin role.
	ps2 := testProviders(t, nil)
	ps2[0].Forward.ClaimHeaders = append(ps2[0].Forward.ClaimHeaders, config.ClaimHeader{Claim: "email", Header: "X-Auth-Email"}, config.ClaimHeader{Claim: "sub", Header: "X-Auth-Who"})
	rules := testRules()
	rules[1].Require.Claims = nil
	other, err := policy.New(policy.Options{Providers: ps2, Rules: rules, Recorder: pm})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.handler)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()

	var (
		stop     atomic.Bool
		failures atomic.Int64
		sent     atomic.Int64
		answered atomic.Int64 // 200s: each one the upstream must have seen
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/x", nil)
				req.Header.Set("X-Auth-Email", "forged@example.com")
				if sent.Add(1)%2 == 0 {
					req.Header.Set("Authorization", "Bearer "+user)
				}
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					mu.Lock()
					problems = append(problems, err.Error())
					mu.Unlock()
					continue
				}
				resp.Body.Close()
				// 200 (token, or the public policy) or 401 (no token, the
				// first policy); anything else is a failure.
				switch resp.StatusCode {
				case http.StatusOK:
					answered.Add(1)
				case http.StatusUnauthorized:
				default:
					failures.Add(1)
				}
			}
		})
	}
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			h.proxy.SetPolicy(other)
		} else {
			h.proxy.SetPolicy(open)
		}
		// Let a few requests through under each policy.
		for until := sent.Load() + 4; sent.Load() < until && failures.Load() == 0; {
			runtime.Gosched()
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed: %v", n, sent.Load(), problems)
	}
	// Only the forwarded requests arrived: no 401 leaked through a swap.
	if got, want := len(h.upstream.requests()), answered.Load(); int64(got) != want {
		t.Errorf("upstream saw %d requests, want the %d answered 200", got, want)
	}
	// A request decided and forwarded by the second policy (X-Auth-Who is
	// set) was scrubbed by it too: the forged X-Auth-Email never arrives
	// with it.
	var second int
	for _, s := range h.upstream.requests() {
		if s.Header.Get("X-Auth-Who") == "" {
			continue
		}
		second++
		if s.Header.Get("X-Auth-Email") != "" {
			t.Fatal("a forged X-Auth-Email reached the upstream with the second policy's claims: scrub and decision came from different policies")
		}
	}
	if second == 0 {
		t.Error("no request was decided by the second policy")
	}
	if sent.Load() < 100 {
		t.Errorf("only %d requests were sent during the swaps", sent.Load())
	}
}

// TestPublicPathRulesKeepTheirMeaning: PUBLIC_PATHS as rules match exactly
// what PUBLIC_PATHS always matched: the path itself, or for "X*" every
// cleaned path starting with X.
func TestPublicPathRulesKeepTheirMeaning(t *testing.T) {
	list := []string{"/healthz", "/docs/", "/public/*", "/pub*", "/v1/status*"}
	rules, err := policy.PublicPathRules(list)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Options{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	old := func(p string) bool {
		for _, item := range list {
			if base, ok := strings.CutSuffix(item, "*"); ok && strings.HasPrefix(p, base) || item == p {
				return true
			}
		}
		return false
	}
	for _, p := range []string{"/", "/healthz", "/healthz/", "/healthzx", "/docs", "/docs/", "/docs/a", "/public", "/public/",
		"/public/a/b", "/pub", "/publications", "/pubs/a/b/", "/pu", "/v1/status", "/v1/statuses/x", "/v1/stat", "/api"} {
		r := httptest.NewRequest(http.MethodGet, "http://x"+p, nil)
		got := pol.Match(r, p, nil).Require.Kind == policy.RequirePublic
		if got != old(p) {
			t.Errorf("%s: public = %v as a rule, %v as PUBLIC_PATHS", p, got, old(p))
		}
	}
}
