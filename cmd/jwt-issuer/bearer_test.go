package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// bearerFixture is a server with CLIENT_KEYS: demo has an ES256 PEM public
// key, svc an RSA key in a JWKS (kid svc-1, alg RS256), ed an Ed25519 PEM
// key.
type bearerFixture struct {
	s      *server
	base   string
	clock  *testClock
	dir    string
	demo   jwttest.Signer
	svc    jwttest.Signer
	ed     jwttest.Signer
	demoPK []byte // demo's PEM public key
}

func newBearerFixture(t *testing.T) *bearerFixture {
	t.Helper()
	f := &bearerFixture{
		dir:  t.TempDir(),
		demo: jwttest.NewSigner(t, "ES256", ""),
		svc:  jwttest.NewSigner(t, "RS256", "svc-1"),
		ed:   jwttest.NewSigner(t, "EdDSA", ""),
	}
	write := func(name string, b []byte) string {
		path := filepath.Join(f.dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pemOf := func(s jwttest.Signer) []byte {
		b, err := encodePublicKey(s.Key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f.demoPK = pemOf(f.demo)
	entries := []string{
		"demo=" + write("demo.pub", f.demoPK),
		"svc=" + write("svc.jwks.json", jwttest.JWKS(t, f.svc)),
		"ed=" + write("ed.pub", pemOf(f.ed)),
	}
	f.s, f.base = testServer(t, func(c *config) {
		c.IssuerURL = "http://issuer.test"
		c.ClientKeys = entries
	})
	f.clock = newTestClock(f.s, t0)
	return f
}

// claims are valid assertion claims of client at t0.
func (f *bearerFixture) claims(client string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": client,
		"sub": client,
		"aud": "http://issuer.test/token",
		"iat": t0.Unix(),
		"exp": t0.Add(5 * time.Minute).Unix(),
		"jti": rand.Text(),
	}
}

// grant posts a jwt-bearer request with the assertion and extra fields,
// with the raw Authorization header auth unless empty.
func (f *bearerFixture) grant(t *testing.T, assertion, auth string, extra url.Values) (*http.Response, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {grantJWTBearer}, "assertion": {assertion}}
	for k, v := range extra {
		form[k] = v
	}
	resp, body := postForm(t, f.base+"/token", auth, form)
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not JSON: %s", body)
	}
	return resp, got
}

// TestJWTBearerIssues: a valid assertion of each key type gets a token
// that verifies against the JWKS, whose sub and client_id are the client.
func TestJWTBearerIssues(t *testing.T) {
	f := newBearerFixture(t)
	_, set := get(t, http.DefaultClient, f.base+"/.well-known/jwks.json")
	keyfunc := keyfuncFromJWKS(t, set)

	demoKey := filepath.Join(f.dir, "demo.key")
	pk, err := encodePrivateKey(f.demo.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(demoKey, pk, 0o600); err != nil {
		t.Fatal(err)
	}
	var cliOut bytes.Buffer
	if err := runAssertion([]string{"-key", demoKey, "-client", "demo", "-aud", "http://issuer.test/token"}, &cliOut, os.Stderr, t0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		assertion string
		auth      string
		extra     url.Values
		want      string
		wantScope string
	}{
		{name: "assertion subcommand, PEM ES256", assertion: strings.TrimSpace(cliOut.String()), want: "demo"},
		{name: "JWKS RS256 with kid, aud is the issuer", assertion: f.svc.Sign(t, func() jwt.MapClaims {
			c := f.claims("svc")
			c["aud"] = "http://issuer.test"
			return c
		}()), want: "svc"},
		{name: "PEM EdDSA, aud array, scope", assertion: f.ed.Sign(t, func() jwt.MapClaims {
			c := f.claims("ed")
			c["aud"] = []string{"other", "http://issuer.test/token"}
			return c
		}()), extra: url.Values{"scope": {"read write"}}, want: "ed", wantScope: "read write"},
		{name: "PEM key ignores the kid header", assertion: f.demo.WithKID("any").Sign(t, f.claims("demo")), want: "demo"},
		{name: "with the client's own credentials", assertion: f.demo.Sign(t, f.claims("demo")), auth: basic("demo", "demo-secret"), want: "demo"},
		{name: "with a matching client_id", assertion: f.demo.Sign(t, f.claims("demo")), extra: url.Values{"client_id": {"demo"}}, want: "demo"},
		{name: "exp passed within the leeway", assertion: f.demo.Sign(t, func() jwt.MapClaims {
			c := f.claims("demo")
			c["exp"] = t0.Add(-10 * time.Second).Unix()
			return c
		}()), want: "demo"},
		{name: "nbf and iat ahead within the leeway", assertion: f.demo.Sign(t, func() jwt.MapClaims {
			c := f.claims("demo")
			c["nbf"], c["iat"] = t0.Add(10*time.Second).Unix(), t0.Add(10*time.Second).Unix()
			return c
		}()), want: "demo"},
		{name: "exp exactly one hour ahead", assertion: f.demo.Sign(t, func() jwt.MapClaims {
			c := f.claims("demo")
			c["exp"] = t0.Add(time.Hour).Unix()
			return c
		}()), want: "demo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := f.grant(t, tt.assertion, tt.auth, tt.extra)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200: %v", resp.StatusCode, got)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || got["token_type"] != "Bearer" {
				t.Errorf("response = %v %v, want no-store and a Bearer token", resp.Header, got)
			}
			claims := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(got["access_token"].(string), claims, keyfunc,
				jwt.WithTimeFunc(func() time.Time { return t0 }),
				jwt.WithValidMethods([]string{"RS256"}),
				jwt.WithIssuer("http://issuer.test"),
				jwt.WithAudience("demo-api"),
				jwt.WithExpirationRequired())
			if err != nil {
				t.Fatalf("issued token does not verify: %v", err)
			}
			if claims["sub"] != tt.want || claims["client_id"] != tt.want {
				t.Errorf("sub, client_id = %v, %v; want %s", claims["sub"], claims["client_id"], tt.want)
			}
			if scope, _ := claims["scope"].(string); scope != tt.wantScope {
				t.Errorf("scope = %q, want %q", scope, tt.wantScope)
			}
		})
	}
	if got := testutil.ToFloat64(f.s.metrics.issuedJWT); got != float64(len(tests)) {
		t.Errorf("tokens_issued_total{grant=jwt_bearer} = %v, want %d", got, len(tests))
	}
	if got := testutil.ToFloat64(f.s.metrics.issuedCC); got != 0 {
		t.Errorf("tokens_issued_total{grant=client_credentials} = %v, want 0", got)
	}
}

