package verifier_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// fixture is a verifier over a real JWKS endpoint for issuer A holding an
// RSA, an EC and an Ed25519 key, plus a static source for issuer B.
type fixture struct {
	v      *verifier.Verifier
	rsa    signer
	ec     signer
	ed     signer
	b      signer // issuer B's key
	jwks   *jwksServer
	events *keyEvents
}

func newFixture(t *testing.T, mutate func(*verifier.Options)) *fixture {
	t.Helper()
	f := &fixture{
		rsa:    newSigner(t, "RS256", "rsa-1"),
		ec:     newSigner(t, "ES256", "ec-1"),
		ed:     newSigner(t, "EdDSA", "ed-1"),
		b:      newSigner(t, "RS256", "b-1"),
		events: &keyEvents{},
	}
	f.jwks = newJWKSServer(t, jwksJSON(t, f.rsa, f.ec, f.ed))
	bSource, err := keys.NewStaticSource("b", []string{issB}, []keys.StaticKey{{KID: f.b.KID, Key: f.b.Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	keys := mustKeys(t, keys.KeyOptions{RefetchCooldown: time.Hour, MaxWait: 2 * time.Second}, f.events,
		keys.NewRemoteSource(f.jwks.URL, []string{issA}, nil), bSource)
	load(t, keys)
	o := verifier.Options{
		Keys:           keys,
		Audiences:      []string{aud, "other"},
		ClockSkew:      30 * time.Second,
		RequireExp:     true,
		RequiredScopes: []string{"read"},
		CacheSize:      100,
	}
	if mutate != nil {
		mutate(&o)
	}
	f.v = mustVerifier(t, o)
	return f
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// rawToken assembles a token from a header and claims with any signature.
func rawToken(t *testing.T, header map[string]any, c jwt.MapClaims, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

func TestVerifyReasons(t *testing.T) {
	f := newFixture(t, nil)
	a := claims(issA)
	good := f.rsa.Sign(t, a)
	pubDER, err := x509.MarshalPKIXPublicKey(f.rsa.Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsWith := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, a)
		tok.Header["kid"] = f.rsa.KID
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issA+`","sub":"mallory","aud":"api","exp":9999999999,"scope":"read"}`)) + "." + parts[2]
	// RS256 header with the kid of the EC key: the key does not fit the alg.
	ecKidRSA := newSigner(t, "RS256", f.ec.KID).Sign(t, a)

	tests := []struct {
		name       string
		token      string
		wantReason verifier.Reason
	}{
		{name: "valid RS256", token: good},
		{name: "valid ES256", token: f.ec.Sign(t, a)},
		{name: "valid EdDSA", token: f.ed.Sign(t, a)},
		{name: "valid issuer B with its own key", token: f.b.Sign(t, claims(issB))},
		{name: "aud array, one accepted", token: f.rsa.Sign(t, with(a, "aud", []string{"x", "other"}))},
		{name: "scp array", token: f.rsa.Sign(t, with(a, "scope", nil, "scp", []string{"read"}))},
		{name: "fractional exp", token: f.rsa.Sign(t, with(a, "exp", json.Number("1800000000.5")))},
		{name: "expired within skew", token: f.rsa.Sign(t, with(a, "exp", base.Add(-10*time.Second).Unix()))},
		{name: "expired", token: f.rsa.Sign(t, with(a, "exp", base.Add(-time.Minute).Unix())), wantReason: verifier.Expired},
		{name: "nbf in the future", token: f.rsa.Sign(t, with(a, "nbf", base.Add(time.Minute).Unix())), wantReason: verifier.NotYetValid},
		{name: "iat in the future", token: f.rsa.Sign(t, with(a, "iat", base.Add(time.Minute).Unix())), wantReason: verifier.NotYetValid},
		{name: "no exp", token: f.rsa.Sign(t, with(a, "exp", nil)), wantReason: verifier.Malformed},
		{name: "exp not a number", token: f.rsa.Sign(t, with(a, "exp", "tomorrow")), wantReason: verifier.Malformed},
		{name: "wrong issuer", token: f.rsa.Sign(t, with(a, "iss", "https://evil.test")), wantReason: verifier.BadIssuer},
		{name: "issuer differs in case", token: f.rsa.Sign(t, with(a, "iss", strings.ToUpper(issA))), wantReason: verifier.BadIssuer},
		{name: "no issuer", token: f.rsa.Sign(t, with(a, "iss", nil)), wantReason: verifier.BadIssuer},
		{name: "issuer B signed with issuer A's key", token: f.rsa.Sign(t, claims(issB)), wantReason: verifier.UnknownKey},
		{name: "issuer A signed with issuer B's key", token: f.b.Sign(t, a), wantReason: verifier.UnknownKey},
		{name: "wrong audience", token: f.rsa.Sign(t, with(a, "aud", "nope")), wantReason: verifier.BadAudience},
		{name: "no audience", token: f.rsa.Sign(t, with(a, "aud", nil)), wantReason: verifier.BadAudience},
		{name: "missing scope", token: f.rsa.Sign(t, with(a, "scope", "write")), wantReason: verifier.InsufficientScope},
		{name: "scope is case-sensitive", token: f.rsa.Sign(t, with(a, "scope", "READ")), wantReason: verifier.InsufficientScope},
		{name: "tampered payload", token: tampered, wantReason: verifier.BadSignature},
		{name: "signature of another key with the same kid", token: newSigner(t, "RS256", f.rsa.KID).Sign(t, a), wantReason: verifier.BadSignature},
		{name: "unknown kid", token: newSigner(t, "RS256", "nope").Sign(t, a), wantReason: verifier.UnknownKey},
		{name: "kid path traversal", token: newSigner(t, "RS256", "../../../../etc/passwd").Sign(t, a), wantReason: verifier.UnknownKey},
		{name: "kid SQL", token: newSigner(t, "RS256", "x' OR '1'='1").Sign(t, a), wantReason: verifier.UnknownKey},
		{name: "alg RS256 on an EC key", token: ecKidRSA, wantReason: verifier.BadAlgorithm},
		{name: "alg none", token: rawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, a, nil), wantReason: verifier.BadAlgorithm},
		{name: "alg None", token: rawToken(t, map[string]any{"alg": "None"}, a, nil), wantReason: verifier.BadAlgorithm},
		{name: "alg NONE", token: rawToken(t, map[string]any{"alg": "NONE"}, a, nil), wantReason: verifier.BadAlgorithm},
		{name: "alg nOnE", token: rawToken(t, map[string]any{"alg": "nOnE"}, a, nil), wantReason: verifier.BadAlgorithm},
		{name: "alg rs256 (case)", token: rawToken(t, map[string]any{"alg": "rs256", "kid": f.rsa.KID}, a, []byte("x")), wantReason: verifier.BadAlgorithm},
		{name: "HS256 with the RSA public key PEM as secret", token: hsWith(pubPEM), wantReason: verifier.BadAlgorithm},
		{name: "HS256 with the RSA public key DER as secret", token: hsWith(pubDER), wantReason: verifier.BadAlgorithm},
		{name: "psychic ECDSA signature", token: rawToken(t, map[string]any{"alg": "ES256", "kid": f.ec.KID}, a, make([]byte, 64)), wantReason: verifier.BadSignature},
		{name: "crit extension", token: rawToken(t, map[string]any{"alg": "RS256", "kid": f.rsa.KID, "crit": []string{"exp"}, "exp": 1}, a, []byte("x")), wantReason: verifier.Malformed},
		{name: "two segments", token: parts[0] + "." + parts[1], wantReason: verifier.Malformed},
		{name: "four segments", token: good + ".x", wantReason: verifier.Malformed},
		{name: "JWE-like five segments", token: "a.b.c.d.e", wantReason: verifier.Malformed},
		{name: "header not base64", token: "!!!." + parts[1] + "." + parts[2], wantReason: verifier.Malformed},
		{name: "header not JSON", token: base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], wantReason: verifier.Malformed},
		{name: "payload not JSON", token: parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + "." + parts[2], wantReason: verifier.Malformed},
		{name: "padded base64", token: parts[0] + "=." + parts[1] + "." + parts[2], wantReason: verifier.Malformed},
		{name: "oversized", token: good + strings.Repeat("A", 9000), wantReason: verifier.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Verify(t.Context(), bearer(tt.token))
			if got := reasonOf(err); got != tt.wantReason {
				t.Errorf("reason = %q, want %q (err: %v)", got, tt.wantReason, err)
			}
		})
	}
}

