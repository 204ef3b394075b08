package policy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// BenchmarkPolicyRequest is a verified request through a policy: two public
// rules tried first, then the one provider, as the environment's
// configuration becomes. Compared with verifier's BenchmarkVerifyRequest,
// the difference is what a policy costs a request.
func BenchmarkPolicyRequest(b *testing.B) {
	s := newSigner(b, "RS256", "k1")
	src, err := keys.NewStaticSource("s", []string{issA}, []keys.StaticKey{{KID: "k1", Key: s.Key.Public()}})
	if err != nil {
		b.Fatal(err)
	}
	ks := mustKeys(b, keys.KeyOptions{}, nil, src)
	v, err := verifier.New(verifier.Options{
		Keys: ks, Audiences: []string{aud}, ClockSkew: 30 * time.Second,
		RequireExp: true, RequiredScopes: []string{"read"}, CacheSize: 1000,
	})
	if err != nil {
		b.Fatal(err)
	}
	c := claims(issA)
	c["exp"], c["iat"], c["nbf"] = time.Now().Add(time.Hour).Unix(), time.Now().Unix(), time.Now().Unix()
	tok := s.Sign(b, c)
	pol, err := policy.New(policy.Options{
		Providers: []policy.Provider{{Name: "env", Auth: v}},
		Rules: []policy.Rule{
			{Name: "public:/healthz", Match: policy.Match{Path: "/healthz"}, Require: policy.Requirement{Kind: policy.RequirePublic}},
			{Name: "public:/static/*", Match: policy.Match{Prefix: "/static/"}, Require: policy.Requirement{Kind: policy.RequirePublic}},
		},
		Default: policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{"env"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://sidecar/api", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var d policy.Decision
		pol.Check(ctx, r, pol.Match(r, config.CleanPath(r.URL.Path), nil), &d, nil)
		if d.Err != nil {
			b.Fatal(d.Err)
		}
	}
}