// TestJWTBearerRefusals: every RFC 7523 §3 check, and the usual attacks on
// the signature, end in an RFC 6749 §5.2 error and no token.
func TestJWTBearerRefusals(t *testing.T) {
	f := newBearerFixture(t)
	mallory := jwttest.NewSigner(t, "ES256", "")
	edit := func(client string, change func(jwt.MapClaims)) jwt.MapClaims {
		c := f.claims(client)
		change(c)
		return c
	}
	hs256 := func(secret []byte, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims("demo"))
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims("demo")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	ps256 := jwttest.Signer{KID: "svc-1", Alg: "PS256", Key: f.svc.Key}

	tests := []struct {
		name       string
		assertion  string
		auth       string
		extra      url.Values
		wantStatus int
		wantError  string
	}{
		{name: "wrong key", assertion: mallory.Sign(t, f.claims("demo")), wantStatus: 400, wantError: "invalid_grant"},
		{name: "another client's key", assertion: f.svc.Sign(t, f.claims("demo")), wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown client", assertion: mallory.Sign(t, f.claims("mallory")), wantStatus: 400, wantError: "invalid_grant"},
		{name: "client with a secret but no key", assertion: mallory.Sign(t, f.claims("nokey")), wantStatus: 400, wantError: "invalid_grant"},
		{name: "unknown kid of a JWKS client", assertion: f.svc.WithKID("svc-2").Sign(t, f.claims("svc")), wantStatus: 400, wantError: "invalid_grant"},
		{name: "alg other than the JWK's", assertion: ps256.Sign(t, f.claims("svc")), wantStatus: 400, wantError: "invalid_grant"},
		{name: "HS256 with the PEM public key as secret", assertion: hs256(f.demoPK, ""), wantStatus: 400, wantError: "invalid_grant"},
		{name: "alg none", assertion: none, wantStatus: 400, wantError: "invalid_grant"},
		{name: "crit header", assertion: f.demo.SignWith(t, f.claims("demo"), map[string]any{"crit": []string{"exp"}}), wantStatus: 400, wantError: "invalid_grant"},
		{name: "wrong aud", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["aud"] = "http://other.test/token" })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "aud with a trailing slash", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["aud"] = "http://issuer.test/" })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "no aud", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { delete(c, "aud") })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "expired", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "no exp", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { delete(c, "exp") })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "exp two hours ahead", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["exp"] = t0.Add(2 * time.Hour).Unix() })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "nbf ahead", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Minute).Unix() })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "iat ahead", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Minute).Unix() })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "no jti", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { delete(c, "jti") })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "jti not a string", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["jti"] = 42 })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "sub is another client", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { c["sub"] = "svc" })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "no sub", assertion: f.demo.Sign(t, edit("demo", func(c jwt.MapClaims) { delete(c, "sub") })), wantStatus: 400, wantError: "invalid_grant"},
		{name: "garbage", assertion: "not.a.jwt", wantStatus: 400, wantError: "invalid_grant"},
		{name: "other client's credentials", assertion: f.demo.Sign(t, f.claims("demo")), auth: basic("nokey", "n-secret"), wantStatus: 400, wantError: "invalid_grant"},
		{name: "other client_id", assertion: f.demo.Sign(t, f.claims("demo")), extra: url.Values{"client_id": {"svc"}}, wantStatus: 400, wantError: "invalid_grant"},
		{name: "bad credentials", assertion: f.demo.Sign(t, f.claims("demo")), auth: basic("demo", "wrong"), wantStatus: 401, wantError: "invalid_client"},
		{name: "no assertion", assertion: "", wantStatus: 400, wantError: "invalid_request"},
		{name: "bad scope", assertion: f.demo.Sign(t, f.claims("demo")), extra: url.Values{"scope": {`"x"`}}, wantStatus: 400, wantError: "invalid_scope"},
	}
	f.s.clients["nokey"] = sha256.Sum256([]byte("n-secret"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := f.grant(t, tt.assertion, tt.auth, tt.extra)
			if resp.StatusCode != tt.wantStatus || got["error"] != tt.wantError {
				t.Errorf("answer = %d %v, want %d %s", resp.StatusCode, got, tt.wantStatus, tt.wantError)
			}
			if _, ok := got["access_token"]; ok {
				t.Error("a refusal carries an access_token")
			}
			if d, _ := got["error_description"].(string); tt.wantError == "invalid_grant" && d == "" {
				t.Error("invalid_grant without error_description")
			}
		})
	}
	if got := testutil.ToFloat64(f.s.metrics.issuedJWT); got != 0 {
		t.Errorf("tokens_issued_total{grant=jwt_bearer} = %v, want 0", got)
	}
}