func TestHeaderKeysAreNeverFetched(t *testing.T) {
	f := newFixture(t, nil)
	attacker := newSigner(t, "RS256", "attacker")
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Write(jwksJSON(t, attacker))
	}))
	defer evil.Close()
	var jwk map[string]any
	if err := json.Unmarshal(attacker.JWK(t), &jwk); err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct{ name, value any }{
		{"jku", evil.URL}, {"x5u", evil.URL}, {"jwk", jwk},
	} {
		t.Run(h.name.(string), func(t *testing.T) {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(issA))
			tok.Header["kid"] = attacker.KID
			tok.Header[h.name.(string)] = h.value
			s, err := tok.SignedString(attacker.Key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.v.Verify(t.Context(), bearer(s))
			if got := reasonOf(err); got != verifier.UnknownKey {
				t.Errorf("reason = %q, want %q", got, verifier.UnknownKey)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the attacker's key server got %d requests, want 0", n)
	}
}

func TestExtraction(t *testing.T) {
	f := newFixture(t, func(o *verifier.Options) {
		l, err := config.ParseLookups("header:Authorization,cookie:session,query:access_token")
		if err != nil {
			t.Fatal(err)
		}
		o.Lookups = l
	})
	tok := f.rsa.Sign(t, claims(issA))
	req := func(mod func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://sidecar/api", nil)
		mod(r)
		return r
	}
	tests := []struct {
		name       string
		req        *http.Request
		wantReason verifier.Reason
		wantFrom   config.Lookup
	}{
		{name: "none", req: req(func(*http.Request) {}), wantReason: verifier.Missing},
		{name: "basic auth is not a token", req: req(func(r *http.Request) { r.SetBasicAuth("u", "p") }), wantReason: verifier.Missing},
		{name: "bearer without a token", req: req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer") }), wantReason: verifier.InvalidRequest},
		{name: "bearer, lower case", req: req(func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }), wantFrom: config.Lookup{Kind: config.InHeader, Name: "Authorization"}},
		{name: "two Authorization headers", req: req(func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+tok)
			r.Header.Add("Authorization", "Bearer "+tok)
		}), wantReason: verifier.InvalidRequest},
		{name: "header and query", req: req(func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+tok)
			r.URL.RawQuery = "access_token=" + tok
		}), wantReason: verifier.InvalidRequest},
		{name: "two query tokens", req: req(func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok + "&access_token=" + tok }), wantReason: verifier.InvalidRequest},
		{name: "cookie", req: req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: tok}) }), wantFrom: config.Lookup{Kind: config.InCookie, Name: "session"}},
		{name: "query", req: req(func(r *http.Request) { r.URL.RawQuery = "a=1&access_token=" + tok }), wantFrom: config.Lookup{Kind: config.InQuery, Name: "access_token"}},
		{name: "bad characters", req: req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer a.b.c<script>") }), wantReason: verifier.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.v.Verify(t.Context(), tt.req)
			if got := reasonOf(err); got != tt.wantReason {
				t.Fatalf("reason = %q, want %q (err: %v)", got, tt.wantReason, err)
			}
			if err == nil && c.From != tt.wantFrom {
				t.Errorf("from = %v, want %v", c.From, tt.wantFrom)
			}
		})
	}
}

