package verifier_test

import (
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// BenchmarkIntrospect is what introspection mode costs per request against
// a token service on 127.0.0.1 (the best case: no network, no TLS, an
// endpoint that does no work): "call" is a round trip on a kept-alive
// connection, "cache-hit" is INTROSPECTION_CACHE_TTL at work. Compare with
// BenchmarkVerifyRequest, jwt mode's whole request on a cache hit.
//
//	go test -run '^$' -bench Introspect -benchmem ./verifier/

// opaque is an opaque (non-JWT) access token: introspection takes any
// RFC 6750 b64token.
const opaque = "op/aq+ue~to.ken_1-X=="

func BenchmarkIntrospect(b *testing.B) {
	ts := jwttest.NewTokenService(b)
	claims := jwttest.ActiveClaims()
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	claims["iat"] = time.Now().Unix()
	ts.Activate(opaque, claims)
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"call", 0}, {"cache-hit", time.Minute}} {
		b.Run(bc.name, func(b *testing.B) {
			in, err := verifier.NewIntrospector(verifier.IntrospectionOptions{
				URL: ts.URL, ClientID: jwttest.IntrospectionClientID, ClientSecret: jwttest.IntrospectionClientSecret,
				Issuers: []string{issA}, Audiences: []string{aud}, RequireExp: true,
				RequiredScopes: []string{"read"}, CacheTTL: bc.ttl, CacheSize: 100,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer in.CloseIdleConnections()
			req := bearer(opaque)
			if _, err := in.Verify(b.Context(), req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.Verify(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