// TestJWTBearerReplay: a jti is single-use until the assertion expires, a
// refused request does not spend it, and used jtis are forgotten after
// exp plus the leeway.
func TestJWTBearerReplay(t *testing.T) {
	f := newBearerFixture(t)
	a := f.demo.Sign(t, f.claims("demo"))

	// Refused for another reason first: the jti stays unspent.
	if resp, got := f.grant(t, a, "", url.Values{"client_id": {"svc"}}); resp.StatusCode != 400 {
		t.Fatalf("mismatched client_id: %d %v", resp.StatusCode, got)
	}
	if resp, got := f.grant(t, a, "", nil); resp.StatusCode != 200 {
		t.Fatalf("first use: %d %v", resp.StatusCode, got)
	}
	resp, got := f.grant(t, a, "", nil)
	if resp.StatusCode != 400 || got["error"] != "invalid_grant" || !strings.Contains(got["error_description"].(string), "already used") {
		t.Errorf("replay: %d %v, want 400 invalid_grant, already used", resp.StatusCode, got)
	}
	// The same jti from another client is another assertion (RFC 7519
	// §4.1.7: unique per issuer).
	demoClaims, edClaims := f.claims("demo"), f.claims("ed")
	edClaims["jti"] = demoClaims["jti"]
	if resp, got := f.grant(t, f.demo.Sign(t, demoClaims), "", nil); resp.StatusCode != 200 {
		t.Fatalf("demo: %d %v", resp.StatusCode, got)
	}
	if resp, got := f.grant(t, f.ed.Sign(t, edClaims), "", nil); resp.StatusCode != 200 {
		t.Errorf("ed with demo's jti: %d %v, want 200", resp.StatusCode, got)
	}

	if n := f.s.usedAssertions.len(); n != 3 {
		t.Fatalf("used assertions = %d, want 3", n)
	}
	f.clock.Set(t0.Add(5*time.Minute + assertionLeeway + sweepInterval + time.Second))
	later := f.demo.Sign(t, func() jwt.MapClaims {
		c := f.claims("demo")
		c["iat"], c["exp"] = f.clock.Now().Unix(), f.clock.Now().Add(time.Minute).Unix()
		return c
	}())
	if resp, got := f.grant(t, later, "", nil); resp.StatusCode != 200 {
		t.Fatalf("later: %d %v", resp.StatusCode, got)
	}
	if n := f.s.usedAssertions.len(); n != 1 {
		t.Errorf("used assertions after the first expired = %d, want 1", n)
	}
}

// TestJWTBearerNeedsClientKeys: without CLIENT_KEYS the grant is not
// offered.
func TestJWTBearerNeedsClientKeys(t *testing.T) {
	_, base := testServer(t, nil)
	resp, body := postForm(t, base+"/token", "", url.Values{"grant_type": {grantJWTBearer}, "assertion": {"a.b.c"}})
	var got oauthError
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || got.Error != "unsupported_grant_type" {
		t.Errorf("answer = %d %v, want 400 unsupported_grant_type", resp.StatusCode, got)
	}
	_, disc := get(t, http.DefaultClient, base+"/.well-known/openid-configuration")
	if bytes.Contains(disc, []byte("jwt-bearer")) {
		t.Errorf("discovery offers jwt-bearer without CLIENT_KEYS: %s", disc)
	}
}

func TestJWTBearerDiscovery(t *testing.T) {
	f := newBearerFixture(t)
	_, body := get(t, http.DefaultClient, f.base+"/.well-known/openid-configuration")
	var d discovery
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.GrantTypesSupported, " ") != "client_credentials "+grantJWTBearer+" authorization_code refresh_token" {
		t.Errorf("grant_types_supported = %v", d.GrantTypesSupported)
	}
	if d.IntrospectionEndpoint != "http://issuer.test/introspect" || d.RevocationEndpoint != "http://issuer.test/revoke" {
		t.Errorf("introspection, revocation endpoints = %s, %s", d.IntrospectionEndpoint, d.RevocationEndpoint)
	}
}
