package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// t0 is the tests' "now" for the issuer's clock.
var t0 = time.Unix(1_800_000_000, 0)

// ownClaims are claims of a token this issuer would issue at now.
func ownClaims(s *server, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       s.cfg.IssuerURL,
		"sub":       "demo",
		"client_id": "demo",
		"aud":       s.cfg.Audience,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"jti":       rand.Text(),
		"scope":     "read",
	}
}

// signOwn signs claims with the issuer's current key, as /token does,
// after edit changes them.
func signOwn(t *testing.T, s *server, now time.Time, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := ownClaims(s, now)
	if edit != nil {
		edit(c)
	}
	tok, err := s.keys.signer().sign(c, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// introspect posts token to /introspect as demo and returns the decoded
// answer; it fails on anything but 200.
func introspect(t *testing.T, base, token string) map[string]any {
	t.Helper()
	resp, body := postForm(t, base+"/introspect", basic("demo", "demo-secret"), url.Values{"token": {token}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect status = %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("introspect body is not JSON: %v: %s", err, body)
	}
	if got["active"] == false && len(got) != 1 {
		t.Errorf("inactive answer = %s, want only active:false", body)
	}
	return got
}

func TestIntrospectActive(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.IssuerURL = "http://issuer.test"; c.TokenTTL = 5 * time.Minute })
	newTestClock(s, t0)
	tok := issueToken(t, base, url.Values{"scope": {"read write"}})
	got := introspect(t, base, tok)
	_, payload := decode(t, tok)
	want := map[string]any{
		"active": true, "token_type": "Bearer", "scope": "read write", "client_id": "demo", "sub": "demo",
		"iss": "http://issuer.test", "aud": "demo-api", "jti": payload["jti"],
		"exp": json.Number("1800000300"), "iat": json.Number("1800000000"), "nbf": json.Number("1800000000"),
	}
	if len(got) != len(want) {
		t.Errorf("answer has %d members, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
}

// TestIntrospectClaims checks that the answer repeats the token's other
// claims exactly (fractional dates, nested values) and that no claim can
// override active or token_type.
func TestIntrospectClaims(t *testing.T) {
	s, base := testServer(t, nil)
	newTestClock(s, t0)
	tok := signOwn(t, s, t0, func(c jwt.MapClaims) {
		c["exp"] = json.Number("1800000300.5")
		c["realm_access"] = map[string]any{"roles": []any{"admin"}}
		c["active"] = false
		c["token_type"] = "DPoP"
	})
	got := introspect(t, base, tok)
	checks := map[string]string{
		"active": "true", "token_type": `"Bearer"`, "exp": "1800000300.5", "realm_access": `{"roles":["admin"]}`,
	}
	for k, w := range checks {
		if b, _ := json.Marshal(got[k]); string(b) != w {
			t.Errorf("%s = %s, want %s", k, b, w)
		}
	}
}

func TestIntrospectInactive(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.SigningAlg = "RS256" })
	newTestClock(s, t0)
	signer := s.keys.signer()
	rsaPub, err := x509.MarshalPKIXPublicKey(signer.public)
	if err != nil {
		t.Fatal(err)
	}
	other, err := generateKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := newSigningKey(other, "RS256")
	if err != nil {
		t.Fatal(err)
	}
	signOther := func(kid string) string {
		tok, err := otherKey.sign(ownClaims(s, t0), map[string]any{"kid": kid}, true)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hs256 := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, ownClaims(s, t0))
		tok.Header["kid"] = signer.kid
		out, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	valid := signOwn(t, s, t0, nil)
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token string
	}{
		{name: "garbage", token: "not-a-jwt"},
		{name: "expired", token: signOwn(t, s, t0, func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Second).Unix() })},
		{name: "expires now", token: signOwn(t, s, t0, func(c jwt.MapClaims) { c["exp"] = t0.Unix() })},
		{name: "no exp", token: signOwn(t, s, t0, func(c jwt.MapClaims) { delete(c, "exp") })},
		{name: "not yet valid", token: signOwn(t, s, t0, func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Second).Unix() })},
		{name: "other issuer", token: signOwn(t, s, t0, func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })},
		{name: "no issuer", token: signOwn(t, s, t0, func(c jwt.MapClaims) { delete(c, "iss") })},
		{name: "wrong signature under the issuer's kid", token: signOther(signer.kid)},
		{name: "unknown kid", token: signOther(otherKey.kid)},
		{name: "tampered payload", token: parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+s.cfg.IssuerURL+`","sub":"admin","exp":1900000000}`)) + "." + parts[2]},
		{name: "alg none", token: func() string {
			tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, ownClaims(s, t0)).SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}()},
		{name: "HS256 with the public key as secret", token: hs256(rsaPub)},
		{name: "crit header", token: func() string {
			tok, err := signer.sign(ownClaims(s, t0), map[string]any{"crit": []string{"exp"}}, true)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}()},
		{name: "kid not a string", token: func() string {
			tok, err := signer.sign(ownClaims(s, t0), map[string]any{"kid": 7}, true)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := introspect(t, base, tt.token); got["active"] != false {
				t.Errorf("answer = %v, want active false", got)
			}
		})
	}
	// The control: the same issuer accepts its own untampered token, and a
	// token without kid is checked against every published key.
	for name, tok := range map[string]string{"valid": valid, "no kid": func() string {
		tok, err := signer.sign(ownClaims(s, t0), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()} {
		if got := introspect(t, base, tok); got["active"] != true {
			t.Errorf("%s token: answer = %v, want active true", name, got)
		}
	}
}

// TestIntrospectAfterRotation: a token of a retired key stays active while
// the JWKS still publishes that key, and becomes inactive once the key is
// gone even if the token claims a later exp.
func TestIntrospectAfterRotation(t *testing.T) {
	const ttl = 10 * time.Minute
	s, base := testServer(t, func(c *config) {
		c.SigningAlg = "ES256"
		c.KeyRotationInterval = time.Hour
		c.TokenTTL = ttl
	})
	clock := newTestClock(s, t0)
	old := issueToken(t, base, nil)
	// A token of the same key that claims to live far longer than TOKEN_TTL
	// (as mint with the key file could make).
	long := signOwn(t, s, t0, func(c jwt.MapClaims) { c["exp"] = t0.Add(24 * time.Hour).Unix() })

	clock.Set(t0.Add(time.Minute))
	if _, err := s.keys.rotate(clock.Now()); err != nil {
		t.Fatal(err)
	}
	fresh := issueToken(t, base, nil)
	freshLong := signOwn(t, s, clock.Now(), func(c jwt.MapClaims) { c["exp"] = t0.Add(24 * time.Hour).Unix() })
	if h1, h2 := tokenKID(t, old), tokenKID(t, fresh); h1 == h2 {
		t.Fatalf("both tokens have kid %s; rotation did not change the signer", h1)
	}
	for name, tok := range map[string]string{"retired key": old, "retired key, long exp": long, "new key": fresh} {
		if got := introspect(t, base, tok); got["active"] != true {
			t.Errorf("%s: answer = %v, want active true after rotation", name, got)
		}
	}
	// The retired key is unpublished ttl after the rotation.
	clock.Set(t0.Add(time.Minute + ttl + time.Second))
	if got := introspect(t, base, long); got["active"] != false {
		t.Errorf("token of an unpublished key: answer = %v, want active false", got)
	}
	if got := introspect(t, base, freshLong); got["active"] != true {
		t.Errorf("token of the current key: answer = %v, want active true", got)
	}
}

func tokenKID(t *testing.T, tok string) string {
	t.Helper()
	h, _ := decode(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

// TestClientAuthentication covers both RFC 6749 §2.3.1 methods on
// /introspect and /revoke, with the RFC's form-urlencoding of Basic
// credentials.
func TestClientAuthentication(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.Clients = []string{"demo:demo-secret", "svc+1:p+ss:w%rd é"} })
	newTestClock(s, t0)
	tok := signOwn(t, s, t0, nil)
	tests := []struct {
		name       string
		auth       string
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{name: "basic", auth: basic("demo", "demo-secret"), wantStatus: 200},
		{name: "post", form: url.Values{"client_id": {"demo"}, "client_secret": {"demo-secret"}}, wantStatus: 200},
		{name: "basic percent-encoded", auth: basic(url.QueryEscape("svc+1"), url.QueryEscape("p+ss:w%rd é")), wantStatus: 200},
		{name: "basic raw special characters", auth: basic("svc+1", "p+ss:w%rd é"), wantStatus: 200},
		{name: "post special characters", form: url.Values{"client_id": {"svc+1"}, "client_secret": {"p+ss:w%rd é"}}, wantStatus: 200},
		{name: "bad secret basic", auth: basic("demo", "wrong"), wantStatus: 401, wantError: "invalid_client"},
		{name: "bad secret post", form: url.Values{"client_id": {"demo"}, "client_secret": {"wrong"}}, wantStatus: 401, wantError: "invalid_client"},
		{name: "percent-encoded wrong secret", auth: basic("svc%2B1", "p%2Bss"), wantStatus: 401, wantError: "invalid_client"},
		{name: "unknown client", auth: basic("nobody", "demo-secret"), wantStatus: 401, wantError: "invalid_client"},
		{name: "no credentials", wantStatus: 401, wantError: "invalid_client"},
		{name: "client_id only", form: url.Values{"client_id": {"demo"}}, wantStatus: 401, wantError: "invalid_client"},
		{name: "bearer scheme", auth: "Bearer " + tok, wantStatus: 401, wantError: "invalid_client"},
		{name: "both methods", auth: basic("demo", "demo-secret"), form: url.Values{"client_secret": {"demo-secret"}}, wantStatus: 400, wantError: "invalid_request"},
	}
	for _, path := range []string{"/introspect", "/revoke"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				form := url.Values{"token": {"not-a-token"}}
				for k, v := range tt.form {
					form[k] = v
				}
				resp, body := postForm(t, base+path, tt.auth, form)
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
				}
				if tt.wantStatus == 200 {
					return
				}
				var got oauthError
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("error body is not JSON: %s", body)
				}
				if got.Error != tt.wantError {
					t.Errorf("error = %q, want %q", got.Error, tt.wantError)
				}
				if tt.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="jwt-issuer"` {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge", resp.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}
}

func TestIntrospectRequestErrors(t *testing.T) {
	_, base := testServer(t, nil)
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{name: "no token", body: "token_type_hint=access_token", wantStatus: 400},
		{name: "empty token", body: "token=", wantStatus: 400},
		{name: "repeated token", body: "token=a&token=b", wantStatus: 400},
		{name: "body too large", body: "token=" + strings.Repeat("a", maxFormBytes), wantStatus: 400},
	}
	for _, path := range []string{"/introspect", "/revoke"} {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("demo", "demo-secret")
				resp, got := doJSON(t, req)
				if resp.StatusCode != tt.wantStatus || got["error"] != "invalid_request" {
					t.Errorf("answer = %d %v, want %d invalid_request", resp.StatusCode, got, tt.wantStatus)
				}
			})
		}
		resp, _ := get(t, http.DefaultClient, base+path)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET %s = %d Allow %q, want 405 Allow POST", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// TestIntrospectHint: token_type_hint, known or not, changes nothing (RFC
// 7662 §2.1, RFC 7009 §2.1).
func TestIntrospectHint(t *testing.T) {
	s, base := testServer(t, nil)
	newTestClock(s, t0)
	tok := signOwn(t, s, t0, nil)
	for _, hint := range []string{"access_token", "refresh_token", "something_else"} {
		resp, body := postForm(t, base+"/introspect", basic("demo", "demo-secret"), url.Values{"token": {tok}, "token_type_hint": {hint}})
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"active":true`)) {
			t.Errorf("hint %s: %d %s, want 200 active", hint, resp.StatusCode, body)
		}
	}
}

