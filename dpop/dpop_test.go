package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ecJWK is the public jwk of an EC key.
func ecJWK(k *ecdsa.PrivateKey) map[string]any {
	size := (k.Curve.Params().BitSize + 7) / 8
	return map[string]any{"kty": "EC", "crv": k.Curve.Params().Name,
		"x": b64(k.X.FillBytes(make([]byte, size))), "y": b64(k.Y.FillBytes(make([]byte, size)))}
}

// signProof signs claims with key under alg, with header fields set (a nil
// value deletes one).
func signProof(t testing.TB, alg jwt.SigningMethod, key crypto.Signer, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(alg, claims)
	tok.Header["typ"] = "dpop+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{"jti": "j-1", "htm": "GET", "htu": "https://api.example/r", "iat": t0.Unix(), "ath": TokenHash("tok")}
}

func mustEC(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestParseProofRefusals: what §4.3 checks 2-7 refuse, each as Invalid.
func TestParseProofRefusals(t *testing.T) {
	k := mustEC(t, elliptic.P256())
	jwk := ecJWK(k)
	p384 := mustEC(t, elliptic.P384())
	with := func(m map[string]any, k string, v any) map[string]any {
		c := map[string]any{}
		for a, b := range m {
			c[a] = b
		}
		c[k] = v
		return c
	}
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := goodClaims()
		edit(c)
		return c
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	hmacTok := jwt.NewWithClaims(jwt.SigningMethodHS256, goodClaims())
	hmacTok.Header["typ"] = "dpop+jwt"
	hmacTok.Header["jwk"] = map[string]any{"kty": "oct", "k": b64([]byte("0123456789abcdef0123456789abcdef"))}
	hs, _ := hmacTok.SignedString([]byte("0123456789abcdef0123456789abcdef"))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, goodClaims())
	none.Header["typ"] = "dpop+jwt"
	none.Header["jwk"] = jwk
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	other := mustEC(t, elliptic.P256())

	tests := []struct {
		name  string
		proof string
	}{
		{name: "garbage", proof: "a.b.c"},
		{name: "too large", proof: strings.Repeat("a", maxProofBytes+1)},
		{name: "no typ", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk, "typ": nil}, goodClaims())},
		{name: "typ JWT", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk, "typ": "JWT"}, goodClaims())},
		{name: "no jwk", proof: signProof(t, jwt.SigningMethodES256, k, nil, goodClaims())},
		{name: "jwk with d", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": with(jwk, "d", b64(mustBytes(t, k)))}, goodClaims())},
		{name: "jwk not an object", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": "key"}, goodClaims())},
		{name: "jwk of another key", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": ecJWK(other)}, goodClaims())},
		{name: "jwk short x", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": with(jwk, "x", b64([]byte{1, 2}))}, goodClaims())},
		{name: "jwk point off the curve", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": with(jwk, "y", jwk["x"])}, goodClaims())},
		{name: "jwk padded base64", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": with(jwk, "x", jwk["x"].(string)+"=")}, goodClaims())},
		{name: "alg does not fit the key", proof: signProof(t, jwt.SigningMethodES384, p384, map[string]any{"jwk": with(ecJWK(p384), "crv", "P-256")}, goodClaims())},
		{name: "RSA 1024", proof: signProof(t, jwt.SigningMethodRS256, small, map[string]any{"jwk": map[string]any{"kty": "RSA", "n": b64(small.N.Bytes()), "e": "AQAB"}}, goodClaims())},
		{name: "HS256", proof: hs},
		{name: "none", proof: noneTok},
		{name: "crit", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk, "crit": []string{"x"}}, goodClaims())},
		{name: "no jti", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { delete(c, "jti") }))},
		{name: "numeric jti", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { c["jti"] = 5 }))},
		{name: "no htm", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { delete(c, "htm") }))},
		{name: "no htu", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { delete(c, "htu") }))},
		{name: "no iat", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { delete(c, "iat") }))},
		{name: "string iat", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { c["iat"] = "1772366400" }))},
		{name: "negative iat", proof: signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": jwk}, claims(func(c jwt.MapClaims) { c["iat"] = -1 }))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProof(tt.proof, DefaultAlgorithms)
			var e *Error
			if !errors.As(err, &e) || e.Reason != Invalid {
				t.Errorf("err = %v, want %s", err, Invalid)
			}
		})
	}
}

