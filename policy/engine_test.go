package policy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// policyFixture has two providers, each with its own keys bound to its own
// issuer: "a" (issuer A, Authorization) and "b" (issuer B, X-Service-Token).
type policyFixture struct {
	a, b     signer
	provider []policy.Provider
}

func newPolicyFixture(t testing.TB) *policyFixture {
	t.Helper()
	f := &policyFixture{a: newSigner(t, "ES256", "a-1"), b: newSigner(t, "ES256", "b-1")}
	mk := func(name, iss string, s signer, lookups []config.Lookup) policy.Provider {
		src, err := keys.NewStaticSource(name, []string{iss}, []keys.StaticKey{{KID: s.KID, Key: s.Key.Public()}})
		if err != nil {
			t.Fatal(err)
		}
		keys := mustKeys(t, keys.KeyOptions{}, nil, src)
		v := mustVerifier(t, verifier.Options{Keys: keys, Lookups: lookups, Audiences: []string{aud}, RequireExp: true, CacheSize: 100})
		return policy.Provider{Name: name, Auth: v, Issuers: []string{iss}}
	}
	f.provider = []policy.Provider{
		mk("a", issA, f.a, nil),
		mk("b", issB, f.b, []config.Lookup{{Kind: config.InHeader, Name: "X-Service-Token"}}),
	}
	return f
}