// BenchmarkIntrospect measures one /introspect answer through the
// instrumented handler (client authentication, verification, revocation
// check, JSON), without the network.
func BenchmarkIntrospect(b *testing.B) {
	for _, alg := range serveAlgs() {
		b.Run(alg, func(b *testing.B) {
			cfg, err := parseConfig([]string{"SIGNING_ALG=" + alg})
			if err != nil {
				b.Fatal(err)
			}
			s, err := newServer(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			tok, err := s.keys.signer().sign(ownClaims(s, time.Now()), nil, true)
			if err != nil {
				b.Fatal(err)
			}
			h := s.routes()
			body := url.Values{"token": {tok}}.Encode()
			auth := basic("demo", "demo-secret")
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/introspect", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", auth)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"active":true`)) {
					b.Fatalf("answer = %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// TestIntrospectConcurrent runs introspections, revocations and key
// rotations at once, for the race detector: the parser, the key ring and
// the revocation list are shared by every request.
func TestIntrospectConcurrent(t *testing.T) {
	s, base := testServer(t, func(c *config) {
		c.SigningAlg = "ES256"
		c.KeyRotationInterval = time.Hour
	})
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = issueToken(t, base, nil)
	}
	// post does not fail the test itself: only the test goroutine may.
	post := func(path string, tok string) error {
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(url.Values{"token": {tok}}.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("demo", "demo-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(tokens)*2)
	for i, tok := range tokens {
		wg.Go(func() {
			for range 10 {
				if err := post("/introspect", tok); err != nil {
					errs <- fmt.Sprintf("token %d: %v", i, err)
					return
				}
			}
			if i%2 == 0 {
				if err := post("/revoke", tok); err != nil {
					errs <- fmt.Sprintf("token %d: %v", i, err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if _, err := s.keys.rotate(s.now()); err != nil {
				errs <- err.Error()
			}
		}
	})
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i, tok := range tokens {
		if got := introspect(t, base, tok); (got["active"] == true) != (i%2 == 1) {
			t.Errorf("token %d: active = %v, want %v", i, got["active"], i%2 == 1)
		}
	}
}