// TestParseProofKeyTypes: proofs of every key type verify, and the
// thumbprint of RFC 7638 §3.1's example key is its published value.
func TestParseProofKeyTypes(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	p521 := mustEC(t, elliptic.P521())
	for name, proof := range map[string]string{
		"ES512": signProof(t, jwt.SigningMethodES512, p521, map[string]any{"jwk": ecJWK(p521)}, goodClaims()),
		"PS256": signProof(t, jwt.SigningMethodPS256, rk, map[string]any{"jwk": map[string]any{"kty": "RSA", "n": b64(rk.N.Bytes()), "e": "AQAB"}}, goodClaims()),
		"EdDSA": signProof(t, jwt.SigningMethodEdDSA, priv, map[string]any{"jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}}, goodClaims()),
	} {
		if _, err := ParseProof(proof, DefaultAlgorithms); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := ParseProof(proof, []string{"ES256"}); err == nil {
			t.Errorf("%s accepted with only ES256 allowed", name)
		}
	}
	// RFC 7638 §3.1.
	k, err := parseJWK(map[string]any{"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
		"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; k.jkt != want {
		t.Errorf("thumbprint = %s, want %s", k.jkt, want)
	}
}

func TestNormalizeURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://api.example/r", "https://api.example/r"},
		{"HTTPS://API.Example:443/r?x=1#f", "https://api.example/r"},
		{"http://api.example:80", "http://api.example/"},
		{"http://api.example:8080/a/./b/../c", "http://api.example:8080/a/c"},
		{"https://api.example/%7euser/%2f/%aa", "https://api.example/~user/%2F/%AA"},
		{"https://api.example/a/", "https://api.example/a/"},
		{"https://[::1]:8443/x", "https://[::1]:8443/x"},
		{"https://api.example/a/../../b", "https://api.example/b"},
	}
	for _, tt := range tests {
		if got, err := NormalizeURI(tt.in); err != nil || got != tt.want {
			t.Errorf("NormalizeURI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"ftp://x/y", "/relative", "https://user:pw@api.example/", "https://", "%zz"} {
		if got, err := NormalizeURI(bad); err == nil {
			t.Errorf("NormalizeURI(%q) = %q, want an error", bad, got)
		}
	}
}

func TestTargetURI(t *testing.T) {
	req := func(target string, h map[string]string, tlsOn bool) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.Host = "sidecar:7070"
		for k, v := range h {
			r.Header.Set(k, v)
		}
		if !tlsOn {
			r.TLS = nil
		} else {
			r.TLS = &tls.ConnectionState{}
		}
		return r
	}
	ext, _ := url.Parse("https://api.example/api/")
	fwd := map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "api.example, inner"}
	tests := []struct {
		name   string
		target Target
		r      *http.Request
		want   string
	}{
		{name: "direct", r: req("/r?q=1", nil, false), want: "http://sidecar:7070/r"},
		{name: "direct TLS", r: req("/r", nil, true), want: "https://sidecar:7070/r"},
		{name: "forwarded ignored by default", r: req("/r", fwd, false), want: "http://sidecar:7070/r"},
		{name: "forwarded trusted", target: Target{TrustForwarded: true}, r: req("/r", fwd, false), want: "https://api.example/r"},
		{name: "external URL with prefix", target: Target{ExternalURL: ext}, r: req("/r%2Fx", fwd, false), want: "https://api.example/api/r%2Fx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.target.URI(tt.r); got != tt.want {
				t.Errorf("URI = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCheckProofTokenEndpoint: at a token endpoint, no proof asks for a
// Bearer token; a proof is checked without ath and its jti is spent.
func TestCheckProofTokenEndpoint(t *testing.T) {
	c, err := New(Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	k := mustEC(t, elliptic.P256())
	claims := jwt.MapClaims{"jti": "t-1", "htm": "POST", "htu": "https://as.example/token", "iat": t0.Unix()}
	proof := signProof(t, jwt.SigningMethodES256, k, map[string]any{"jwk": ecJWK(k)}, claims)
	req := Request{Method: "POST", URI: "https://as.example/token", Proofs: []string{proof}}
	if p, err := c.CheckProof(Request{Method: "POST", URI: req.URI}); p != nil || err != nil {
		t.Errorf("no proof = %v, %v; want nil, nil", p, err)
	}
	p, err := c.CheckProof(req)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := parseJWK(ecJWK(k)); p.JKT != want.jkt {
		t.Errorf("JKT = %s, want %s", p.JKT, want.jkt)
	}
	if _, err := c.CheckProof(req); !isReason(err, Replayed) {
		t.Errorf("again = %v, want %s", err, Replayed)
	}
}

func isReason(err error, r Reason) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == r
}

func TestReplayBounded(t *testing.T) {
	r := NewReplay(3)
	for i, jti := range []string{"a", "b", "c"} {
		if !r.Add("k", jti, t0.Add(time.Minute), t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("%s refused", jti)
		}
	}
	if r.Add("k", "b", t0.Add(time.Minute), t0.Add(5*time.Second)) {
		t.Error("a live jti accepted twice")
	}
	if !r.Add("other-key", "b", t0.Add(time.Minute), t0.Add(5*time.Second)) {
		t.Error("the same jti of another key refused")
	}
	if r.Len() != 3 || r.Evictions() != 1 {
		t.Errorf("len %d evictions %d, want 3 and 1 (a pushed out)", r.Len(), r.Evictions())
	}
	// After the deadline every entry expires and is dropped, not evicted.
	if !r.Add("k", "d", t0.Add(3*time.Minute), t0.Add(2*time.Minute)) || r.Len() != 1 || r.Evictions() != 1 {
		t.Errorf("after expiry: len %d evictions %d, want 1 and 1", r.Len(), r.Evictions())
	}
}

func TestNonceSource(t *testing.T) {
	s, err := NewNonceSource(nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewNonceSource(nil, time.Minute)
	n := s.New(t0)
	switch {
	case !s.Valid(n, t0.Add(59*time.Second)):
		t.Error("a fresh nonce is not valid")
	case s.Valid(n, t0.Add(61*time.Second)):
		t.Error("an expired nonce is valid")
	case other.Valid(n, t0):
		t.Error("a nonce of another secret is valid")
	case s.Valid("", t0) || s.Valid(n+"A", t0) || s.Valid(strings.ToUpper(n), t0):
		t.Error("a forged nonce is valid")
	}
	if _, err := NewNonceSource([]byte("short"), time.Minute); err == nil {
		t.Error("a short secret accepted")
	}
}

func TestChallenge(t *testing.T) {
	if got, want := Challenge("jwt-sidecar", []string{"ES256", "EdDSA"}, ""), `DPoP realm="jwt-sidecar", algs="ES256 EdDSA"`; got != want {
		t.Errorf("bare = %s, want %s", got, want)
	}
	got := Challenge("", []string{"ES256"}, Replayed)
	if want := `DPoP algs="ES256", error="invalid_dpop_proof", error_description="the DPoP proof was already used"`; got != want {
		t.Errorf("refusal = %s, want %s", got, want)
	}
	for _, r := range Reasons {
		d := r.Description()
		if d == "" || strings.ContainsAny(d, `"\`) || r.Code() == "" {
			t.Errorf("%s: description %q code %q", r, d, r.Code())
		}
	}
}

func TestParseConfirmation(t *testing.T) {
	if c, err := ParseConfirmation(nil); err != nil || c.Bound() {
		t.Errorf("absent = %+v %v", c, err)
	}
	if c, err := ParseConfirmation(map[string]any{"jkt": "a", "x5t#S256": "b"}); err != nil || c.JKT != "a" || c.X5TS256 != "b" {
		t.Errorf("both = %+v %v", c, err)
	}
	for _, bad := range []any{"x", map[string]any{}, map[string]any{"jkt": 1}, map[string]any{"jkt": ""}, map[string]any{"jwk": map[string]any{}}} {
		if _, err := ParseConfirmation(bad); err == nil {
			t.Errorf("ParseConfirmation(%v) accepted", bad)
		}
	}
}

// selfSigned makes a client certificate.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k := mustEC(t, elliptic.P256())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
}

// TestCertificateBinding: a real TLS listener that asks for client
// certificates; the token's x5t#S256 must be the presented certificate's.
func TestCertificateBinding(t *testing.T) {
	bound, other := selfSigned(t), selfSigned(t)
	x5t := CertThumbprint(bound.Leaf)
	var reached int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := CheckCertificate(x5t, r.TLS.PeerCertificates); err != nil {
			var e *Error
			errors.As(err, &e)
			w.Header().Set("X-Test-Reason", string(e.Reason))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reached++
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	for _, tt := range []struct {
		name       string
		certs      []tls.Certificate
		wantReason Reason
	}{
		{name: "bound certificate", certs: []tls.Certificate{bound}},
		{name: "another certificate", certs: []tls.Certificate{other}, wantReason: CertMismatch},
		{name: "no certificate", wantReason: CertMissing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			tr.TLSClientConfig.Certificates = tt.certs
			before := reached
			resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := Reason(resp.Header.Get("X-Test-Reason")); got != tt.wantReason {
				t.Errorf("reason = %q, want %q", got, tt.wantReason)
			}
			if tt.wantReason != "" && reached != before {
				t.Error("a refused request reached the upstream")
			}
		})
	}
}

func mustBytes(t *testing.T, k *ecdsa.PrivateKey) []byte {
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