// policy has one rule per requirement under test, chosen by path.
func (f *policyFixture) policy(t testing.TB, rules ...policy.Rule) *policy.Policy {
	t.Helper()
	p, err := policy.New(policy.Options{Providers: f.provider, Rules: rules, Default: policy.Requirement{Kind: policy.RequireDeny}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decide(p *policy.Policy, r *http.Request) policy.Decision {
	var d policy.Decision
	rule := p.Match(r, config.CleanPath(r.URL.Path), nil)
	p.Check(context.Background(), r, rule, &d, nil)
	return d
}

func request(path, userToken, serviceToken string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://app.example"+path, nil)
	if userToken != "" {
		r.Header.Set("Authorization", "Bearer "+userToken)
	}
	if serviceToken != "" {
		r.Header.Set("X-Service-Token", serviceToken)
	}
	return r
}

func rule(name string, kind policy.RequirementKind, providers ...string) policy.Rule {
	return policy.Rule{Name: name, Match: policy.Match{Prefix: "/" + name},
		Require: policy.Requirement{Kind: kind, Providers: providers}}
}

// verifiedBy names the providers whose tokens a decision holds.
func verifiedBy(p *policy.Policy, d policy.Decision) string {
	if d.Err != nil || d.Public || d.Anonymous {
		return ""
	}
	names := []string{p.Providers()[d.First.Provider].Name}
	for _, v := range d.More {
		names = append(names, p.Providers()[v.Provider].Name)
	}
	return strings.Join(names, "+")
}

func TestRequirementKinds(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.policy(t,
		rule("public", policy.RequirePublic),
		rule("deny", policy.RequireDeny),
		rule("only-a", policy.RequireAnyOf, "a"),
		rule("any", policy.RequireAnyOf, "a", "b"),
		rule("all", policy.RequireAllOf, "a", "b"),
		rule("optional", policy.RequireAllowMissing, "a"),
	)
	tokA := f.a.Sign(t, claims(issA))
	tokB := f.b.Sign(t, claims(issB))
	expiredA := f.a.Sign(t, with(claims(issA), "exp", base.Add(-time1h).Unix()))
	tests := []struct {
		name       string
		req        *http.Request
		wantRule   string
		wantReason verifier.Reason
		wantBy     string
		wantPublic bool
		wantAnon   bool
	}{
		{name: "public without token", req: request("/public/x", "", ""), wantRule: "public", wantPublic: true},
		{name: "public with a bad token", req: request("/public", "garbage", ""), wantRule: "public", wantPublic: true},
		{name: "deny with a good token", req: request("/deny", tokA, ""), wantRule: "deny", wantReason: verifier.Denied},
		{name: "unmatched: default denies", req: request("/elsewhere", tokA, ""), wantRule: "default", wantReason: verifier.Denied},
		{name: "provider a", req: request("/only-a", tokA, ""), wantRule: "only-a", wantBy: "a"},
		{name: "provider a without token", req: request("/only-a", "", ""), wantRule: "only-a", wantReason: verifier.Missing},
		{name: "provider a, B's token in A's place", req: request("/only-a", tokB, ""), wantRule: "only-a", wantReason: verifier.BadIssuer},
		{name: "provider a, only a service token", req: request("/only-a", "", tokB), wantRule: "only-a", wantReason: verifier.Missing},
		{name: "any-of by a", req: request("/any", tokA, ""), wantRule: "any", wantBy: "a"},
		{name: "any-of by b", req: request("/any", "", tokB), wantRule: "any", wantBy: "b"},
		{name: "any-of with both: first wins", req: request("/any", tokA, tokB), wantRule: "any", wantBy: "a"},
		{name: "any-of, a's token expired, b valid", req: request("/any", expiredA, tokB), wantRule: "any", wantBy: "b"},
		{name: "any-of without token", req: request("/any", "", ""), wantRule: "any", wantReason: verifier.Missing},
		{name: "all-of with both", req: request("/all", tokA, tokB), wantRule: "all", wantBy: "a+b"},
		{name: "all-of without b", req: request("/all", tokA, ""), wantRule: "all", wantReason: verifier.Missing},
		{name: "all-of with A's token in both places", req: request("/all", tokA, tokA), wantRule: "all", wantReason: verifier.BadIssuer},
		{name: "allow-missing without token", req: request("/optional", "", ""), wantRule: "optional", wantAnon: true},
		{name: "allow-missing with a token", req: request("/optional", tokA, ""), wantRule: "optional", wantBy: "a"},
		{name: "allow-missing with a bad token", req: request("/optional", expiredA, ""), wantRule: "optional", wantReason: verifier.Expired},
		{name: "allow-missing with garbage", req: request("/optional", "x.y.z", ""), wantRule: "optional", wantReason: verifier.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(p, tt.req)
			if d.Rule.Name != tt.wantRule {
				t.Errorf("rule = %s, want %s", d.Rule.Name, tt.wantRule)
			}
			if got := reasonOf(d.Err); got != tt.wantReason {
				t.Errorf("reason = %q (%v), want %q", got, d.Err, tt.wantReason)
			}
			if got := verifiedBy(p, d); got != tt.wantBy {
				t.Errorf("verified by %q, want %q", got, tt.wantBy)
			}
			if d.Public != tt.wantPublic || d.Anonymous != tt.wantAnon {
				t.Errorf("public, anonymous = %v, %v; want %v, %v", d.Public, d.Anonymous, tt.wantPublic, tt.wantAnon)
			}
		})
	}
}

const time1h = 3600 * 1e9

// TestProviderBinding: a provider's keys verify only its own issuer's
// tokens, and a provider accepts no other issuer, even one the policy
// knows.
func TestProviderBinding(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.policy(t, rule("a", policy.RequireAnyOf, "a"), rule("b", policy.RequireAnyOf, "b"))
	tests := []struct {
		name       string
		req        *http.Request
		wantReason verifier.Reason
	}{
		// Issuer A's key signs a token claiming to be from B: B's keys
		// do not know it.
		{name: "A's key, iss B, for b", req: request("/b", "", f.a.WithKID("b-1").Sign(t, claims(issB))), wantReason: verifier.BadSignature},
		{name: "A's key, iss B, kid a-1, for b", req: request("/b", "", f.a.Sign(t, claims(issB))), wantReason: verifier.UnknownKey},
		// A valid token of B is no token of A.
		{name: "B's token for a", req: request("/a", f.b.Sign(t, claims(issB)), ""), wantReason: verifier.BadIssuer},
		{name: "B's key, iss A, for a", req: request("/a", f.b.WithKID("a-1").Sign(t, claims(issA)), ""), wantReason: verifier.BadSignature},
		{name: "A's token for a", req: request("/a", f.a.Sign(t, claims(issA)), "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(decide(p, tt.req).Err); got != tt.wantReason {
				t.Errorf("reason = %q, want %q", got, tt.wantReason)
			}
		})
	}
}

// TestAnyOfReportsTheTellingReason: when no provider verifies, the reason
// is the one of the provider whose issuer the token names.
func TestAnyOfReportsTheTellingReason(t *testing.T) {
	f := newPolicyFixture(t)
	// Both read the Authorization header, so both see every token.
	f.provider[1].Auth = mustVerifier(t, verifier.Options{Keys: keysOf(t, "b2", issB, f.b), Audiences: []string{aud}, RequireExp: true})
	p := f.policy(t, rule("ba", policy.RequireAnyOf, "b", "a"))
	other := newSigner(t, "ES256", "c-1")
	tests := []struct {
		name       string
		token      string
		wantReason verifier.Reason
		wantDetail string
	}{
		{name: "A's expired token", token: f.a.Sign(t, with(claims(issA), "exp", base.Add(-time1h).Unix())), wantReason: verifier.Expired},
		{name: "A's token for another audience", token: f.a.Sign(t, with(claims(issA), "aud", "other")), wantReason: verifier.BadAudience},
		{name: "A's token with a bad alg", token: jwtHS256(t, claims(issA)), wantReason: verifier.BadAlgorithm},
		{name: "an unknown issuer", token: other.Sign(t, claims("https://evil.test")), wantReason: verifier.BadIssuer, wantDetail: `issuer "https://evil.test" is accepted by none of b, a`},
		{name: "garbage", token: "a.b.c", wantReason: verifier.Malformed},
		{name: "none", token: "", wantReason: verifier.Missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(p, request("/ba", tt.token, ""))
			if got := reasonOf(d.Err); got != tt.wantReason {
				t.Errorf("reason = %q (%v), want %q", got, d.Err, tt.wantReason)
			}
			if tt.wantDetail != "" && (d.Err == nil || !strings.Contains(d.Err.Error(), tt.wantDetail)) {
				t.Errorf("error %v lacks %q", d.Err, tt.wantDetail)
			}
		})
	}
}