func TestParseLookups(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr bool
	}{
		{spec: "header:Authorization"},
		{spec: "header:x-token, cookie:s , query:t"},
		{spec: "", wantErr: true},
		{spec: "body:x", wantErr: true},
		{spec: "header:", wantErr: true},
		{spec: "header", wantErr: true},
		{spec: "header:a,header:A", wantErr: true},
	}
	for _, tt := range tests {
		_, err := config.ParseLookups(tt.spec)
		if got := err != nil; got != tt.wantErr {
			t.Errorf("config.ParseLookups(%q) error = %v, want error %v", tt.spec, err, tt.wantErr)
		}
	}
}

func TestHMAC(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	src, err := keys.NewStaticSource("hmac", []string{issA}, []keys.StaticKey{{Key: secret}})
	if err != nil {
		t.Fatal(err)
	}
	ks := mustKeys(t, keys.KeyOptions{}, nil, src)
	load(t, ks)
	v := mustVerifier(t, verifier.Options{Keys: ks, Algorithms: config.HMACAlgorithms, RequireExp: true})
	rsa := newSigner(t, "RS256", "")
	for _, alg := range config.HMACAlgorithms {
		tok, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims(issA)).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), bearer(tok)); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	if _, err := v.Verify(t.Context(), bearer(rsa.Sign(t, claims(issA)))); reasonOf(err) != verifier.BadAlgorithm {
		t.Errorf("RS256 with an HMAC-only verifier: reason = %q, want bad_algorithm", reasonOf(err))
	}
	short, err := keys.NewStaticSource("short", []string{issA}, []keys.StaticKey{{Key: []byte("short")}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &keyEvents{}
	if err := mustKeys(t, keys.KeyOptions{}, ev, short).LoadOnce(t.Context()); err == nil || ev.count("start/empty") != 1 {
		t.Errorf("a 5-byte HMAC secret: load error %v, start/empty loads %d; want it dropped as unusable, leaving no key (RFC 7518 §3.2)", err, ev.count("start/empty"))
	}
}

func TestNewRefusesUnsafeOptions(t *testing.T) {
	src, err := keys.NewStaticSource("s", []string{issA}, []keys.StaticKey{{Key: newSigner(t, "ES256", "").Key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	keys := mustKeys(t, keys.KeyOptions{}, nil, src)
	// The same keys with safe options: what is refused below is the option.
	if _, err := verifier.New(verifier.Options{Keys: keys, Algorithms: []string{"RS256"}, ClockSkew: time.Second}); err != nil {
		t.Fatalf("New with safe options: %v", err)
	}
	for _, tt := range []struct {
		algs []string
		bad  string
	}{{algs: []string{"none"}, bad: `"none"`}, {algs: []string{"RS256", "None"}, bad: `"None"`}, {algs: []string{"XS256"}, bad: `"XS256"`}} {
		if _, err := verifier.New(verifier.Options{Keys: keys, Algorithms: tt.algs}); err == nil || !strings.Contains(err.Error(), tt.bad) {
			t.Errorf("New with algorithms %v: error %v, want one naming %s", tt.algs, err, tt.bad)
		}
	}
	if _, err := verifier.New(verifier.Options{Keys: keys, ClockSkew: -time.Second}); err == nil || !strings.Contains(err.Error(), "clock skew") {
		t.Errorf("New with a negative clock skew: error %v, want one naming the clock skew", err)
	}
}

func TestTokenCache(t *testing.T) {
	now := base
	var rec recorder
	f := newFixture(t, func(o *verifier.Options) {
		o.Now = func() time.Time { return now }
		o.Recorder = &rec
	})
	tok := f.rsa.Sign(t, claims(issA)) // exp = base + 10m
	for range 3 {
		if _, err := f.v.Verify(t.Context(), bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	if rec.hits != 2 || rec.misses != 1 {
		t.Errorf("hits, misses = %d, %d, want 2, 1", rec.hits, rec.misses)
	}
	if n := f.v.CacheLen(); n != 1 {
		t.Errorf("cache holds %d tokens, want 1", n)
	}
	// Past exp + skew, the cached token is refused again.
	now = base.Add(10*time.Minute + 31*time.Second)
	if _, err := f.v.Verify(t.Context(), bearer(tok)); reasonOf(err) != verifier.Expired {
		t.Errorf("cached token after exp: reason = %q, want expired", reasonOf(err))
	}
	if n := f.v.CacheLen(); n != 0 {
		t.Errorf("cache holds %d tokens after expiry, want 0", n)
	}
	// Within skew after exp: accepted, and counted as a skew acceptance.
	now = base.Add(10*time.Minute + 10*time.Second)
	if _, err := f.v.Verify(t.Context(), bearer(tok)); err != nil {
		t.Fatal(err)
	}
	if rec.skew["exp"] != 1 {
		t.Errorf("skew acceptances of exp = %d, want 1", rec.skew["exp"])
	}
}

func TestTokenCacheIsBounded(t *testing.T) {
	f := newFixture(t, func(o *verifier.Options) { o.CacheSize = 40 })
	for i := range 200 {
		tok := f.rsa.Sign(t, with(claims(issA), "jti", i))
		if _, err := f.v.Verify(t.Context(), bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	// 32 shards of ceil(40/32) = 2 entries at most.
	if n := f.v.CacheLen(); n > 64 {
		t.Errorf("cache holds %d tokens, want at most 64", n)
	}
}

type recorder struct {
	hits, misses int
	skew         map[string]int
	ages         []time.Duration
}

func (r *recorder) TokenCache(hit bool) {
	if hit {
		r.hits++
	} else {
		r.misses++
	}
}
func (r *recorder) TokenAge(d time.Duration) { r.ages = append(r.ages, d) }
func (r *recorder) SkewAccepted(c string) {
	if r.skew == nil {
		r.skew = map[string]int{}
	}
	r.skew[c]++
}

func TestClaims(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.rsa.Sign(t, with(claims(issA),
		"realm_access", map[string]any{"roles": []string{"admin", "user"}},
		"https://example.com/roles", []string{"x"},
		"n", json.Number("12345678901234567890")))
	c, err := f.v.Verify(context.Background(), bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Issuer != issA || c.KeyID != f.rsa.KID {
		t.Errorf("subject, issuer, kid = %q, %q, %q", c.Subject, c.Issuer, c.KeyID)
	}
	if c.Payload != strings.Split(tok, ".")[1] {
		t.Errorf("payload = %q, want the token's payload segment", c.Payload)
	}
	if got, ok := c.Lookup("realm_access.roles"); !ok || len(got.([]any)) != 2 {
		t.Errorf("realm_access.roles = %v, %v", got, ok)
	}
	if _, ok := c.Lookup("https://example.com/roles"); !ok {
		t.Error("a claim name with dots was not found")
	}
	if got, _ := c.Lookup("n"); got != json.Number("12345678901234567890") {
		t.Errorf("n = %#v, want the exact json.Number", got)
	}
	if _, ok := c.Lookup("realm_access.nope"); ok {
		t.Error("a missing path was found")
	}
}

func TestClaimsLookupPrefersLongestName(t *testing.T) {
	c := verifier.NewClaims(map[string]any{
		"a.b": map[string]any{"c": "long"},
		"a":   map[string]any{"b": map[string]any{"c": "short"}},
		"x":   map[string]any{"y.z": "dotted"},
	})
	tests := []struct {
		path   string
		want   any
		wantOK bool
	}{
		{path: "a.b.c", want: "long", wantOK: true},
		{path: "x.y.z", want: "dotted", wantOK: true},
		{path: "a.b.nope", wantOK: false},
		{path: "x", want: map[string]any{"y.z": "dotted"}, wantOK: true},
	}
	for _, tt := range tests {
		got, ok := c.Lookup(tt.path)
		if ok != tt.wantOK || (ok && fmt.Sprint(got) != fmt.Sprint(tt.want)) {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.wantOK)
		}
	}
}