func keysOf(t testing.TB, name, iss string, s signer) *keys.Keys {
	t.Helper()
	src, err := keys.NewStaticSource(name, []string{iss}, []keys.StaticKey{{KID: s.KID, Key: s.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	k := mustKeys(t, keys.KeyOptions{}, nil, src)
	return k
}

func jwtHS256(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScopesAndClaims(t *testing.T) {
	f := newPolicyFixture(t)
	req := func(scopes []string, cl ...policy.ClaimRequirement) policy.Requirement {
		return policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{"a"}, Scopes: scopes, Claims: cl}
	}
	claim := func(path string, values ...any) policy.ClaimRequirement {
		return policy.ClaimRequirement{Claim: path, Values: values}
	}
	tok := f.a.Sign(t, with(claims(issA),
		"groups", []any{"staff", "admin"},
		"realm_access", map[string]any{"roles": []any{"ops"}},
		"tenant", "acme",
		"level", 3,
		"ratio", 0.5,
		"mfa", true,
		"https://example.com/org", "x",
	))
	tests := []struct {
		name       string
		require    policy.Requirement
		wantReason verifier.Reason
		wantDetail string
	}{
		{name: "scope present", require: req([]string{"read", "write"})},
		{name: "scope absent", require: req([]string{"admin"}), wantReason: verifier.InsufficientScope, wantDetail: `requires scope "admin"`},
		{name: "string claim", require: req(nil, claim("tenant", "acme"))},
		{name: "string claim, another value", require: req(nil, claim("tenant", "other")), wantReason: verifier.InsufficientScope, wantDetail: `claim tenant to be "other"; the a token has "acme"`},
		{name: "any of a list", require: req(nil, claim("tenant", "other", "acme"))},
		{name: "array contains", require: req(nil, claim("groups", "admin"))},
		{name: "array lacks", require: req(nil, claim("groups", "root")), wantReason: verifier.InsufficientScope},
		{name: "dotted path", require: req(nil, claim("realm_access.roles", "ops"))},
		{name: "claim name with dots", require: req(nil, claim("https://example.com/org", "x"))},
		{name: "missing claim", require: req(nil, claim("department", "x")), wantReason: verifier.InsufficientScope, wantDetail: "lacks"},
		{name: "integer", require: req(nil, claim("level", int64(3)))},
		{name: "integer mismatch", require: req(nil, claim("level", int64(4))), wantReason: verifier.InsufficientScope},
		{name: "float", require: req(nil, claim("ratio", 0.5))},
		{name: "bool", require: req(nil, claim("mfa", true))},
		{name: "a string is not a number", require: req(nil, claim("tenant", int64(3))), wantReason: verifier.InsufficientScope},
		{name: "a number is not a string", require: req(nil, claim("level", "3")), wantReason: verifier.InsufficientScope},
		{name: "a bool is not a string", require: req(nil, claim("mfa", "true")), wantReason: verifier.InsufficientScope},
		{name: "every requirement", require: req([]string{"read"}, claim("tenant", "acme"), claim("groups", "staff"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.policy(t, policy.Rule{Name: "r", Match: policy.Match{Prefix: "/"}, Require: tt.require})
			d := decide(p, request("/x", tok, ""))
			if got := reasonOf(d.Err); got != tt.wantReason {
				t.Errorf("reason = %q (%v), want %q", got, d.Err, tt.wantReason)
			}
			if tt.wantDetail != "" && (d.Err == nil || !strings.Contains(d.Err.Error(), tt.wantDetail)) {
				t.Errorf("error %v lacks %q", d.Err, tt.wantDetail)
			}
		})
	}
}

// TestAllOfChecksEveryToken: an all-of rule's scopes and claims hold for
// each verified token, not just one of them.
func TestAllOfChecksEveryToken(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.policy(t, policy.Rule{Name: "all", Match: policy.Match{Prefix: "/"}, Require: policy.Requirement{
		Kind: policy.RequireAllOf, Providers: []string{"a", "b"},
		Claims: []policy.ClaimRequirement{{Claim: "tenant", Values: []any{"acme"}}},
	}})
	both := request("/", f.a.Sign(t, with(claims(issA), "tenant", "acme")), f.b.Sign(t, with(claims(issB), "tenant", "acme")))
	if d := decide(p, both); d.Err != nil || verifiedBy(p, d) != "a+b" {
		t.Errorf("both tenants acme: err %v, verified by %q; want a+b", d.Err, verifiedBy(p, d))
	}
	oneOff := request("/", f.a.Sign(t, with(claims(issA), "tenant", "acme")), f.b.Sign(t, with(claims(issB), "tenant", "other")))
	if d := decide(p, oneOff); reasonOf(d.Err) != verifier.InsufficientScope || !strings.Contains(d.Err.Error(), "the b token") {
		t.Errorf("b's tenant differs: %v, want insufficient_scope naming b", d.Err)
	}
}

func TestNewPolicyRefuses(t *testing.T) {
	f := newPolicyFixture(t)
	tests := []struct {
		name    string
		rules   []policy.Rule
		def     policy.Requirement
		wantErr string
	}{
		{name: "unknown provider", rules: []policy.Rule{rule("x", policy.RequireAnyOf, "idp")}, wantErr: `unknown provider "idp"`},
		{name: "provider twice", rules: []policy.Rule{rule("x", policy.RequireAllOf, "a", "a")}, wantErr: "named twice"},
		{name: "no provider", rules: []policy.Rule{rule("x", policy.RequireAnyOf)}, wantErr: "names no provider"},
		{name: "rule twice", rules: []policy.Rule{rule("x", policy.RequirePublic), rule("x", policy.RequirePublic)}, wantErr: "name is taken"},
		{name: "rule named default", rules: []policy.Rule{rule("default", policy.RequirePublic)}, wantErr: "name is taken"},
		{name: "public with scopes", def: policy.Requirement{Kind: policy.RequirePublic, Scopes: []string{"x"}}, wantErr: "cannot require scopes"},
		{name: "bad match", rules: []policy.Rule{{Name: "x", Match: policy.Match{Prefix: "x"}, Require: policy.Requirement{Kind: policy.RequirePublic}}}, wantErr: "starts with /"},
		{name: "claim without value", def: policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{"a"}, Claims: []policy.ClaimRequirement{{Claim: "x"}}}, wantErr: "no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.New(policy.Options{Providers: f.provider, Rules: tt.rules, Default: tt.def})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestTrace(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.policy(t,
		policy.Rule{Name: "health", Match: policy.Match{Path: "/healthz"}, Require: policy.Requirement{Kind: policy.RequirePublic}},
		policy.Rule{Name: "writes", Match: policy.Match{Prefix: "/", Methods: []string{"POST"}}, Require: policy.Requirement{Kind: policy.RequireDeny}},
		rule("api", policy.RequireAnyOf, "b", "a"),
	)
	r := request("/api/x", f.a.Sign(t, claims(issA)), "")
	var (
		tr policy.Trace
		d  policy.Decision
	)
	ru := p.Match(r, "/api/x", &tr)
	p.Check(context.Background(), r, ru, &d, &tr)
	var got []string
	for _, rt := range tr.Rules {
		got = append(got, rt.Rule.Name+":"+rt.Mismatch.String())
	}
	if want := "health:path writes:method api:matched"; strings.Join(got, " ") != want {
		t.Errorf("rules traced = %q, want %q", strings.Join(got, " "), want)
	}
	if len(tr.Providers) != 2 || tr.Providers[0].Provider != "b" || reasonOf(tr.Providers[0].Err) != verifier.Missing ||
		tr.Providers[1].Provider != "a" || tr.Providers[1].Err != nil || tr.Providers[1].Claims.Subject != "alice" {
		t.Errorf("providers traced = %+v; want b missing, then a verified alice", tr.Providers)
	}
}

// TestCheckDoesNotAllocate: a verified cache hit through a policy costs no
// allocation, as it does through the verifier alone.
func TestCheckDoesNotAllocate(t *testing.T) {
	f := newPolicyFixture(t)
	p := f.policy(t,
		policy.Rule{Name: "health", Match: policy.Match{Path: "/healthz"}, Require: policy.Requirement{Kind: policy.RequirePublic}},
		policy.Rule{Name: "api", Match: policy.Match{Prefix: "/api"}, Require: policy.Requirement{
			Kind: policy.RequireAnyOf, Providers: []string{"a"}, Scopes: []string{"read"},
			Claims: []policy.ClaimRequirement{{Claim: "sub", Values: []any{"alice"}}},
		}},
	)
	r := request("/api/items", f.a.Sign(t, claims(issA)), "")
	ctx := context.Background()
	if n := testing.AllocsPerRun(200, func() {
		var d policy.Decision
		rule := p.Match(r, config.CleanPath(r.URL.Path), nil)
		p.Check(ctx, r, rule, &d, nil)
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}); n != 0 {
		t.Errorf("a verified cache hit allocates %v times, want 0", n)
	}
}
